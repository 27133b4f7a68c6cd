"""``mooscomp compress``: argument checks before loading, option combinations, messages, quiet stderr."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from mooscomp.cli import main
from mooscomp.cli.compress import unescape


class _Stdin:
    """A stdin that claims to be a terminal."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return True


@pytest.fixture()
def no_load(monkeypatch):
    """Fails the test if anything tries to load a model."""
    from mooscomp.compressor import Compressor

    def boom(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(Compressor, "from_pretrained", boom)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--rate", "0"], "--rate"),
        (["--rate", "2"], "--rate"),
        (["--rate", "nan"], "--rate"),
        (["--rate", "inf"], "--rate"),
        (["--rate", "-0.5"], "--rate"),
        (["--target-tokens", "0"], "--target-tokens"),
        (["--target-tokens", "1.5"], "--target-tokens"),
        (["--rate", "0.5", "--outlier-alpha", "nan"], "--outlier-alpha"),
        (["--rate", "0.5", "--scores"], "--scores"),
        (["--rate", "0.5", "--show", "--json"], "--json"),
        (["--rate", "0.5", "--focus", "-1"], "--focus"),
        (["--rate", "0.5", "--focus-spread", "0"], "--focus-spread"),
        (["--rate", "0.5", "--units", "attached,nouns"], "--units"),
        (["--rate", "0.5", "--focus-per-paragraph", "-1"], "--focus-per-paragraph"),
        (["--rate", "0.5", "--focus-first", "x"], "--focus-first"),
    ],
)
def test_bad_arguments_fail_before_loading(argv, needle, no_load, tmp_path, capsys):
    f = tmp_path / "in.txt"
    f.write_text("Some words to compress.")
    code = main(["compress", str(f), *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_force_token_escapes():
    assert unescape(r"\n") == "\n" and unescape(r"\t") == "\t" and unescape(r"a\\n") == "a\\n"
    assert unescape(r"\u00e9\x41") == "éA" and unescape("plain") == "plain"


def test_force_token_newline_keeps_line_breaks(tiny_model_dir, tmp_path, capsys):
    text = "\n".join(f"Line {i} has several words that could all go away." for i in range(8))
    f = tmp_path / "lines.txt"
    f.write_text(text)
    base = ["compress", str(f), "--rate", "0.2", "--model", str(tiny_model_dir), "--backend", "torch"]
    assert main([*base, "--force-token", r"\n"]) == 0
    out = capsys.readouterr().out
    assert main(base) == 0
    plain = capsys.readouterr().out
    assert out[:-1].count("\n") >= 4 and plain[:-1].count("\n") == 0  # + the CLI's final newline


def test_empty_file_warns(tiny_model_dir, tmp_path, capsys):
    f = tmp_path / "empty.txt"
    f.write_text("")
    code = main(["compress", str(f), "--rate", "0.5", "--model", str(tiny_model_dir),
                 "--backend", "torch"])
    out, err = capsys.readouterr()
    assert code == 0 and out == "" and "warning" in err and "empty" in err


def test_terminal_stdin_gets_a_hint(tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", _Stdin(b"Alpha beta gamma delta epsilon."))
    code = main(["compress", "--rate", "0.5", "--model", str(tiny_model_dir), "--backend", "torch"])
    out, err = capsys.readouterr()
    assert code == 0 and out.strip() and "Ctrl-D" in err


def test_verbose_after_the_subcommand_and_version(tiny_model_dir, tmp_path, capsys):
    f = tmp_path / "in.txt"
    f.write_text("Alpha beta gamma delta epsilon. Zeta eta theta iota kappa.")
    argv = ["compress", str(f), "--rate", "0.5", "--model", str(tiny_model_dir), "--backend", "torch"]
    assert main([*argv, "-v"]) == 0
    err = capsys.readouterr().err
    assert "loading" in err and "compressed" in err and "tokens" in err
    assert main(["-v", *argv]) == 0 and "compressed" in capsys.readouterr().err
    assert main(argv) == 0 and capsys.readouterr().err == ""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("mooscomp 0.")


def _run(args, env):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_stderr_is_quiet_and_the_export_announced(tiny_model_dir, tmp_path):
    env = {**os.environ, "MOOSCOMP_CACHE": str(tmp_path / "cache")}
    f = tmp_path / "in.txt"
    f.write_text("The Normans gave their name to Normandy, a region in France. " * 5)
    argv = ["-m", "mooscomp", "compress", str(f), "--rate", "0.5", "--model", str(tiny_model_dir),
            "--backend", "onnx"]
    first = _run([*argv, "-v"], env)
    assert first.returncode == 0, first.stderr
    assert "exporting the model to ONNX" in first.stderr and "compressing" in first.stderr
    assert "fusion_base" not in first.stderr and "Traceback" not in first.stderr
    second = _run(argv, env)  # the graph is cached: nothing on stderr at all
    assert second.returncode == 0 and second.stderr == "" and second.stdout.strip()
    # the library (no CLI): loading the pip-installed encoder prints nothing
    lib = _run(["-c", "from mooscomp import Compressor; Compressor.untrained()"], env)
    assert lib.returncode == 0 and lib.stderr == "", lib.stderr


def test_focus_and_units_reach_the_config(tiny_model_dir, tmp_path, capsys, monkeypatch):
    from mooscomp.compressor import Compressor

    seen = {}
    real = Compressor.compress

    def spy(self, *a, **k):
        seen["config"] = k.get("config")
        return real(self, *a, **k)

    monkeypatch.setattr(Compressor, "compress", spy)
    f = tmp_path / "in.txt"
    f.write_text("The Normans came from Normandy. They paid 3.5 million pennies in 1066. It rained.")
    argv = ["compress", str(f), "--rate", "0.5", "--model", str(tiny_model_dir), "--backend", "torch",
            "--focus", "1", "--focus-spread", "2", "--units", "attached,phrase", "--focus-per-paragraph", "1",
            "--focus-first", "2"]
    assert main(argv) == 0
    cfg = seen["config"]
    assert (cfg.focus, cfg.focus_spread, cfg.units, cfg.focus_per_paragraph) == (1.0, 2.0, ("attached", "phrase"), 1)
    assert cfg.focus_first == 2
