"""The reader-judged focus benchmark: its read job (dev choice, test reading) and report helpers."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_module as _load

ROOT = Path(__file__).resolve().parents[1]


class _Reader:
    """Answers "Paris" when the prompt's context holds it."""

    def generate(self, prompts: list[str], *, max_new_tokens: int) -> list[str]:
        return ["Paris" if "Paris" in p else "no idea" for p in prompts]


def _row(split: str, variant: str, item: str, text: str, rate: float = 0.25) -> dict:
    return {"key": f"{split}|{variant}|{rate}|{item}", "split": split, "variant": variant, "rate": rate,
            "task": "squad", "item_id": item, "kind": "qa", "metric": "qa", "question": "Capital?",
            "answers": ["Paris"], "meta": {}, "text": text, "survival": float("Paris" in text),
            "origin_tokens": 10, "compressed_tokens": 3}


def test_read_job_chooses_on_dev_and_reads_only_the_chosen_test_rows() -> None:
    job = _load("read_prompts_job", "scripts/device/read_prompts_job.py")
    rows = [_row("dev", "good", "a", "Paris is the capital"), _row("dev", "bad", "a", "the capital"),
            _row("dev", "truncate", "a", "Paris Paris")]
    out = io.StringIO()
    job.read_rows(_Reader(), rows, out)
    scored = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {r["variant"]: r["score"] for r in scored} == {"good": 1.0, "bad": 0.0, "truncate": 1.0}
    chosen, means = job.choose(rows, {"truncate"})  # baselines never win the choice
    assert chosen == "good" and means == {"good": 1.0, "bad": 0.0}
    test = [_row("test", v, "b", "Paris") for v in ("good", "good_no_outlier", "bad", "bad_no_outlier", "base")]
    test.append({**_row("test", "base", "c", "x"), "task": "xsum"})
    picked = job.test_rows(test, chosen, ["base"], ["base"])  # base: a QA-only baseline
    assert [r["variant"] for r in picked] == ["good", "good_no_outlier", "base"]


def test_report_paired_deltas_and_answer_sentence_share() -> None:
    rf = _load("readable_focus", "benchmarks/readable_focus.py")
    rows = []
    for i, (a, b) in enumerate([(1.0, 0.0), (1.0, 1.0), (0.0, 0.0), (1.0, 0.0)]):
        for var, score in (("x", a), ("truncate", b)):
            rows.append({"split": "test", "variant": var, "task": "squad", "rate": 0.25, "item_id": str(i),
                         "score": score})
    out = rf.paired_deltas(rows, ["x"], ("truncate",))
    cell = out["x - truncate"]["squad"]["0.25"]
    assert cell["delta"] == pytest.approx(0.5) and cell["n"] == 4
    assert cell["ci95"][0] <= 0.5 <= cell["ci95"][1]

    class Item:
        answers = ("Paris",)
        contexts = ("Rome is old. Paris is the capital of France. It rains.",)

    # kept words keep their punctuation, as compressed text does
    assert rf.answer_sentence_share(Item(), "Paris capital France.") == pytest.approx(3 / 6)
    Item.answers = ("Berlin",)
    assert rf.answer_sentence_share(Item(), "anything") is None


