"""Reader F1 of the question path as a share of the full prompt's, on the same items (issue 14's
"at 4x, >= 90% of full context" target), with a paired bootstrap interval of the ratio.

Reads a ``scripts/device/read_prompts_job.py`` results file that holds the question-path variants
and ``full`` for the same test items (``readable_focus.py --mode question --stage compress --only
default,q_relevance_order,full``), so both sides come from one reader run:

    .venv/bin/python benchmarks/question_reader_ratio.py \\
        --results reports/raw/readable_question_fc1_results.jsonl.gz --rate 0.25 \\
        --out reports/question_reader_ratio.json

Prints a table; writes JSON (per task and variant: F1, full F1, ratio and its 95% interval, n).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TARGET = 0.9


def ratio_rows(rows: list[dict], rate: float, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """``{task: {variant: {f1, full_f1, ratio, ci95, n, meets_target}}}`` over the items that have
    both the variant at ``rate`` and ``full``."""
    score: dict[tuple[str, str, float], dict[str, float]] = defaultdict(dict)
    for row in rows:
        if row["split"] == "test":
            score[(row["task"], row["variant"], float(row["rate"]))][row["item_id"]] = float(row["score"])
    rng = np.random.default_rng(seed)
    out: dict = {}
    for (task, variant, r), by_item in sorted(score.items()):
        full = score.get((task, "full", 1.0), {})
        ids = [i for i in by_item if i in full]
        if variant == "full" or abs(r - rate) > 1e-9 or not ids:
            continue
        a = np.asarray([by_item[i] for i in ids])  # (n,) variant F1 per item
        f = np.asarray([full[i] for i in ids])  # (n,) full-prompt F1 per item
        idx = rng.integers(0, len(ids), size=(n_boot, len(ids)))  # (n_boot, n) resampled items
        boot = a[idx].mean(1) / np.maximum(f[idx].mean(1), 1e-9)
        ratio = float(a.mean() / max(f.mean(), 1e-9))
        out.setdefault(task, {})[variant] = {
            "f1": round(float(a.mean()), 4), "full_f1": round(float(f.mean()), 4), "ratio": round(ratio, 4),
            "ci95": [round(float(x), 4) for x in np.percentile(boot, [2.5, 97.5])], "n": len(ids),
            "meets_target": ratio >= TARGET}
    return out


def main() -> int:
    from mooscomp._util import iter_jsonl

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True)
    ap.add_argument("--rate", type=float, default=0.25)
    ap.add_argument("--out", default=str(ROOT / "reports" / "question_reader_ratio.json"))
    ap.add_argument("--variants", default=None,
                    help="JSON {variant: what it is} for the report (default: default / q_relevance_order)")
    a = ap.parse_args()
    rows = list(iter_jsonl(a.results, strict=True))
    table = ratio_rows(rows, a.rate)
    if not table:
        raise SystemExit(f"{a.results}: no test rows with both a variant at rate {a.rate} and 'full'")
    Path(a.out).write_text(json.dumps({
        "what": __doc__.split("\n\n")[0], "target": f"ratio >= {TARGET} at 4x (issue 14)", "rate": a.rate,
        "results": a.results, "variants": json.loads(a.variants) if a.variants else {
            "default": "compress(question=) as shipped (original order)",
            "q_relevance_order": "AllocationConfig(order='relevance')"},
        "table": table}, indent=1) + "\n")
    for task, by_var in table.items():
        for v, row in by_var.items():
            print(f"{task:10s} {v:20s} F1 {row['f1']:.3f} full {row['full_f1']:.3f} ratio {row['ratio']:.3f} "
                  f"[{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}] n={row['n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
