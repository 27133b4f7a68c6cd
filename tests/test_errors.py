"""Errors and unsafe constructs: every invalid argument names itself and its allowed range; the CLI
turns user errors into one line (exit 2) and internal errors into a message + hint (exit 1); no
eval/exec/pickle in the sources, and loading a model never unpickles."""

from __future__ import annotations

import ast
import io
import math
import pickle
import shutil
import sys
from pathlib import Path

import pytest

from mooscomp.cli import main
from mooscomp.compressor import MAX_FORCE_TOKENS, Compressor
from mooscomp.config import CompressionConfig
from mooscomp.modeling import ModelFormatError

SRC = Path(__file__).parents[1] / "src" / "mooscomp"


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"rate": 0.0}, ValueError, r"rate must be in \(0, 1\]"),
        ({"rate": -0.5}, ValueError, r"rate must be in \(0, 1\]"),
        ({"rate": 1.5}, ValueError, r"rate must be in \(0, 1\]"),
        ({"rate": math.nan}, ValueError, r"rate must be in \(0, 1\]"),
        ({"rate": math.inf}, ValueError, r"rate must be in \(0, 1\]"),
        ({"rate": "0.5"}, TypeError, r"rate must be a number in \(0, 1\]"),
        ({"rate": True}, TypeError, r"rate must be a number"),
        ({"target_tokens": 0}, ValueError, r"target_tokens must be > 0"),
        ({"target_tokens": -3}, ValueError, r"target_tokens must be > 0"),
        ({"target_tokens": 2.5}, TypeError, r"target_tokens must be an int > 0"),
        ({}, ValueError, r"exactly one of rate .* or target_tokens"),
        ({"rate": 0.5, "target_tokens": 3}, ValueError, r"exactly one of rate .* or target_tokens"),
        ({"rate": 0.5, "force_tokens": "abc"}, TypeError, r"force_tokens must be a list or tuple"),
        ({"rate": 0.5, "force_tokens": ["a", 1]}, TypeError, r"force_tokens must contain strings"),
        ({"rate": 0.5, "force_tokens": ["a", ""]}, ValueError, r"force_tokens must not contain the empty"),
        ({"rate": 0.5, "force_tokens": ["t"] * (MAX_FORCE_TOKENS + 1)}, ValueError,
         rf"force_tokens: at most {MAX_FORCE_TOKENS}"),
        ({"rate": 0.5, "question": 3}, TypeError, r"question must be a str or None"),
        ({"rate": 0.5, "config": {"budget": "global"}}, TypeError, r"config must be a CompressionConfig"),
    ],
)
def test_compress_argument_errors(tiny_compressor, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        tiny_compressor.compress("Some text to compress.", **kwargs)


@pytest.mark.parametrize(
    ("inputs", "exc", "pattern"),
    [
        ("a str", TypeError, r"inputs must be a list of prompts"),
        ([3], TypeError, r"a prompt must be a str or a list of str"),
        ([["ok", None]], TypeError, r"contexts must be strings"),
        ([b"bytes"], TypeError, r"a prompt must be a str"),
    ],
)
def test_compress_batch_input_errors(tiny_compressor, inputs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        tiny_compressor.compress_batch(inputs, rate=0.5)


@pytest.mark.parametrize(
    ("changes", "exc", "pattern"),
    [
        ({"budget": "greedy"}, ValueError, r"budget must be one of \('global', 'llmlingua2'\)"),
        ({"outlier_variant": "x"}, ValueError, r"outlier_variant must be one of"),
        ({"outlier_alpha": -1.0}, ValueError, r"outlier_alpha must be in \[0.0, 100.0\]"),
        ({"outlier_alpha": math.nan}, ValueError, r"outlier_alpha must be in"),
        ({"outlier_alpha": "1"}, TypeError, r"outlier_alpha must be a number"),
        ({"outlier_clip": 0.0}, ValueError, r"outlier_clip must be in \(0.0"),
        ({"context_level_rate": 0.0}, ValueError, r"context_level_rate must be in \(0.0, 1.0\]"),
        ({"units": "attached"}, TypeError, r"units must be a tuple of rule names"),
        ({"units": ("attached", "bogus")}, ValueError, r"units: unknown rules \['bogus'\]"),
        ({"max_seq_len": 4}, ValueError, r"max_seq_len must be in \[8, 1000000\]"),
        ({"batch_size": 0}, ValueError, r"batch_size must be in \[1, 100000\]"),
        ({"batch_size": 2.0}, TypeError, r"batch_size must be an int"),
        ({"max_input_chars": 0}, ValueError, r"max_input_chars must be in \[1, "),
        ({"drop_consecutive": "yes"}, TypeError, r"drop_consecutive must be a bool"),
        ({"chunk_end_chars": None}, TypeError, r"chunk_end_chars must be a str"),
    ],
)
def test_config_errors(changes, exc, pattern):
    with pytest.raises(exc, match=pattern):
        CompressionConfig(**changes)


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match=r"unknown CompressionConfig keys \['nope'\]"):
        CompressionConfig().replace(nope=1)


def test_max_input_chars_clear_error(tiny_compressor):
    cfg = CompressionConfig(max_input_chars=20)
    with pytest.raises(ValueError, match=r"input has 30 characters, over max_input_chars=20"):
        tiny_compressor.compress("x" * 30, rate=0.5, config=cfg)
    with pytest.raises(ValueError, match=r"over max_input_chars=20"):  # the limit is per prompt
        tiny_compressor.compress(["x" * 15, "y" * 15], rate=0.5, config=cfg)
    assert tiny_compressor.compress("x" * 20, rate=1.0, config=cfg).text == "x" * 20


# ---------------------------------------------------------------------- CLI


def _cli(argv, monkeypatch, capsys, stdin=b"Some text to compress. It has words."):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "extra",
    [
        ["--rate", "nan"],
        ["--rate", "-1"],
        ["--target-tokens", "0"],
        ["--target-tokens", "1.5"],
        ["--rate", "0.5", "--force-token", ""],
        ["--rate", "0.5", "--outlier-alpha", "-2"],
        ["--rate", "0.5", "--budget", "greedy"],
        ["--rate", "0.5", "--rate", "0.4", "--target-tokens", "3"],
        ["--rate", "0.5", "--bogus-flag"],
    ],
)
def test_cli_user_errors_one_line_exit_2(extra, tiny_model_dir, monkeypatch, capsys):
    code, out, err = _cli(["compress", "--model", str(tiny_model_dir), *extra], monkeypatch, capsys)
    assert code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_cli_bad_model_dir_is_user_error(tmp_path, monkeypatch, capsys):
    code, out, err = _cli(["compress", "--rate", "0.5", "--model", str(tmp_path)], monkeypatch, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1


def test_cli_internal_error_short_message_and_hint(tiny_model_dir, monkeypatch, capsys):
    def boom(self, *a, **k):
        raise RuntimeError("simulated failure\nwith a second line")

    monkeypatch.setattr(Compressor, "compress", boom)
    code, out, err = _cli(["compress", "--rate", "0.5", "--model", str(tiny_model_dir)], monkeypatch, capsys)
    assert code == 1 and out == ""
    # the one-time ONNX export announcement may precede the error (fresh cache): not part of it
    lines = [ln for ln in err.strip().splitlines() if "exporting the model to ONNX" not in ln]
    assert len(lines) == 2 and "Traceback" not in err
    assert "internal error: RuntimeError: simulated failure with a second line" in lines[0]
    assert lines[1].startswith("hint:")


@pytest.mark.parametrize("data", [b"\xff\xfe", b"caf\xe9", b"ok \xed\xa0\x80 surrogate", b"\xc0\xaf"])
def test_cli_non_utf8_stdin_and_file(data, tiny_model_dir, tmp_path, monkeypatch, capsys):
    argv = ["compress", "--rate", "0.5", "--model", str(tiny_model_dir)]
    code, out, err = _cli(argv, monkeypatch, capsys, stdin=data)
    assert code == 2 and out == "" and "not valid UTF-8" in err and len(err.strip().splitlines()) == 1
    f = tmp_path / "in.txt"
    f.write_bytes(data)
    code, out, err = _cli(["compress", str(f), *argv[1:]], monkeypatch, capsys)
    assert code == 2 and out == "" and "in.txt is not valid UTF-8" in err


# ---------------------------------------------------------------------- unsafe constructs

_BANNED_CALLS = {"eval", "exec", "compile"}
_BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "marshal", "shelve", "joblib", "cloudpickle"}
# Reviewed exceptions: batch/_ray.py (the Ray engine) pickles its own work items between Ray actors of one job (never a
# model file, never user-supplied bytes). Anything new here needs the same review.
_ALLOWED_IMPORTS = {("batch/_ray.py", "pickle")}


