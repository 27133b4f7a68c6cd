"""Answer survival of the question path (``compress(question=)``) for several models, dev items only.

A change to the keep head (e.g. scripts/fold_worthiness.py) also reaches the question path, whose
fine selection fuses keep-probabilities with relevance. This reads the dev items
(:func:`mooscomp.training.downstream.dev_qa_items`) with their questions through each model and
reports the share whose normalised gold answer survives, per task and rate. No reader.

    .venv/bin/python benchmarks/question_path_models.py --models default,data/cache/models/session15 \\
        --dev 400 --rates 0.25,0.2,0.1 --out reports/question_path_models.json
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="default", help="comma list: 'default' (the shipped model) or directories")
    ap.add_argument("--dev", type=int, default=400, help="dev items per task")
    ap.add_argument("--rates", default="0.25,0.2,0.1")
    ap.add_argument("--out", default=str(ROOT / "reports" / "question_path_models.json"))
    a = ap.parse_args()
    import torch

    from mooscomp import Compressor
    from mooscomp.evaluation.metrics import answer_survival
    from mooscomp.training.downstream import dev_qa_items

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    items = dev_qa_items(a.dev)
    survival: dict[str, dict[str, dict[str, float]]] = {}
    weights: dict[str, str] = {}
    for m in a.models.split(","):
        comp = Compressor.from_pretrained(None if m == "default" else m)
        cfg_path = (ROOT / "src/mooscomp/models/default" if m == "default" else Path(m)) / "config.json"
        weights[m] = json.loads(cfg_path.read_text(encoding="utf-8"))["weights_sha256"]
        for rate in (float(r) for r in a.rates.split(",")):
            acc: dict[str, list[float]] = {}
            for it in items:
                text = comp.compress(list(it.contexts), rate=rate, question=it.question).text
                acc.setdefault(it.task, []).append(answer_survival(text, it.answers))
            survival.setdefault(m, {})[str(rate)] = {t: round(float(np.mean(v)), 4) for t, v in acc.items()}
            print(m, rate, survival[m][str(rate)], flush=True)
    report = {"what": __doc__.split("\n\n")[0], "dev_items_per_task": a.dev, "weights_sha256": weights,
              "answer_survival": survival, "seconds": round(time.perf_counter() - t0, 1),
              "command": f"python benchmarks/question_path_models.py --models {a.models} --dev {a.dev} "
                         f"--rates {a.rates} --out {a.out}"}
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
