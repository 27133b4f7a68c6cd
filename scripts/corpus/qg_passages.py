"""Passages of the modern training corpus for question generation (scripts/device/question_gen_job.py).

SQuAD-sized passages (``MIN_WORDS``–``MAX_WORDS`` words) from the encyclopedic sources (Wikipedia
articles and leads, DROP's passages) and, for a share, speeches and blogs cut at blank lines; taken
in sha256(pid) order so a smaller ``--n`` is a prefix of a larger one. The corpus is already
overlap-filtered against every evaluation and reserved set (scripts/corpus/build_modern.py).

    .venv/bin/python scripts/corpus/qg_passages.py --n 10000 --out data/cache/qgen/qg_passages.jsonl.xz

The committed questions (data/labels_modern/qgen_qa.jsonl.gz) cover the 6,144 longest passages of
``--n 10000``: question_gen_job writes 1,024 passages at a time, longest first, and its call ended after
six groups (checked in session 19: every pid is there, none outside them). scripts/worthiness_finetune.py,
scripts/fold_worthiness.py and scripts/device/answer_head_job.py read the file written by the command above.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import lzma
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "data" / "cache" / "corpus_modern" / "docs.jsonl.gz"
MIN_WORDS, MAX_WORDS = 50, 260
SHARES = {"encyclopedic": 0.8, "other": 0.2}
OTHER_SOURCES = ("sotu", "blogs_cosmosqa")
ENCYCLOPEDIC_SOURCES = ("wikipedia_articles", "wikipedia_leads", "drop_passages")


def passages(docs: Path = DOCS) -> dict[str, list[dict[str, str]]]:
    """{"encyclopedic" | "other": [{pid, source, text}]}, each in sha256(pid) order."""
    out: dict[str, list[dict[str, str]]] = {"encyclopedic": [], "other": []}
    with gzip.open(docs, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            kind = "encyclopedic" if d["source"] in ENCYCLOPEDIC_SOURCES else \
                "other" if d["source"] in OTHER_SOURCES else ""
            if not kind:
                continue
            for k, para in enumerate(p.strip() for p in d["text"].split("\n\n")):
                text = " ".join(para.split())
                if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
                    out[kind].append({"pid": f"{d['doc_id']}@{k}", "source": d["source"], "text": text})
    for rows in out.values():
        rows.sort(key=lambda r: hashlib.sha256(r["pid"].encode()).hexdigest())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    pools = passages()
    rows = [r for kind, share in SHARES.items() for r in pools[kind][: round(a.n * share)]]
    with lzma.open(a.out, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    words = sum(len(r["text"].split()) for r in rows)
    print(json.dumps({"passages": len(rows), "words": words, "available": {k: len(v) for k, v in pools.items()},
                      "corpus_sha256": hashlib.sha256(DOCS.read_bytes()).hexdigest()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