def test_no_eval_exec_or_pickle_in_sources():
    problems = []
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Name) and func.id in _BANNED_CALLS:
                problems.append(f"{where} calls {node.func.id}")
            if isinstance(node, ast.Import):
                problems += [f"{where} imports {a.name}" for a in node.names
                             if a.name.split(".")[0] in _BANNED_MODULES
                             and (str(path.relative_to(SRC)), a.name) not in _ALLOWED_IMPORTS]
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _BANNED_MODULES:
                problems.append(f"{where} imports from {node.module}")
            value = node.value if isinstance(node, ast.Attribute) and node.attr == "load" else None
            if isinstance(value, ast.Name) and value.id == "torch":
                problems.append(f"{where} uses torch.load")
    assert not problems, problems


def test_loading_a_model_never_unpickles(tiny_model_dir, monkeypatch):
    import torch

    def refuse(*a, **k):
        raise AssertionError("something tried to unpickle")

    class Refuse:
        def __init__(self, *a, **k):
            refuse()

    for mod, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"),
                      (torch, "load"), (torch.serialization, "load")]:
        monkeypatch.setattr(mod, name, Refuse if name == "Unpickler" else refuse)
    comp = Compressor.from_pretrained(tiny_model_dir)
    assert comp.compress("Loading works without pickle.", rate=1.0).text