def test_report_stage_writes_json_and_plot(tmp_path: Path) -> None:
    rf = _load("readable_focus", "benchmarks/readable_focus.py")
    rows = [{"split": s, "variant": v, "task": t, "rate": r, "item_id": "i", "score": 0.5, "survival": 1.0}
            for s in ("dev", "test") for v in ("default", "truncate", "old@t") for t in ("squad", "hotpotqa")
            for r in rf.RATES]
    res = tmp_path / "res.jsonl.gz"
    with gzip.open(res, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    choice = tmp_path / "choice.json"
    choice.write_text(json.dumps({"chosen": "default"}))
    out = tmp_path / "rf.json"
    proxy = tmp_path / "proxy.json"
    proxy.write_text(json.dumps({"grid": {}, "rows": {"dev/default/0.25": {"squad": {"survival": 0.4}}}}))
    args = {"results": str(res), "choice": str(choice), "out": str(out), "mode": "focus", "proxy": str(proxy)}
    rf.report_stage(type("A", (), {**args, "paired_against": ""})())
    report = json.loads(out.read_text())
    assert report["proxy"]["rows"]["dev/default/0.25"]["squad"]["survival"] == 0.4
    assert report["score"]["test"]["default"]["squad"]["0.25"]["score"] == 0.5
    assert report["paired_test"]["default - truncate"]["squad"]["0.25"]["delta"] == 0.0
    assert "default - old@t" not in report["paired_test"]
    assert out.with_suffix(".png").stat().st_size > 1000
    # a tagged shipped variant is compared only when named
    rf.report_stage(type("A", (), {**args, "paired_against": "old@t,truncate"})())
    assert set(json.loads(out.read_text())["paired_test"]) == {"default - old@t", "default - truncate"}


def test_export_stage_writes_quality_runner_rows(tmp_path: Path) -> None:
    rf = _load("readable_focus", "benchmarks/readable_focus.py")
    base = {"task": "squad", "item_id": "squad/1", "origin_tokens": 100, "compressed_tokens": 33, "answer": "Paris"}
    rows = [{**base, "split": "test", "variant": "lead", "rate": 0.33, "survival": 1.0,
             "scores": {"em": 1.0, "f1": 1.0, "contains": 1.0, "score": 1.0}},
            {**base, "split": "dev", "variant": "lead", "rate": 0.33, "survival": 1.0, "scores": {"score": 1.0}},
            {**base, "split": "test", "variant": "other", "rate": 0.33, "survival": 0.0, "scores": {"score": 0.0}},
            {**base, "task": "bbh", "item_id": "bbh/1", "split": "test", "variant": "lead", "rate": 0.5,
             "survival": None, "scores": {"accuracy": 0.0, "score": 0.0}}]
    res = tmp_path / "res.jsonl.gz"
    with gzip.open(res, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    out = tmp_path / "rows.jsonl.gz"
    rf.export_stage(type("A", (), {"results": str(res), "as_methods": "lead=mooscomp", "out": str(out)})())
    with gzip.open(out, "rt") as f:
        got = [json.loads(line) for line in f]
    assert [g["key"] for g in got] == ["mooscomp|0.3300|squad/1", "mooscomp|0.5000|bbh/1"]
    assert got[0]["f1"] == 1.0 and got[0]["survival"] == 1.0 and got[0]["answer"] == "Paris"
    assert "survival" not in got[1] and got[1]["accuracy"] == 0.0 and got[1]["failure"] is None
    with pytest.raises(SystemExit, match="--as"):
        rf.export_stage(type("A", (), {"results": str(res), "as_methods": "", "out": str(out)})())


def test_question_reader_ratio_pairs_items_with_full() -> None:
    qr = _load("question_reader_ratio", "benchmarks/question_reader_ratio.py")
    rows = [{"split": "test", "task": "hotpotqa", "variant": "full", "rate": 1.0, "item_id": f"i{k}", "score": 1.0}
            for k in range(4)]
    rows += [{"split": "test", "task": "hotpotqa", "variant": "default", "rate": 0.25, "item_id": f"i{k}",
              "score": s} for k, s in enumerate((1.0, 1.0, 1.0, 0.0))]
    rows.append({"split": "test", "task": "hotpotqa", "variant": "default", "rate": 0.25, "item_id": "lone",
                 "score": 0.0})  # no full row: left out
    rows.append({"split": "dev", "task": "hotpotqa", "variant": "default", "rate": 0.25, "item_id": "i0",
                 "score": 0.0})  # dev rows never count
    row = qr.ratio_rows(rows, 0.25)["hotpotqa"]["default"]
    assert row["n"] == 4 and row["ratio"] == 0.75 and row["full_f1"] == 1.0
    assert row["ci95"][0] <= 0.75 <= row["ci95"][1] and row["meets_target"] is False
    assert qr.ratio_rows(rows, 0.5) == {}


def test_survival_ceiling_oracle_bounds() -> None:
    sc = _load("survival_ceiling", "benchmarks/survival_ceiling.py")
    context = " ".join(["w"] * 40)  # 40 words: a quarter is 10
    # answers of 1, 2, 3 and 8 words: 75% of them (3) need 1 + 2 + 3 = 6 words; 10 words hold 3 of 4
    need, held = sc.paragraph_bounds(context, ["a", "b c", "d e f", "g h i j k l m n"])
    assert need == pytest.approx(6 / 40) and held == pytest.approx(3 / 4)
    assert [sc.answer_kind(x) for x in ("in 1066", "Norman rule", "a coastal city")] == [
        "number", "capitalised", "lower_case"]


def test_question_worthiness_labels_and_features(tiny_compressor) -> None:
    qw = _load("question_worthiness", "benchmarks/question_worthiness.py")
    cfg = tiny_compressor.config
    prep = [tiny_compressor.prepare(t, cfg) for t in ("The Eiffel Tower is in Paris.", "In 1889 it opened, the tower.")]
    tiny_compressor.score(prep, cfg)
    # the normalised answer ("the" dropped) as a whole-token run; punctuation words are skipped over
    y = qw.answer_labels(prep, "the Eiffel Tower")
    assert y[0].tolist() == [0, 1, 1, 0, 0, 0, 0] and not y[1].any()
    assert not any(v.any() for v in qw.answer_labels(prep, "yes"))
    f = qw.word_features(prep)
    assert [a.shape for a in f] == [(7, len(qw.FEATURES)), (8, len(qw.FEATURES))]
    col = {name: i for i, name in enumerate(qw.FEATURES)}
    assert f[1][1, col["digit"]] == 1 and f[0][1, col["capitalised_mid"]] == 1 and f[0][0, col["capitalised_initial"]] == 1
    assert f[0][:, col["first_sentence"]].all()
    mu, sd, w, bias = qw.fit(np.concatenate(f), np.concatenate(y))
    assert w.shape == (len(qw.FEATURES),) and np.isfinite(w).all() and np.isfinite(bias)


def test_state_capture_matches_the_default_scorer(tiny_compressor) -> None:
    qw = _load("question_worthiness", "benchmarks/question_worthiness.py")
    cfg = tiny_compressor.config
    texts = ("The Eiffel Tower is in Paris.", "In 1889 it opened, the tower.")
    ref = [tiny_compressor.prepare(t, cfg) for t in texts]
    tiny_compressor.score(ref, cfg)
    cap = qw.StateCapture(tiny_compressor.model)
    tiny_compressor.scorer = cap
    prep = [tiny_compressor.prepare(t, cfg) for t in texts]
    tiny_compressor.score(prep, cfg)
    for a, b in zip(ref, prep, strict=True):
        np.testing.assert_allclose(a.p_tok, b.p_tok, atol=1e-5)
    dim = int(tiny_compressor.model.encoder.config.hidden_size)
    states = cap.word_states(prep)
    assert [s.shape for s in states] == [(len(p.words), dim) for p in prep]
    assert all(np.isfinite(s).all() and np.abs(s).sum(1).min() > 0 for s in states)  # every word has tokens here


def test_probe_fusion() -> None:
    qw = _load("question_worthiness", "benchmarks/question_worthiness.py")
    p = np.array([0.1, 0.5, 0.9], np.float32)
    add = np.array([1.0, -1.0, 0.0])
    np.testing.assert_allclose(qw.fuse(p, add, 0.0, "logit"), p, atol=1e-6)
    np.testing.assert_allclose(qw.fuse(p, add, 0.5, "additive"), [0.6, 0.0, 0.9], atol=1e-6)
    got = qw.fuse(p, add, 2.0, "logit")
    assert got[0] > p[0] and got[1] < p[1] and got[2] == pytest.approx(0.9)
    assert got[1] == pytest.approx(1 / (1 + np.exp(2.0)), rel=1e-5)  # logit(0.5) = 0, minus 2


def test_fold_adds_the_probe_logit_to_the_keep_head(tiny_compressor, tmp_path) -> None:
    import torch

    from mooscomp import Compressor
    from mooscomp.modeling import load_model

    fw = _load("fold_worthiness", "scripts/fold_worthiness.py")
    src = tiny_compressor.save_pretrained(tmp_path / "src", dtype=torch.int8)
    dim = int(tiny_compressor.model.encoder.config.hidden_size)
    w = np.random.default_rng(0).normal(size=dim) * 0.1
    fw.fold(src, tmp_path / "out", w, 0.3, 2.0, {"questions": 1})
    old, _, _, _ = load_model(src)
    new, _, cfg, _ = load_model(tmp_path / "out")  # the recorded sha256 matches the rewritten weights
    assert cfg["metadata"]["worthiness_probe"]["gamma"] == 2.0
    ids, mask = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]]), torch.ones(1, 6, dtype=torch.long)
    with torch.no_grad():
        a, b = old(ids, mask), new(ids, mask)
    h = a.last_hidden[0].double().numpy()  # (6, dim): the encoder is untouched
    np.testing.assert_allclose(b.last_hidden[0].double().numpy(), h, atol=1e-6)
    diff_old = (a.logits[0, :, 1] - a.logits[0, :, 0]).double().numpy()
    diff_new = (b.logits[0, :, 1] - b.logits[0, :, 0]).double().numpy()
    np.testing.assert_allclose(diff_new - diff_old, 2.0 * (h @ w + 0.3), atol=1e-4)  # float32 head: exact
    assert Compressor.from_pretrained(tmp_path / "out").compress("The tower opened in 1889.", rate=0.5).text


