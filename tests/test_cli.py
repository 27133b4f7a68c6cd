from __future__ import annotations

import io
import json
import sys

import pytest

from mooscomp.cli import main


def _run(argv, capsys, stdin_bytes=None, monkeypatch=None):
    if stdin_bytes is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin_bytes)))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_compress_file_json(tmp_path, capsys, tiny_model_dir, sample_text):
    f = tmp_path / "in.txt"
    f.write_text(sample_text)
    code, out, err = _run(["compress", str(f), "--rate", "0.3", "--json", "--model", str(tiny_model_dir)], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert isinstance(d["origin_tokens"], int) and isinstance(d["rate"], float)
    assert isinstance(d["ratio"], float)
    assert abs(d["compressed_tokens"] - 0.3 * d["origin_tokens"]) <= 0.02 * 0.3 * d["origin_tokens"] + 2


def test_compress_stdin_plain_and_show(capsys, monkeypatch, tiny_model_dir, sample_text):
    code, out, _ = _run(["compress", "-", "--rate", "0.5", "--model", str(tiny_model_dir)], capsys, sample_text.encode(), monkeypatch)
    assert code == 0 and 0 < len(out) < len(sample_text)
    code, out, _ = _run(["compress", "--rate", "0.5", "--show", "--model", str(tiny_model_dir)], capsys, b"Alpha beta gamma delta.", monkeypatch)
    assert code == 0 and "~~" in out and "\x1b" not in out


@pytest.mark.parametrize(
    "argv",
    [
        ["compress", "--rate", "0"],
        ["compress", "--rate", "2"],
        ["compress", "--target-tokens", "-3"],
        ["compress", "--rate", "abc"],
        ["compress"],
        ["compress", "/no/such/file", "--rate", "0.5"],
        ["compress", "--rate", "0.5", "--backend", "tensorrt"],
        ["compress", "--rate", "0.5", "--backend", "onnx", "--device", "cuda"],
    ],
)
def test_user_errors_one_line_exit_2(argv, capsys, monkeypatch, tiny_model_dir):
    code, out, err = _run(argv + ["--model", str(tiny_model_dir)], capsys, b"some text.", monkeypatch)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_invalid_utf8_stdin(capsys, monkeypatch, tiny_model_dir):
    code, out, err = _run(["compress", "--rate", "0.5", "--model", str(tiny_model_dir)], capsys, b"ok \xff\xfe bad", monkeypatch)
    assert code == 2 and out == "" and "UTF-8" in err and len(err.strip().splitlines()) == 1


def test_bad_model_dir(capsys, monkeypatch, tmp_path):
    code, out, err = _run(["compress", "--rate", "0.5", "--model", str(tmp_path / "nope")], capsys, b"text.", monkeypatch)
    assert code == 2 and "nope" in err and len(err.strip().splitlines()) == 1


def test_no_command(capsys):
    assert main([]) == 2


def test_backends_give_the_same_text(capsys, monkeypatch, tiny_model_dir, sample_text):
    outs = []
    for backend in ("auto", "torch", "onnx"):
        argv = ["compress", "--rate", "0.4", "--backend", backend, "--model", str(tiny_model_dir)]
        code, out, err = _run(argv, capsys, sample_text.encode(), monkeypatch)
        assert code == 0, err
        outs.append(out)
    assert outs[0] == outs[1] == outs[2] and 0 < len(outs[0]) < len(sample_text)
