"""Questions a reader could ask about corpus passages, written by the reader LLM (issue 15).

Without a question the compressor must guess which spans will be asked about; the offline QA sets
with span answers are evaluation sets or reserved, and HotpotQA's evaluation-disjoint pool has one
question per ten paragraphs. This job asks the reader LLM (Qwen2.5-Coder-1.5B-Instruct) for
``--per-passage`` SQuAD-style questions over each training-corpus passage, each answered by a short
phrase copied from the passage, and keeps the pairs whose answer is a whole-token occurrence in the
passage (normalised as the QA metric normalises). ``scripts/fold_worthiness.py --source generated``
fits the question-worthiness probe on them. Greedy decoding; passages sorted by length.

Input rows ``{pid, text, ...}`` (``--passages`` .jsonl.xz); output ``qa.jsonl.gz`` rows
``{pid, pairs: [[question, answer], ...], raw_pairs, ungrounded}`` and ``summary.json`` in ``--out``.

    python3 scripts/device/question_gen_job.py --reader /root/qwen --passages P.jsonl.xz --out $OUT
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

PROMPT = (
    "Read the passage, then write {n} different questions about it, each about a different fact, "
    "spread over the whole passage. Every answer must be a short phrase copied word for word from "
    "the passage (a name, number, date, place, object or short description; at most 6 words).\n\n"
    "Passage:\n{passage}\n\n"
    "Write exactly {n} question-answer pairs, each on two lines:\nQ: <question>\nA: <answer>"
)
_PAIR = re.compile(r"^\s*(?:\d+[.)]\s*)?Q\d*\s*[:.]\s*(.+?)\s*\n\s*(?:\d+[.)]\s*)?A\d*\s*[:.]\s*(.+?)\s*$", re.M)


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """(question, answer) pairs of a "Q: … / A: …" listing, in order, answers stripped of quotes."""
    return [(q.strip(), a.strip().rstrip(".").strip("\"'*`").strip()) for q, a in _PAIR.findall(text)]


def grounded(passage: str, answer: str) -> bool:
    """Whether the normalised answer is a whole-token run of the normalised passage."""
    from mooscomp.evaluation.metrics import normalize_answer

    a = normalize_answer(answer).split()
    if not a or len(a) > 8:
        return False
    p = normalize_answer(passage).split()
    return any(p[k : k + len(a)] == a for k in range(len(p) - len(a) + 1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reader", required=True, help="a transformers model folder (gguf_to_hf.py output)")
    ap.add_argument("--passages", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-passage", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=320)
    ap.add_argument("--limit", type=int, default=0, help="first N passages only (0: all)")
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    from mooscomp.evaluation.reader import TransformersReader

    t0 = time.perf_counter()
    with lzma.open(a.passages, "rt", encoding="utf-8") as f:
        rows = [json.loads(x) for x in f]
    if a.limit:
        rows = rows[: a.limit]
    reader = TransformersReader.load(a.reader, device=a.device, max_batch_size=256, max_batch_tokens=400_000)
    print(f"[qgen] {len(rows)} passages, reader loaded in {time.perf_counter() - t0:.0f}s", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    n_raw = n_kept = 0
    rows.sort(key=lambda r: -len(r["text"]))
    with gzip.open(out / "qa.jsonl.gz", "wt", encoding="utf-8") as f:
        for g in range(0, len(rows), 1024):
            group = rows[g : g + 1024]
            texts = reader.generate([PROMPT.format(n=a.per_passage, passage=r["text"]) for r in group],
                                    max_new_tokens=a.max_new_tokens)
            for r, t in zip(group, texts, strict=True):
                raw = parse_pairs(t)
                ok = [grounded(r["text"], ans) for _, ans in raw]
                pairs = [[q, ans] for (q, ans), g in zip(raw, ok, strict=True) if g]
                n_raw += len(raw)
                n_kept += len(pairs)
                rec: dict[str, Any] = {"pid": r["pid"], "pairs": pairs, "raw_pairs": len(raw),
                                       "ungrounded": [[q, ans] for (q, ans), g in zip(raw, ok, strict=True) if not g]}
                if not raw:
                    rec["output"] = t[:400]
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
            print(f"[qgen] {g + len(group)}/{len(rows)} passages, {n_kept}/{n_raw} grounded pairs, "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
    summary = {"passages": len(rows), "pairs_parsed": n_raw, "pairs_grounded": n_kept,
               "per_passage_asked": a.per_passage, "max_new_tokens": a.max_new_tokens,
               "reader": reader.name, "truncated_prompts": reader.truncated,
               "seconds": round(time.perf_counter() - t0, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
