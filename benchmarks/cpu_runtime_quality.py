"""Which CPU runtime can be the default: quality against the fp32 reference, then speed.

Every candidate scores the same dev QA items (SQuAD-v2 dev questions over 8-10 paragraphs of
their article, HotpotQA dev distractor sets; the dev split of benchmarks/question_survival.py,
no question given), once per item, and selects at 2x/3x/4x/5x through the public stages. Per
candidate: answer survival (is the gold answer still in the compressed text), its paired
difference to the fp32 reference with a standard error, and the keep-F1 of its kept words
against the reference's kept words. Then the compression time of an ~8k-token prompt, all
candidates back to back in rotating order, as the median of paired ratios to the fp32 time.

Candidates are graphs derived from the model's cached fp32 ONNX graph (onnxruntime dynamic
int8, per-channel weights, the keep/drop head always fp32): all encoder MatMuls, those plus the
fused Attention projections (the recipe of the ``onnx-int8`` backend since this benchmark chose
it), and the MatMuls of the lower layers only.

With ``--student DIR`` (repeatable) a distilled student (scripts/device/distill_job.py) joins as
two more candidates, its fp32 and its int8 (``onnx-int8`` recipe) graph, judged against the same
fp32 reference of ``--model``: the survival delta of a student vs the model it was distilled from.

Usage: .venv/bin/python benchmarks/cpu_runtime_quality.py [--items 300] [--model DIR] [--student DIR]
Writes reports/cpu_runtime_quality.json; prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from question_survival import is_dev  # noqa: E402

RATES = {"2x": 0.5, "3x": 1 / 3, "4x": 0.25, "5x": 0.2}
THREADS = 2


def build_candidates(ref, tmp: Path) -> dict:
    """name -> compressor sharing ``ref``'s tokenizer/config with another scoring graph."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mooscomp.exporters.onnx import OnnxOptions, OnnxScorer

    src = ref.scorer.path
    nodes = onnx.load(str(src)).graph.node
    matmuls = [n.name for n in nodes if n.op_type == "MatMul"]
    head = matmuls[-1:]  # the keep/drop head stays fp32 in every candidate

    def layer(name: str) -> int:
        for part in name.replace("/", ".").split("."):
            if part.isdigit():
                return int(part)
        return -1

    variants = {
        "int8 MatMul only": (["MatMul"], head),
        "int8 MatMul+Attention (onnx-int8)": (["MatMul", "Attention"], head),
        "int8 MatMul layers 0-3": (["MatMul"], head + [n for n in matmuls if layer(n) > 3]),
    }
    out = {"fp32 (reference)": ref}
    for i, (name, (ops, exclude)) in enumerate(variants.items()):
        dst = tmp / f"v{i}.onnx"
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=ops, nodes_to_exclude=exclude,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        c = copy.copy(ref)
        c.scorer = OnnxScorer(dst, options=OnnxOptions(threads=THREADS))
        out[name] = c
    return out


def dev_items(n: int) -> list:
    from mooscomp.evaluation.tasks import sample_hotpotqa, sample_squad

    items = sample_squad(n, seed=0) + sample_hotpotqa(n, seed=0)
    return [it for it in items if is_dev(it.item_id)]


def evaluate(comps: dict, items: list) -> dict:
    """Per candidate, task and rate: survival list and kept masks (aligned over items)."""
    from mooscomp.config import Request
    from mooscomp.evaluation.metrics import answer_survival

    res: dict = {name: {} for name in comps}
    for k, it in enumerate(items):
        for name, c in comps.items():
            prepared = [c.prepare(ctx) for ctx in it.contexts]
            c.score(prepared)
            for label, rate in RATES.items():
                r = c.select(prepared, c.config, Request(rate=rate))
                kept = np.concatenate([d.kept for d in r.details])
                cell = res[name].setdefault(it.task, {}).setdefault(label, {"surv": [], "kept": []})
                cell["surv"].append(answer_survival(r.text, it.answers))
                cell["kept"].append(kept)
        if (k + 1) % 20 == 0:
            print(f"  {k + 1}/{len(items)} items", file=sys.stderr, flush=True)
    return res


def keep_f1(a: np.ndarray, b: np.ndarray) -> float:
    inter = float(np.sum(a & b))
    tot = float(np.sum(a) + np.sum(b))
    return 1.0 if tot == 0 else 2.0 * inter / tot