def test_fold_is_exact_over_a_legacy_int8_head_with_an_outlier_weight(tiny_compressor, tmp_path) -> None:
    """Models saved before int8 storage kept small matrices in float32 hold an int8 keep head; with
    one large weight (the shipped head's is ~200) its row step swallowed a folded probe entirely."""
    import torch
    from safetensors.numpy import load_file, save_file

    from mooscomp._util import sha256_file
    from mooscomp.modeling import SCALE_SUFFIX, WEIGHTS_NAME, load_model

    fw = _load("fold_worthiness", "scripts/fold_worthiness.py")
    with torch.no_grad():
        tiny_compressor.model.head.weight[1, 0] = 200.0
    src = tiny_compressor.save_pretrained(tmp_path / "src", dtype=torch.int8)
    t = load_file(str(src / WEIGHTS_NAME))
    head = t["head.weight"].astype(np.float64)  # (2, dim) as the old storage wrote it: int8 rows
    scale = np.abs(head).max(axis=1) / 127.0
    t["head.weight"] = np.round(head / scale[:, None]).astype(np.int8)
    t["head.weight" + SCALE_SUFFIX] = scale.astype(np.float16)
    save_file(t, str(src / WEIGHTS_NAME))
    cfg = json.loads((src / "config.json").read_text())
    cfg["weights_sha256"] = sha256_file(src / WEIGHTS_NAME)
    (src / "config.json").write_text(json.dumps(cfg))
    dim = int(tiny_compressor.model.encoder.config.hidden_size)
    w = np.random.default_rng(1).normal(size=dim) * 0.05  # far below the int8 step of 200 / 127
    fw.fold(src, tmp_path / "out", w, 0.0, 2.0, {"questions": 1})
    assert "head.weight" + SCALE_SUFFIX not in load_file(str(tmp_path / "out" / WEIGHTS_NAME))
    old, _, _, _ = load_model(src)
    new, _, _, _ = load_model(tmp_path / "out")
    np.testing.assert_allclose((new.head.weight[1] - old.head.weight[1]).detach().double().numpy(), 2.0 * w, atol=1e-5)


