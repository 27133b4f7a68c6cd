"""Warm CLI start-up: ``mooscomp compress examples/meeting.txt --rate 0.33`` against ``python -c pass``.

"Warm" means the ONNX graph of the model is already cached (the first run exports it; that run
is made once before timing and reported apart). Each repetition runs every command once, in
rotating order (the machine is shared and drifts); the figures are medians of wall times and of
the per-repetition difference to ``python -c pass``. With ``--before-src`` the same CLI is also
timed from another source tree (e.g. ``git archive <commit> src | tar -x -C /tmp/before``), which
gives the before/after of a change. A probe run records whether torch/transformers were imported.

Usage: .venv/bin/python benchmarks/cli_startup.py [--runs 9] [--before-src /tmp/before/src]
Writes reports/cli_startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["compress", "examples/meeting.txt", "--rate", "0.33"]
PROBE = (
    "import sys, io, contextlib\nfrom mooscomp.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n    main(sys.argv[1:])\n"
    "print(' '.join(m for m in ('torch', 'transformers', 'onnxruntime', 'tokenizers') if m in sys.modules))"
)


def _env(src: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


LOAD = (
    "import time, sys\nt0 = time.perf_counter()\nfrom mooscomp import Compressor\n"
    "c = Compressor.from_pretrained(backend=sys.argv[1])\nt1 = time.perf_counter()\n"
    "print(t1 - t0, c.backend, int('torch' in sys.modules))"
)


def load_times(backend: str, warm_runs: int) -> dict:
    """In-process ``from_pretrained()`` time (imports included): once with an empty cache (export
    + load, as on a fresh machine), then warm; and the sizes of the cached graph files."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MOOSCOMP_CACHE": tmp}

        def one() -> list[str]:
            out = subprocess.run([sys.executable, "-c", LOAD, backend], cwd=ROOT, env=env,
                                 capture_output=True, text=True, check=True)
            return out.stdout.split()

        cold = one()
        warm = [one() for _ in range(warm_runs)]
        sizes = {f.name.split(".", 1)[-1]: f.stat().st_size for f in Path(tmp, "onnx").iterdir()}
    return {
        "backend": cold[1],
        "cold_s": float(cold[0]),
        "cold_imports_torch": bool(int(cold[2])),
        "warm_s": statistics.median(float(w[0]) for w in warm),
        "warm_imports_torch": any(int(w[2]) for w in warm),
        "cached_file_bytes": sizes,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--before-src", default=None, help="a source tree to time as 'before'")
    ap.add_argument("--out", default=str(ROOT / "reports" / "cli_startup.json"))
    args = ap.parse_args()
    py = sys.executable
    cmds = {
        "python -c pass": ([py, "-c", "pass"], _env(None)),
        "python -c 'import mooscomp'": ([py, "-c", "import mooscomp"], _env(None)),
        "mooscomp compress (after)": ([py, "-m", "mooscomp", *ARGS], _env(None)),
    }
    if args.before_src:
        cmds["mooscomp compress (before)"] = ([py, "-m", "mooscomp", *ARGS], _env(args.before_src))
    first: dict[str, float] = {}
    for name, (cmd, env) in cmds.items():  # warm the caches (an export happens here if needed)
        if name.startswith("mooscomp"):
            first[name] = wall(cmd, env)
    probes = {}
    for name, (_, env) in cmds.items():
        if name.startswith("mooscomp"):
            out = subprocess.run([py, "-c", PROBE, *ARGS], cwd=ROOT, env=env, capture_output=True,
                                 text=True, check=True)
            probes[name] = out.stdout.split()
    names = list(cmds)
    t: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(args.runs):
        for n in names[rep % len(names):] + names[: rep % len(names)]:
            t[n].append(wall(*cmds[n]))
    base = t["python -c pass"]
    rows = {
        n: {
            "median_s": statistics.median(v),
            "min_s": min(v),
            "median_minus_python_s": statistics.median(a - b for a, b in zip(v, base, strict=True)),
            "heavy_modules_imported": probes.get(n),
            "all_s": v,
        }
        for n, v in t.items()
    }
    summary = {
        "warm_cli_s": rows["mooscomp compress (after)"]["median_s"],
        "python_pass_s": rows["python -c pass"]["median_s"],
        "warm_cli_minus_python_s": rows["mooscomp compress (after)"]["median_minus_python_s"],
        "imports_torch": "torch" in (probes.get("mooscomp compress (after)") or []),
    }
    if args.before_src:
        b = rows["mooscomp compress (before)"]
        summary["before_cli_s"] = b["median_s"]
        summary["speedup_vs_before"] = statistics.median(
            x / y for x, y in zip(b["all_s"], rows["mooscomp compress (after)"]["all_s"], strict=True))
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    report = {
        "benchmark": "cli_startup",
        "what": __doc__.split("\n\n")[1],
        "command": "mooscomp " + " ".join(ARGS),
        "summary": summary,
        "rows": rows,
        "first_run_s": first,
        "runs": args.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {' '.join(load)} at the end "
                   "(shared with other jobs: absolute seconds are inflated, paired figures less so)",
        "invocation": "python benchmarks/cli_startup.py --runs "
                      f"{args.runs}" + (" --before-src <git archive of the previous commit>/src" if args.before_src else ""),
    }
    report["load"] = {b: load_times(b, 3) for b in ("auto", "onnx-int8")}
    weights = sum(f.stat().st_size for f in (ROOT / "src/mooscomp/models/default").iterdir())
    report["load"]["model_dir_bytes"] = weights
    report["load"]["note"] = (
        "cold = first from_pretrained() on a fresh cache (ONNX export + load, torch imported); "
        "warm = the graph cached (tokenizers + onnxruntime, no torch). A graph shipped inside the "
        "model directory must fit the 25 MB limit together with the weights: compare the sizes")
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