def summarise(res: dict, ref_name: str) -> list[dict]:
    rows = []
    ref = res[ref_name]
    for name, tasks in res.items():
        row: dict = {"candidate": name, "tasks": {}}
        d4 = []
        for task, rates in tasks.items():
            trow = {}
            for label, cell in rates.items():
                s, r = np.asarray(cell["surv"]), np.asarray(ref[task][label]["surv"])
                diff = s - r
                trow[label] = {
                    "survival": float(s.mean()),
                    "delta_vs_reference": float(diff.mean()),
                    "delta_se": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0,
                    "keep_f1_vs_reference": float(np.mean([
                        keep_f1(a, b) for a, b in zip(cell["kept"], ref[task][label]["kept"], strict=True)])),
                    "items": len(s),
                }
            row["tasks"][task] = trow
            d4.append(trow["4x"]["delta_vs_reference"])
        row["survival_delta_4x_mean_over_tasks"] = float(np.mean(d4))
        row["survival_delta_2x_5x_mean"] = float(np.mean(
            [row["tasks"][t][lab]["delta_vs_reference"] for t in row["tasks"] for lab in RATES]))
        row["keep_f1_mean"] = float(np.mean(
            [row["tasks"][t][lab]["keep_f1_vs_reference"] for t in row["tasks"] for lab in RATES]))
        rows.append(row)
    return rows


def speed(comps: dict, text: str, reps: int) -> dict:
    """Median paired ratio fp32 time / candidate time, rotating who runs first."""
    names = list(comps)
    for c in comps.values():
        c.compress(text, rate=0.33)  # warm-up
    t: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps):
        for n in names[rep % len(names):] + names[: rep % len(names)]:
            t0 = time.perf_counter()
            comps[n].compress(text, rate=0.33)
            t[n].append(time.perf_counter() - t0)
    ref = names[0]
    return {n: {"median_s": statistics.median(t[n]),
                "speedup_vs_fp32": statistics.median(a / b for a, b in zip(t[ref], t[n], strict=True)),
                "all_s": t[n]} for n in names}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=300, help="items sampled per task before the dev split")
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--student", action="append", default=[], metavar="DIR",
                    help="a distilled student's model dir: two more candidates (fp32, int8)")
    ap.add_argument("--students-only", action="store_true",
                    help="only the fp32 reference and the students (no int8 variants of --model)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "cpu_runtime_quality.json"))
    args = ap.parse_args()
    import onnxruntime

    from mooscomp import Compressor
    from mooscomp.compressor import DEFAULT_MODEL_DIR
    from mooscomp.exporters.onnx import OnnxOptions, OnnxScorer

    ref = Compressor.from_pretrained(args.model, backend="onnx")
    ref.scorer = OnnxScorer(ref.scorer.path, options=OnnxOptions(threads=THREADS))
    with tempfile.TemporaryDirectory() as tmp:
        comps = {"fp32 (reference)": ref} if args.students_only else build_candidates(ref, Path(tmp))
        for sdir in args.student:
            for backend, label in (("onnx", "fp32"), ("onnx-int8", "int8")):
                st = Compressor.from_pretrained(sdir, backend=backend, cache_dir=Path(tmp) / "students")
                st.scorer = OnnxScorer(st.scorer.path, options=OnnxOptions(quantize=backend == "onnx-int8",
                                                                            threads=THREADS))
                shipped = Path(sdir).resolve() == DEFAULT_MODEL_DIR.resolve()
                comps[f"student {Path(sdir).name}{' (the shipped default)' if shipped else ''} {label}"] = st
        items = dev_items(args.items)
        print(f"{len(items)} dev items, {len(comps)} candidates", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        rows = summarise(evaluate(comps, items), "fp32 (reference)")
        eval_s = time.perf_counter() - t0
        sys.path.insert(0, str(Path(__file__).parent))
        from speed_cpu import make_inputs

        sp = speed(comps, make_inputs(0)[8000][0], args.reps)
    for r in rows:
        r["speed"] = sp[r["candidate"]]
    report = {
        "benchmark": "cpu_runtime_quality",
        "what": __doc__.split("\n\n")[1],
        "model": args.model or "shipped default",
        "rates": RATES,
        "items": {t: rows[0]["tasks"][t]["4x"]["items"] for t in rows[0]["tasks"]},
        "threads": THREADS,
        "onnxruntime": onnxruntime.__version__,
        "rows": rows,
        "criterion": "survival_delta_4x_mean_over_tasks >= -0.01 (issue 16)",
        "eval_seconds": eval_s,
        "note": "the CPU was shared with other jobs (load average ~10 on 2 cores): speed ratios are "
                "paired per repetition, absolute seconds are noisy",
        "command": f"python benchmarks/cpu_runtime_quality.py --items {args.items} --reps {args.reps}"
                   + (f" --model {args.model}" if args.model else "")
                   + "".join(f" --student {d}" for d in args.student)
                   + (" --students-only" if args.students_only else ""),
    }
    out = Path(args.out)
    out.write_text(json.dumps(report, indent=1))
    print(f"{'candidate':<28}{'d4x':>8}{'d2-5x':>8}{'keepF1':>8}{'speedup':>9}")
    for r in rows:
        print(f"{r['candidate']:<28}{r['survival_delta_4x_mean_over_tasks']:>8.3f}"
              f"{r['survival_delta_2x_5x_mean']:>8.3f}{r['keep_f1_mean']:>8.3f}"
              f"{r['speed']['speedup_vs_fp32']:>8.2f}x")


if __name__ == "__main__":
    main()
