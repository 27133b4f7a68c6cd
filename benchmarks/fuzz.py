"""Long fuzz run over ``compress`` and the CLI, plus peak memory / time on a 1M-token input.

Inputs come from the seeded hostile-input generators of ``tests/fuzz/harness.py`` (one seed per
input, so any failure replays with ``make_case(category, seed)``); each is checked against the
API's invariants, not only for crashes. Writes ``reports/fuzz.json``: ``summary.inputs``,
``summary.failures``, per-category counts and timings, and the 1M-token measurements (peak RSS
and wall time, each in a fresh process) with the tiny model and ``Compressor.untrained()``.

    PYTHONPATH=src python benchmarks/fuzz.py --inputs 10400 --workers 2 --out reports/fuzz.json
    PYTHONPATH=src python benchmarks/fuzz.py --big-one tiny --big-tokens 1000000   # one measurement
    # only the 10 MB single-line JSON, written into an existing report (its fuzz part kept):
    PYTHONPATH=src python benchmarks/fuzz.py --big-json-only --big-json-mb 10 --big-json-threads 1 \
        --out reports/fuzz_formats.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_COMP: Any = None


def tiny_compressor() -> Any:
    import torch
    from conftest import TINY_BERT
    from transformers import AutoTokenizer

    from mooscomp.compressor import Compressor
    from mooscomp.modeling import DEFAULT_BASE, TokenCompressorModel, resolve_base_dir

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(resolve_base_dir(DEFAULT_BASE)))
    return Compressor(TokenCompressorModel.from_config_dict(TINY_BERT), tok)


def _init_worker() -> None:
    global _COMP
    import torch

    torch.set_num_threads(1)
    _COMP = tiny_compressor()


def _run_one(job: tuple[str, int]) -> dict[str, Any]:
    from fuzz.formats import FORMAT_CATEGORIES, check_formatted, make_format_case
    from fuzz.harness import check_case, make_case

    cat, seed = job
    if cat in FORMAT_CATEGORIES:  # structured inputs through mooscomp.formats (issue 18)
        o = check_formatted(_COMP, make_format_case(cat, seed))
    else:
        o = check_case(_COMP, make_case(cat, seed))
    return {"category": cat, "seed": seed, "ok": o.ok, "seconds": o.seconds,
            "message": o.message, "produced": o.produced}


def run_fuzz(n_inputs: int, workers: int, time_budget: float) -> dict[str, Any]:
    from multiprocessing import Pool

    from fuzz.formats import FORMAT_CATEGORIES
    from fuzz.harness import CATEGORIES

    cats = list(CATEGORIES) + list(FORMAT_CATEGORIES)
    jobs = [(cats[i % len(cats)], i // len(cats)) for i in range(n_inputs)]
    stats: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"inputs": 0, "failures": 0, "max_seconds": 0.0, "total_seconds": 0.0,
                 "examples": [], "failed": []})
    t0 = time.perf_counter()
    done = 0
    with Pool(workers, initializer=_init_worker) as pool:
        for r in pool.imap_unordered(_run_one, jobs, chunksize=8):
            s = stats[r["category"]]
            s["inputs"] += 1
            s["total_seconds"] += r["seconds"]
            s["max_seconds"] = max(s["max_seconds"], r["seconds"])
            if len(s["examples"]) < 3 and r["ok"]:
                s["examples"].append(r["produced"])
            if not r["ok"]:
                s["failures"] += 1
                if len(s["failed"]) < 5:
                    s["failed"].append({"seed": r["seed"], "message": r["message"][:300]})
            done += 1
            if done % 1000 == 0:
                print(f"{done} inputs, {time.perf_counter() - t0:.0f} s", flush=True)
            if time.perf_counter() - t0 > time_budget:
                pool.terminate()
                break
    per = {}
    for cat in cats:
        s = stats[cat]
        per[cat] = {**{k: v for k, v in s.items() if k != "total_seconds"},
                    "mean_seconds": round(s["total_seconds"] / max(s["inputs"], 1), 4),
                    "max_seconds": round(s["max_seconds"], 3)}
    return {"inputs": sum(s["inputs"] for s in stats.values()),
            "failures": sum(s["failures"] for s in stats.values()),
            "seconds": round(time.perf_counter() - t0, 1), "per_category": per}


def big_one(model: str, n_tokens: int, device: str) -> dict[str, Any]:
    """Compress a ~n_tokens input once in this process; peak RSS is this process's maximum."""
    import numpy as np
    import torch
    from fuzz.harness import big_text

    from mooscomp.compressor import Compressor
    from mooscomp.counting import cl100k_count

    if model == "default":  # what users get: the shipped model, default backend (CPU: onnxruntime)
        comp = Compressor.from_pretrained(device=device)
    else:
        comp = tiny_compressor() if model == "tiny" else Compressor.untrained(device=device)
    if model == "tiny" and device != "cpu":
        comp.model.to(device)
    text = big_text(n_tokens)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    res = comp.compress(text, rate=0.33, force_tokens=["\n", "Normans"], format="raw")
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    d = res.details[0]
    ok = (res.compressed_tokens == cl100k_count(res.text) and not (d.forced & ~d.kept).any())
    names = {"tiny": "tiny 2-layer BERT (random)",
             "untrained": "Compressor.untrained() (MiniLM-L6 + untrained head)",
             "default": "Compressor.from_pretrained() (shipped model)"}
    return {"model": names[model], "backend": comp.backend, "device": device, "torch_threads": torch.get_num_threads(), "chars": len(text),
            "origin_tokens": res.origin_tokens, "compressed_tokens": res.compressed_tokens,
            "words": len(d.words), "kept_words": int(np.sum(d.kept)),
            "seconds": round(dt, 1), "peak_rss_mb": round(peak, 1),
            "rss_before_compress_mb": round(rss_before, 1), "invariants_ok": bool(ok)}