class _Payload:
    def __reduce__(self):
        return (print, ("PWNED",))


def test_pickle_weights_are_refused_not_loaded(tiny_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    (bad / "model.safetensors").unlink()
    (bad / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ModelFormatError, match=r"model.safetensors is missing"):
        Compressor.from_pretrained(bad)
    # a pickle renamed to model.safetensors is refused as unreadable, never executed
    (bad / "pytorch_model.bin").rename(bad / "model.safetensors")
    with pytest.raises(ModelFormatError):
        Compressor.from_pretrained(bad)
    assert "PWNED" not in capsys.readouterr().out


def test_unusable_device_is_named_before_loading(tiny_model_dir):
    import torch

    with pytest.raises(ValueError, match="banana"):
        Compressor.from_pretrained(tiny_model_dir, device="banana")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            Compressor.from_pretrained(tiny_model_dir, device="cuda")
    with pytest.raises(ValueError, match="CPU only" if torch.cuda.is_available() else "not available"):
        Compressor.from_pretrained(tiny_model_dir, device="cuda:0", backend="onnx")


def test_install_hints_never_name_a_pypi_mooscomp():
    """mooscomp is installed from its checkout: no hint may say `pip install 'mooscomp[x]'`."""
    import re

    root = SRC.parents[1]
    pattern = re.compile(r"pip install\s+['\"]?mooscomp\b")
    files = [*SRC.rglob("*.py"), *(root / "scripts").rglob("*.sh"), *(root / "docs").glob("*.md"),
             root / "README.md"]
    bad = [f"{p.relative_to(root)}:{i}" for p in files if p.is_file()
           for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
           if pattern.search(line)]
    assert not bad, f"hints that point to a PyPI package that does not exist: {bad}"
