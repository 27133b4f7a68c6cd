"""Reader F1 of precomputed prompts, dev first, then test for the variant dev chose.

The GPU half of ``benchmarks/readable_focus.py`` (see its docstring). The prompts file holds rows
``{key, split, variant, task, rate, item_id, kind, question, answers, meta, text, survival}``.
All ``dev`` rows are read; the variant (not a baseline) with the best mean dev F1 over every
(task, rate) cell is chosen by that fixed rule; then the ``test`` rows of the chosen variant (and
of ``<chosen>_no_outlier``, its outlier-free ablation, when the file has it), ``--test-variants``
(the default and the baselines) and ``full`` are read. Writes
``results.jsonl.gz`` and ``choice.json`` to ``--out``.

    python3 scripts/device/read_prompts_job.py --reader /root/qwen --prompts P.jsonl.xz --out $OUT
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def read_rows(reader: Any, rows: list[dict[str, Any]], out: Any) -> None:
    """Answer and score ``rows`` (one prompt template at a time, longest first)."""
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_kind[r["kind"]].append(r)
    for krows in by_kind.values():
        _read_kind(reader, sorted(krows, key=lambda r: -len(r["text"])), out)


def _read_kind(reader: Any, rows: list[dict[str, Any]], out: Any) -> None:
    from mooscomp.evaluation.metrics import score_item
    from mooscomp.evaluation.reader import MAX_NEW_TOKENS, build_prompt

    for g in range(0, len(rows), 512):
        group = rows[g : g + 512]
        answers = reader.generate([build_prompt(r["kind"], r["text"], r["question"]) for r in group],
                                  max_new_tokens=MAX_NEW_TOKENS[group[0]["kind"]])
        for r, ans in zip(group, answers, strict=True):
            s = score_item(r.get("metric", "qa"), ans, r["answers"], r.get("meta") or {})
            out.write(json.dumps({k: r[k] for k in ("key", "split", "variant", "task", "rate", "item_id",
                                                    "survival", "compressed_tokens", "origin_tokens")}
                                 | {"answer": ans, "score": s["score"], "scores": s}, ensure_ascii=False) + "\n")
            r["score"] = s["score"]
        out.flush()


def choose(dev: list[dict[str, Any]], excluded: set[str]) -> tuple[str, dict[str, float]]:
    cells: dict[str, dict[tuple[str, float], list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in dev:
        cells[r["variant"]][(r["task"], float(r["rate"]))].append(r["score"])
    means = {v: sum(sum(x) / len(x) for x in c.values()) / len(c) for v, c in cells.items() if v not in excluded}
    if not means:  # a test-only prompts file: nothing to choose, --test-variants are read
        return "", {}
    return max(means, key=lambda v: means[v]), means


def test_rows(rows: list[dict[str, Any]], chosen: str, variants: list[str], qa_only: list[str]) -> list[dict[str, Any]]:
    """The test rows to read: the chosen variant, its outlier-free ablation
    (``<chosen>_no_outlier``) when present, and ``variants``; ``qa_only`` ones on QA tasks only."""
    want, qa = {chosen, f"{chosen}_no_outlier", *variants}, set(qa_only)
    return [r for r in rows if r["split"] == "test" and r["variant"] in want
            and (r["task"] in ("squad", "hotpotqa") or r["variant"] not in qa)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reader", required=True, help="reader model folder (scripts/device/gguf_to_hf.py)")
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--baselines", default="truncate,caps_digits,full")
    ap.add_argument("--test-variants", default="default,truncate,caps_digits,full")
    ap.add_argument("--qa-only-variants", default="caps_digits",
                    help="test variants read on the QA tasks only (the others: every task)")
    a = ap.parse_args()
    from mooscomp.evaluation.reader import TransformersReader

    t0 = time.perf_counter()
    opener = lzma.open if a.prompts.endswith(".xz") else gzip.open
    with opener(a.prompts, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    reader = TransformersReader.load(a.reader, device=a.device, max_batch_size=128, max_batch_tokens=256_000)
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with gzip.open(out_dir / "results.jsonl.gz", "wt", encoding="utf-8") as out:
        dev = [r for r in rows if r["split"] == "dev"]
        read_rows(reader, dev, out)
        chosen, means = choose(dev, set(a.baselines.split(",")))
        print(f"[read] dev read in {time.perf_counter() - t0:.0f}s; chosen {chosen}: "
              + ", ".join(f"{v} {m:.4f}" for v, m in sorted(means.items(), key=lambda x: -x[1])), flush=True)
        (out_dir / "choice.json").write_text(json.dumps({"chosen": chosen, "dev_mean_f1": means,
                                                          "rule": "best mean dev F1 over task x rate"}, indent=1))
        read_rows(reader, test_rows(rows, chosen, a.test_variants.split(","), a.qa_only_variants.split(",")), out)
    print(f"[read] done in {time.perf_counter() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
