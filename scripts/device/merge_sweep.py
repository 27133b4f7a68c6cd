"""Merge the rows of a parallel seed sweep (``train_job.py run --setting K --rows-only``) into
``reports/training_ablation.json``: ``summary.downstream`` gains the new (beta, seed) rows and
``summary.downstream_by_beta`` is recomputed over every seed.

A process whose rows.json did not come back (the device returns at most 8 files) is read from its
log lines (``[name] f1 .. S^L ..`` and ``survival@4x {...}``); such rows say ``"from": "log"``.

    .venv/bin/python scripts/device/merge_sweep.py --report reports/training_ablation.json \\
        --rows /work/.device/3/*/rows.json --logs /work/.device/4/log_*.txt
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import statistics
from pathlib import Path
from typing import Any

_RUN = re.compile(r"\[(?P<name>top\d+_shape_b(?P<beta>[\d.]+)_s(?P<seed>\d+))\] f1 (?P<f1>[\d.]+) S\^L (?P<cos>-?[\d.]+)")
_SURV = re.compile(r"survival@4x (\{.*\})")
KEYS = ("beta", "seed", "val_f1", "last_layer_cos", "answer_survival_4x", "answer_survival_4x_by_task")


def rows_from_log(text: str) -> list[dict[str, Any]]:
    """(beta, seed, F1, S^L, survival) rows of one train_job log."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        if m := _RUN.search(line):
            out.append({"name": m["name"], "beta": float(m["beta"]), "seed": int(m["seed"]),
                        "val_f1": float(m["f1"]), "last_layer_cos": float(m["cos"]), "from": "log"})
        elif (m := _SURV.search(line)) and out:
            by_task = ast.literal_eval(m.group(1))
            out[-1]["answer_survival_4x_by_task"] = by_task
            out[-1]["answer_survival_4x"] = by_task.get("mean")
    return out


def merge(report: dict[str, Any], new_rows: list[dict[str, Any]]) -> dict[str, Any]:
    s = report["summary"]
    have = {(r["beta"], r["seed"]) for r in s["downstream"]}
    added = [{k: r.get(k) for k in KEYS} | ({"from": "log"} if r.get("from") else {})
             for r in new_rows if (r["beta"], r["seed"]) not in have]
    s["downstream"] = sorted(s["downstream"] + added, key=lambda r: (r["beta"], r["seed"]))
    by_beta: dict[float, list[dict[str, Any]]] = {}
    for r in s["downstream"]:
        by_beta.setdefault(r["beta"], []).append(r)

    def stat(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
        v = [r[key] for r in rows if r.get(key) is not None]
        return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0}

    s["downstream_by_beta"] = [
        {"beta": b, "n_seeds": len(rs), "seeds": sorted(r["seed"] for r in rs),
         "val_f1": stat(rs, "val_f1"), "last_layer_cos": stat(rs, "last_layer_cos"),
         "answer_survival_4x": stat(rs, "answer_survival_4x")} for b, rs in sorted(by_beta.items())]
    best = max(s["downstream_by_beta"], key=lambda r: (r["answer_survival_4x"]["mean"], -r["beta"]))
    s["beta_by_downstream"] = {"beta": best["beta"], "rule": "highest mean dev answer survival at 4x "
                               "over seeds (ties: smaller beta)", "shipped_beta": report["final"]["beta"]}
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--report", required=True)
    ap.add_argument("--rows", nargs="*", default=[])
    ap.add_argument("--logs", nargs="*", default=[])
    a = ap.parse_args(argv)
    rows = [r for p in a.rows for r in json.loads(Path(p).read_text())["rows"]]
    rows += [r for p in a.logs for r in rows_from_log(Path(p).read_text())]
    path = Path(a.report)
    report = merge(json.loads(path.read_text()), rows)
    path.write_text(json.dumps(report, indent=1, default=float) + "\n")
    for r in report["summary"]["downstream_by_beta"]:
        print(f"beta {r['beta']:<4g} seeds {r['seeds']}  F1 {r['val_f1']['mean']:.4f}  "
              f"S^L {r['last_layer_cos']['mean']:+.3f}  survival@4x {r['answer_survival_4x']['mean']:.4f} "
              f"± {r['answer_survival_4x']['std']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