def test_sentence_worthiness_ranks_sentences_by_the_extra_term_only() -> None:
    """The answer head moves whole sentences: the patched focus ranks by score + extra, and returns
    the plain scores + the bonus of those ranks (word order inside a sentence unchanged)."""
    sw = _load("sentence_worthiness", "benchmarks/sentence_worthiness.py")
    from mooscomp.focus import focus_scores

    ws = np.array([0, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(sw.sentence_pool(ws, np.array([0.1, 0.9, 0.2, 0.3, 0.5, 0.4]), "max"),
                               [0.9, 0.9, 0.3, 0.3, 0.5, 0.5])
    p = np.array([0.1, 0.9, 0.2, 0.3, 0.5, 0.4])
    assert sw.sentence_pool(ws, p, "mean") is p
    scores, costs = [np.array([0.6, 0.5, 0.2, 0.1, 0.3, 0.2])], [np.ones(6)]
    focus = sw._patched_focus(focus_scores)
    kw = {"weight": 1.0, "spread": 1.0}
    plain = focus([ws], scores, costs, 2.0, **kw)[0]
    np.testing.assert_allclose(plain, focus_scores([ws], scores, costs, 2.0, **kw)[0])  # no extra: unchanged
    assert plain[0] - scores[0][0] > plain[2] - scores[0][2]  # sentence 0 (highest mean) gets the bonus
    sw._RANK["extra"] = [np.array([0.0, 0.0, 5.0, 5.0, 0.0, 0.0])]  # sentence 1 is worth asking about
    try:
        moved = focus([ws], scores, costs, 2.0, **kw)[0]
    finally:
        sw._RANK.clear()
    bonus = moved - scores[0]
    assert bonus[2] == bonus[3] > bonus[0] == bonus[1]  # whole sentence 1 ranked first, words keep their order
    assert moved[2] > moved[3]


def test_focus_proxy_reports_survival_and_sentence_share(tiny_model_dir, tmp_path, monkeypatch) -> None:
    import mooscomp.training.downstream as downstream
    from mooscomp.evaluation.items import EvalItem

    fp = _load("focus_proxy", "benchmarks/focus_proxy.py")
    ctx = "Alice went to Paris in 1999. She met Bob at the station near the river. The weather was cold."
    items = [EvalItem(task=t, item_id=f"{t}/0", question="Where?", answers=("Paris",), kind="qa", contexts=(ctx,))
             for t in ("squad", "hotpotqa")]
    monkeypatch.setattr(downstream, "dev_qa_items", lambda n: items)
    out = tmp_path / "fp.json"
    monkeypatch.setattr("sys.argv", ["focus_proxy.py", "--model", f"tiny={tiny_model_dir}", "--focus", "0,1",
                                     "--spread", "1.5", "--out", str(out)])
    assert fp.main() == 0
    rep = json.loads(out.read_text())
    assert [(r["focus"], r["spread"]) for r in rep["rows"]] == [(0.0, 1.5), (1.0, 1.5)]
    for r in rep["rows"]:
        half = r["cells"]["squad/0.5"]
        assert 0 <= half["survival"] <= 1
        assert half["sentence_share"] is None or 0 < half["sentence_share"] <= 1  # only where the answer survives
