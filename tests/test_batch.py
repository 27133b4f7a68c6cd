"""Dataset compression: engines agree, bad rows pass through, resume, dead workers lose nothing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mooscomp.batch import DatasetJobConfig, Progress, compress_dataset, read_rows
from mooscomp.batch.engines import _KILL_ONCE_ENV as KILL_ONCE_ENV

TEXT = (
    "The river rises in the northern hills and flows south for about 240 kilometres. "
    "Its valley was settled early, and several towns grew up at the old fords. "
    "In the nineteenth century a canal joined it to the sea, which brought coal and grain. "
    "Floods in 1953 destroyed many bridges, and new dams were built upstream after that. "
    "Today the river is known for its birds, its walking paths and a yearly boat race. "
    "Fishing is allowed from April to October with a permit from the town hall."
)

N_GOOD = 30
BAD_ROWS = [
    {"id": "bad-empty", "text": "   "},
    {"id": "bad-missing"},
    {"id": "bad-none", "text": None},
    {"id": "bad-int", "text": 42},
    {"id": "bad-big", "text": "word " * 400},
]
N_ROWS = N_GOOD + len(BAD_ROWS) + 1  # + one line that is not JSON


def _sentences() -> list[str]:
    return [s.strip() + "." for s in TEXT.split(".") if s.strip()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    sents = _sentences()
    path = tmp_path_factory.mktemp("data") / "in.jsonl"
    lines = []
    for i in range(N_GOOD):
        text = " ".join(sents[(i + j) % len(sents)] for j in range(1 + i % 3))
        lines.append(json.dumps({"id": f"doc-{i}", "text": text, "meta": {"n": i}}))
    lines[7:7] = [json.dumps(r) for r in BAD_ROWS]
    lines.insert(20, "{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cfg(model: Path, **kw) -> DatasetJobConfig:
    base = dict(rate=0.5, model=str(model), device="cpu", shard_rows=8, batch_rows=4,
                max_chars=1000)
    base.update(kw)
    return DatasetJobConfig(**base)


@pytest.fixture(scope="module")
def reference(corpus, tiny_model_dir, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ref") / "single.jsonl"
    rep = compress_dataset(corpus, out, _cfg(tiny_model_dir, engine="single"))
    assert rep.rows == N_ROWS and rep.shards == 5
    return read_rows(out)


def _ids(rows: list[dict]) -> Counter:
    return Counter(r.get("id", r.get("_invalid_row")) for r in rows)


def test_single_output_rows_and_bad_rows(reference):
    assert len(reference) == N_ROWS
    assert all(n == 1 for n in _ids(reference).values())
    good = [r for r in reference if r["error"] is None]
    assert len(good) == N_GOOD
    for r in good:
        assert r["meta"] == {"n": int(r["id"].split("-")[1])}  # other columns carried through
        assert isinstance(r["compressed_prompt"], str) and r["compressed_prompt"]
        assert 0 < r["compressed_tokens"] <= r["origin_tokens"]
    kinds = {r.get("id", "invalid"): r["error"].split(":")[0] for r in reference if r["error"]}
    assert kinds == {
        "bad-empty": "empty_text",
        "bad-missing": "missing_text",
        "bad-none": "missing_text",
        "bad-int": "non_string_text",
        "bad-big": "oversized_text",
        "invalid": "invalid_row",
    }


def test_report_counts_errors(corpus, tiny_model_dir, tmp_path):
    seen: list[Progress] = []
    rep = compress_dataset(corpus, tmp_path / "o.jsonl",
                           _cfg(tiny_model_dir, engine="single", shard_rows=100),
                           progress=seen.append)
    assert rep.error_rows == 6 and rep.ok_rows == N_GOOD
    assert rep.errors == {"empty_text": 1, "invalid_row": 1, "missing_text": 2,
                          "non_string_text": 1, "oversized_text": 1}
    assert seen[-1].rows_done == seen[-1].rows_total == N_ROWS
    assert not (tmp_path / "o.jsonl.parts").exists()


@pytest.mark.spawn
def test_local_pool_matches_single_despite_a_dead_worker(corpus, tiny_model_dir, reference,
                                                        tmp_path, monkeypatch):
    kill = tmp_path / "killed"
    monkeypatch.setenv(KILL_ONCE_ENV, str(kill))  # private test hook: one worker dies once
    rep = compress_dataset(
        corpus, tmp_path / "local.jsonl", _cfg(tiny_model_dir, engine="local", workers=2)
    )
    assert kill.exists() and rep.worker_restarts >= 1
    rows = read_rows(tmp_path / "local.jsonl")
    assert _ids(rows) == _ids(reference)  # nothing lost, nothing duplicated
    assert rows == reference


@pytest.mark.spawn
def test_pipeline_engine_matches_single(corpus, tiny_model_dir, reference, tmp_path):
    rep = compress_dataset(corpus, tmp_path / "pipe.jsonl",
                           _cfg(tiny_model_dir, engine="pipeline", workers=2))
    assert rep.rows == N_ROWS and rep.error_rows == 6 and rep.workers == 2
    rows = read_rows(tmp_path / "pipe.jsonl")
    assert _ids(rows) == _ids(reference)
    assert rows == reference  # on a CPU the forward is exact whatever the batching


def test_resume_after_interrupt(corpus, tiny_model_dir, reference, tmp_path):
    out = tmp_path / "r.jsonl"
    cfg = _cfg(tiny_model_dir, engine="single")

    def stop_after_two(p: Progress) -> None:
        if p.shards_done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compress_dataset(corpus, out, cfg, progress=stop_after_two)
    assert not out.exists() and (tmp_path / "r.jsonl.parts" / "done.jsonl").exists()
    # a stray unfinished temp file and a torn record line must not matter
    with open(tmp_path / "r.jsonl.parts" / "done.jsonl", "a") as f:
        f.write('{"shard": 3, "ro')
    with pytest.raises(ValueError, match="different job"):
        compress_dataset(corpus, out, _cfg(tiny_model_dir, engine="single", rate=0.3))
    rep = compress_dataset(corpus, out, cfg)
    assert rep.shards_skipped == 2 and rep.rows == N_ROWS and rep.error_rows == 6
    assert read_rows(out) == reference
    with pytest.raises(FileExistsError):
        compress_dataset(corpus, out, cfg)


def test_parquet_in_and_out(corpus, tiny_model_dir, reference, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [r for r in read_rows(corpus) if "_invalid_row" not in r and r["id"] != "bad-int"]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    out = tmp_path / "out.parquet"
    rep = compress_dataset(src, out, _cfg(tiny_model_dir, engine="single"))
    assert rep.rows == len(rows)
    t = pq.read_table(out)
    assert t.schema.field("origin_tokens").type == pa.int64()
    got = {r["id"]: r for r in t.to_pylist()}
    ref = {r["id"]: r for r in reference if "id" in r}
    for i in range(N_GOOD):
        a, b = got[f"doc-{i}"], ref[f"doc-{i}"]
        assert a["compressed_prompt"] == b["compressed_prompt"]
        assert a["meta"] == b["meta"]
    assert got["bad-none"]["error"].startswith("missing_text")


@pytest.mark.spawn
def test_ray_matches_single_despite_a_dead_actor(corpus, tiny_model_dir, reference, tmp_path,
                                                 monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is not installed (bash scripts/setup.sh ray)")
    pytest.importorskip("pyarrow")
    kill = tmp_path / "killed"
    monkeypatch.setenv(KILL_ONCE_ENV, str(kill))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rep = compress_dataset(corpus, tmp_path / "ray.jsonl", _cfg(tiny_model_dir, engine="ray"))
    finally:
        ray.shutdown()
    assert kill.exists()
    assert rep.extra["ray_actors"] == 2 and rep.extra["ray_device"] == "cpu"
    rows = read_rows(tmp_path / "ray.jsonl")
    assert _ids(rows) == _ids(reference)
    assert rows == reference


def test_config_validation(tiny_model_dir):
    with pytest.raises(ValueError, match="exactly one"):
        DatasetJobConfig()
    with pytest.raises(ValueError, match="exactly one"):
        DatasetJobConfig(rate=0.5, target_tokens=10)
    with pytest.raises(ValueError):
        DatasetJobConfig(rate=1.5)
    with pytest.raises(ValueError):
        DatasetJobConfig(rate=0.5, engine="spark")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DatasetJobConfig(rate=0.5, shard_rows=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DatasetJobConfig(rate=0.5, force_tokens="\n")  # type: ignore[arg-type]


def test_cli(corpus, tiny_model_dir, reference, tmp_path, capsys):
    from mooscomp.cli import main

    out = tmp_path / "cli.jsonl"
    rc = main(["compress-dataset", str(corpus), str(out), "--rate", "0.5", "--engine", "single",
               "--model", str(tiny_model_dir), "--device", "cpu", "--shard-rows", "8",
               "--batch-rows", "4", "--max-chars", "1000", "--quiet", "--report",
               "--max-error-rate", "0.2"])  # 6 of 36 rows are bad
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["error_rows"] == 6
    assert read_rows(out) == reference
    assert main(["compress-dataset", str(corpus), str(out), "--rate", "0.5"]) == 2  # exists
    assert main(["compress-dataset", str(tmp_path / "nope.jsonl"), str(out), "--rate", "2"]) == 2
    assert main(["compress-dataset", "a.txt", str(tmp_path / "x.jsonl"), "--rate", "0.5"]) == 2


SNAP = Path(__file__).parent / "snapshots" / "batch_single.jsonl"


def test_single_output_bytes_match_golden(corpus, tiny_model_dir, tmp_path):
    """Behaviour freeze of the on-disk row format (single engine, seeded tiny model). Regenerate
    only for an intended change: MOOSCOMP_UPDATE_SNAPSHOTS=1 pytest tests/test_batch.py."""
    import os

    out = tmp_path / "golden.jsonl"
    compress_dataset(corpus, out, _cfg(tiny_model_dir, engine="single"))
    got = out.read_bytes()
    if os.environ.get("MOOSCOMP_UPDATE_SNAPSHOTS") == "1" or not SNAP.exists():
        SNAP.parent.mkdir(parents=True, exist_ok=True)
        SNAP.write_bytes(got)
    assert got == SNAP.read_bytes()


def _cli_args(tiny_model_dir, src, out, *extra):
    return ["compress-dataset", str(src), str(out), "--rate", "0.5", "--engine", "single",
            "--model", str(tiny_model_dir), "--device", "cpu", "--quiet", *extra]


def test_cli_missing_column_is_an_error_row_and_fails_past_the_threshold(
        tiny_model_dir, tmp_path, capsys):
    from mooscomp.cli import main

    src = tmp_path / "in.jsonl"
    rows = [{"id": i, "body": f"Row {i} has its text under another name."} for i in range(59)]
    rows.insert(30, {"id": 59, "text": TEXT})
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(_cli_args(tiny_model_dir, src, tmp_path / "o.jsonl")) == 3
    err = capsys.readouterr().err
    assert "59 of 60 rows" in err and "--max-error-rate" in err and "missing_text" in err
    out = read_rows(tmp_path / "o.jsonl")  # the output is still written, in order
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    assert sum(str(r["error"]).startswith("missing_text") for r in out) == 59
    assert out[30]["error"] is None and out[30]["compressed_prompt"]
    # a threshold above the error share passes; 1 = never fail
    assert main(_cli_args(tiny_model_dir, src, tmp_path / "o2.jsonl", "--max-error-rate", "1")) == 0
    assert main(_cli_args(tiny_model_dir, src, tmp_path / "o3.jsonl", "--max-error-rate", "2")) == 2


def test_csv_output_is_refused_in_one_line(corpus, tiny_model_dir, tmp_path, capsys):
    from mooscomp.cli import main

    out = tmp_path / "o.csv"
    assert main(_cli_args(tiny_model_dir, corpus, out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ".csv" in err and ".jsonl or .parquet" in err
    assert not out.exists() and not (tmp_path / "o.csv.parts").exists()
    with pytest.raises(ValueError, match="csv"):
        compress_dataset(corpus, out, _cfg(tiny_model_dir, engine="single"))
    # an explicit format is obeyed whatever the suffix
    rep = compress_dataset(corpus, out, _cfg(tiny_model_dir, engine="single",
                                             output_format="jsonl"))
    assert rep.rows == N_ROWS and json.loads(out.read_text().splitlines()[0])


def test_parquet_keeps_strings_as_strings_with_mixed_columns(tiny_model_dir, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    sents = _sentences()
    rows = [{"id": i, "text": sents[i % len(sents)], "note": f"n{i}"} for i in range(10)]
    rows[3]["text"] = 42  # one non-string text ...
    rows[5]["note"] = {"k": [1, 2]}  # ... and one non-string in another column
    rows[8]["text"] = ["a", "list"]  # shard 2 (rows 8-9): its own mix of types
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "o.parquet"
    rep = compress_dataset(src, out, _cfg(tiny_model_dir, engine="single", shard_rows=4,
                                          batch_rows=2))
    assert rep.error_rows == 2 and rep.errors == {"non_string_text": 2}
    t = pq.read_table(out)
    assert t.schema.field("text").type == pa.string()
    assert t.schema.field("note").type == pa.string()
    got = t.to_pylist()
    assert [r["id"] for r in got] == list(range(10))
    for i, r in enumerate(got):
        if i in (3, 8):
            assert r["error"].startswith("non_string_text") and r["compressed_prompt"] is None
        else:
            assert r["text"] == sents[i % len(sents)]  # never JSON-quoted
            assert r["error"] is None and isinstance(r["compressed_prompt"], str)
    assert got[3]["text"] == "42" and got[8]["text"] == '["a", "list"]'  # value kept, as JSON
    assert got[4]["note"] == "n4" and json.loads(got[5]["note"]) == {"k": [1, 2]}