def big_json_one(mb: float, threads: int = 0) -> dict[str, Any]:
    """One ``mb`` MB single-line JSON through compress_formatted (tiny model), checked; the
    seconds of the stages (``prepare``: tokenise + align, ``score``: the encoder forward,
    ``select``: the budget) and of the rest (parse, counts, reassembly, details)."""
    import torch
    from fuzz.formats import big_json, check_formatted

    if threads:
        torch.set_num_threads(threads)
    torch_threads = torch.get_num_threads()
    text = big_json(mb)
    comp = tiny_compressor()
    stage_s: dict[str, float] = defaultdict(float)

    def timed(name: str) -> Any:
        f = getattr(comp, name)

        def call(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                stage_s[name] += time.perf_counter() - t

        return call

    for name in ("prepare", "score", "select"):
        setattr(comp, name, timed(name))
    o = check_formatted(comp, {"text": text, "format": "auto", "rate": 0.5})
    stages = {k: round(v, 1) for k, v in stage_s.items()}
    stages["rest"] = round(o.seconds - sum(stage_s.values()), 1)
    return {"mb": round(len(text.encode("utf-8")) / 1e6, 2), "seconds": round(o.seconds, 1),
            "stage_seconds": stages, "ok": o.ok, "message": o.message, "produced": o.produced,
            "torch_threads": torch_threads,
            "load_avg_1m": round(os.getloadavg()[0], 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def big_subprocess(model: str, n_tokens: int, device: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--big-one", model, "--big-tokens", str(n_tokens),
           "--device", device]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3000)
    if p.returncode != 0:
        return {"model": model, "device": device, "error": p.stderr[-2000:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=10_400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--time-budget", type=float, default=1200.0, help="seconds for the fuzz loop")
    ap.add_argument("--big-tokens", type=int, default=1_000_000)
    ap.add_argument("--big", default="tiny:cpu,untrained:cpu",
                    help="comma list of model:device for the big-input measurement ('' = none)")
    ap.add_argument("--big-one", choices=("tiny", "untrained", "default"), help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    ap.add_argument("--big-json-mb", type=float, default=0.0,
                    help="also compress one single-line JSON of this many MB (0 = skip)")
    ap.add_argument("--big-json-threads", type=int, default=0,
                    help="torch threads for the big JSON (0 = torch's default; on a shared, "
                    "loaded machine 2 threads contend and the forward slows down many times)")
    ap.add_argument("--big-json-only", action="store_true",
                    help="only the big JSON, written into the existing --out report")
    ap.add_argument("--out", default=str(ROOT / "reports" / "fuzz.json"))
    args = ap.parse_args(argv)
    if args.big_one:
        print(json.dumps(big_one(args.big_one, args.big_tokens, args.device)))
        return 0
    if args.big_json_only:
        out = Path(args.out)
        report = json.loads(out.read_text(encoding="utf-8"))
        report["big_json"] = report["summary"]["big_json"] = big_json_one(
            args.big_json_mb or 10.0, args.big_json_threads)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(json.dumps(report["big_json"], indent=2))
        return 0 if report["big_json"]["ok"] else 1
    report: dict[str, Any] = {"host": {"python": platform.python_version(),
                                       "cpus": os.cpu_count(), "machine": platform.machine()}}
    fuzz = run_fuzz(args.inputs, args.workers, args.time_budget) if args.inputs else None
    big = [big_subprocess(m, args.big_tokens, d)
           for m, d in (x.split(":") for x in args.big.split(",") if x)]
    report["summary"] = {
        "inputs": fuzz["inputs"] if fuzz else 0,
        "failures": fuzz["failures"] if fuzz else 0,
        "fuzz_seconds": fuzz["seconds"] if fuzz else 0,
        "categories": {k: {"inputs": v["inputs"], "failures": v["failures"]}
                       for k, v in (fuzz["per_category"].items() if fuzz else [])},
        "big_input": [{k: b.get(k) for k in ("model", "backend", "device", "origin_tokens", "seconds",
                                             "peak_rss_mb", "invariants_ok", "error")}
                      for b in big],
    }
    report["fuzz"] = fuzz
    report["big_input"] = big
    if args.big_json_mb:
        report["big_json"] = report["summary"]["big_json"] = big_json_one(
            args.big_json_mb, args.big_json_threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(report["summary"], indent=2, ensure_ascii=False))
    return 1 if (fuzz and fuzz["failures"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
