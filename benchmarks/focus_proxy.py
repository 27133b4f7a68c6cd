"""Reader-free proxies of focus settings on a model: answer survival and the answer-sentence share.

Session 18 (docs/results.md) found survival a weak guide to reader F1: a model that keeps more answers
but fewer words of the sentence around them reads worse. The share of the answer sentence kept, where
the answer survives (:func:`readable_focus.answer_sentence_share`, as the compress stage's proxy file
has it), tracked the reader better. This measures both for a grid of focus weight x spread on one
or more models (dev items: :func:`mooscomp.training.downstream.dev_qa_items`, no question, one forward
per model), to choose what to read.

    .venv/bin/python benchmarks/focus_proxy.py --model shipped=src/mooscomp/models/default \
        --model ahx2=data/cache/models/ahx2 --focus 1,2,4 --spread 1.5,3 --out reports/focus_proxy.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
RATES = (0.5, 0.33, 0.25, 0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="name=model directory (repeatable)")
    ap.add_argument("--focus", default="1", help="comma list of focus weights")
    ap.add_argument("--spread", default="1.5", help="comma list of focus spreads")
    ap.add_argument("--dev", type=int, default=200, help="dev items per task")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import torch
    from readable_focus import answer_sentence_share

    from mooscomp import Compressor
    from mooscomp.config import Request
    from mooscomp.evaluation.metrics import answer_survival
    from mooscomp.training.downstream import dev_qa_items

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    items = dev_qa_items(a.dev)
    rows = []
    for spec in a.model:
        name, _, path = spec.partition("=")
        comp = Compressor.from_pretrained(path, backend="torch")
        prepared = [[comp.prepare(c, comp.config) for c in it.contexts] for it in items]
        comp.score([p for pl in prepared for p in pl], comp.config)
        for f in (float(x) for x in a.focus.split(",")):
            for s in (float(x) for x in a.spread.split(",")):
                cfg = comp.config.replace(focus=f, focus_spread=s)
                cells: dict[str, dict[str, list[float]]] = {}
                for it, pl in zip(items, prepared, strict=True):
                    for r in RATES:
                        text = comp.select(pl, cfg, Request(rate=r)).text
                        c = cells.setdefault(f"{it.task}/{r}", {"survival": [], "sentence_share": []})
                        surv = answer_survival(text, it.answers)
                        c["survival"].append(surv)
                        share = answer_sentence_share(it, text) if surv else None
                        if share is not None:
                            c["sentence_share"].append(share)
                res = {k: {m: round(float(np.mean(v)), 4) if v else None for m, v in c.items()} for k, c in cells.items()}
                rows.append({"model": name, "focus": f, "spread": s, "cells": res})
                print(f"{name:8s} focus {f:g} spread {s:g} 4x " + "  ".join(
                    f"{t} {res[f'{t}/0.25']['survival']:.3f}/{res[f'{t}/0.25']['sentence_share']:.3f}"
                    for t in ("squad", "hotpotqa")), flush=True)
    report = {"what": __doc__.split("\n\n")[0], "models": dict(m.partition("=")[::2] for m in a.model),
              "dev_items_per_task": a.dev, "rates": list(RATES), "rows": rows,
              "cells": "survival / answer-sentence share (where the answer survives)",
              "command": "python benchmarks/focus_proxy.py " + " ".join(sys.argv[1:]),
              "seconds": round(time.perf_counter() - t0, 1)}
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
