"""Answer survival on structured inputs: format-aware vs plain-text compression (issue 18).

The same SQuAD-v2 / HotpotQA dev facts as the quality benchmark, laid out as a user's RAG or tool
output would be: HotpotQA's 10 titled paragraphs as a Markdown table (| Title | Passage |) and as a
search tool's JSON result list; SQuAD's 8-10 paragraphs as a Markdown document (# article,
## Paragraph k) and as JSON. Each is compressed at 2x/3x/4x with the shipped default model by

* ``format-aware``: ``mooscomp.formats.compress_formatted(format="auto")``;
* ``plain``: ``Compressor.compress(text, format="raw")``, the structured text as one prose string;
* ``plain+newline``: the same with ``force_tokens=["\\n"]`` (llmlingua users' workaround);

and, as a reference, the paragraphs themselves as prose contexts (``prose``, plain). Reported per
dataset x layout x method x rate: answer survival (a gold answer still in the output, SQuAD
normalisation), achieved rate, share of outputs off the target by more than 2% (the format-aware
result says so itself: ``target_missed``), structure kept (JSON parses with the same keys and
nesting / every table row and heading kept) and row-label (title) survival.

    PYTHONPATH=src python benchmarks/structured.py --n 40 --out reports/structured.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RATES = (0.5, 0.33, 0.25)
METHODS = ("format-aware", "plain", "plain+newline")


def _cell(s: str) -> str:
    return " ".join(s.split()).replace("|", "\\|")


def layouts(item: Any) -> dict[str, tuple[str, list[str]]]:
    """layout name -> (text, row labels / headings that should survive)."""
    if item.task == "hotpotqa":
        rows = [c.split(": ", 1) if ": " in c else ("", c) for c in item.contexts]
        titles = [t for t, _ in rows]
        table = "| Title | Passage |\n|---|---|\n" + "".join(
            f"| {_cell(t)} | {_cell(p)} |\n" for t, p in rows)
        js = json.dumps({"results": [{"rank": i + 1, "title": t, "text": p}
                                     for i, (t, p) in enumerate(rows)]}, indent=2, ensure_ascii=False)
        return {"table": (table, titles), "json": (js, titles)}
    title = str(item.meta.get("title", "Article")).replace("_", " ")
    heads = [f"## Paragraph {k + 1}" for k in range(len(item.contexts))]
    md = f"# {title}\n\n" + "".join(f"{h}\n\n{p.strip()}\n\n" for h, p in zip(heads, item.contexts))
    js = json.dumps({"title": title, "paragraphs": [{"index": k + 1, "text": p}
                                                    for k, p in enumerate(item.contexts)]},
                    indent=2, ensure_ascii=False)
    return {"markdown": (md, heads), "json": (js, [title])}


def _shape(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_shape(x) for x in v]
    return "" if isinstance(v, str) else v


def structure_kept(layout: str, src: str, out: str, labels: list[str]) -> tuple[bool, float]:
    """(structure intact, share of labels still present)."""
    if layout == "json":
        try:
            ok = _shape(json.loads(out)) == _shape(json.loads(src))
        except ValueError:
            ok = False
        return ok, _share(labels, out)
    if layout == "table":
        rows_in = [ln for ln in src.splitlines() if ln.startswith("|")]
        rows_out = [ln for ln in out.splitlines() if ln.startswith("|")]
        firsts = [re.split(r"(?<!\\)\|", ln)[1].strip() for ln in rows_out[2:]] if len(rows_out) > 2 else []
        want = [_cell(t) for t in labels]
        return len(rows_out) == len(rows_in) and firsts == want, _share(want, "\n".join(firsts))
    heads_out = [ln for ln in out.splitlines() if ln.startswith("#")]
    heads_in = [ln for ln in src.splitlines() if ln.startswith("#")]
    return heads_out == heads_in, _share(labels, "\n".join(heads_out))


def _share(labels: list[str], text: str) -> float:
    labels = [x for x in labels if x.strip()]
    return sum(x in text for x in labels) / len(labels) if labels else 1.0


def plain_runs(comp: Any, text: str, rates: tuple[float, ...]) -> dict[tuple[str, float], Any]:
    """plain and plain+newline at every rate, scoring once (public stages when present)."""
    out = {}
    if all(hasattr(comp, a) for a in ("prepare", "score", "select")):
        from mooscomp.config import Request

        prep = [comp.prepare(text)]
        comp.score(prep)
        for r in rates:
            out["plain", r] = comp.select(prep, None, Request(rate=r))
            out["plain+newline", r] = comp.select(prep, None, Request(rate=r, force_tokens=("\n",)))
        return out
    for r in rates:
        out["plain", r] = comp.compress(text, rate=r, format="raw")  # read as prose
        out["plain+newline", r] = comp.compress(text, rate=r, force_tokens=["\n"], format="raw")
    return out


def run_item(comp: Any, item: Any, rates: tuple[float, ...],
             only: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    from mooscomp.evaluation.metrics import answer_survival
    from mooscomp.formats import compress_formatted, detect_format

    rows = []
    for layout, (text, labels) in layouts(item).items():
        if only and layout not in only:
            continue
        detected = detect_format(text)
        plain = plain_runs(comp, text, rates)
        for r in rates:
            t0 = time.perf_counter()
            fa = compress_formatted(comp, text, format="auto", rate=r)
            dt = time.perf_counter() - t0
            outs: dict[str, tuple[str, int, bool, float | None]] = {
                "format-aware": (fa.text, fa.compressed_tokens, fa.target_missed, dt)}
            for m in ("plain", "plain+newline"):
                res = plain[m, r]
                target = r * res.origin_tokens
                outs[m] = (res.text, res.compressed_tokens,
                           abs(res.compressed_tokens - target) > max(0.02 * target, 1), None)
            for m, (out, got, missed, secs) in outs.items():
                ok, label_share = structure_kept(layout, text, out, labels)
                rows.append({"item": item.item_id, "task": item.task, "layout": layout, "detected": detected,
                             "method": m, "rate": r, "rate_achieved": got / fa.origin_tokens,
                             "survival": answer_survival(out, item.answers), "missed": bool(missed),
                             "structure_ok": ok, "label_survival": label_share, "seconds": secs,
                             "structure_tokens": fa.structure_tokens if m == "format-aware" else None})
    for r in rates if not only or "prose" in only else ():
        res = comp.compress(list(item.contexts), rate=r)
        rows.append({"item": item.item_id, "task": item.task, "layout": "prose", "detected": "text",
                     "method": "plain", "rate": r, "rate_achieved": res.rate,
                     "survival": answer_survival(res.text, item.answers), "missed": False,
                     "structure_ok": True, "label_survival": 1.0, "seconds": None, "structure_tokens": None})
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cells: dict[tuple[str, str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        cells[r["task"], r["layout"], r["method"], r["rate"]].append(r)
    out: dict[str, Any] = {}
    for (task, layout, method, rate), rs in sorted(cells.items()):
        n = len(rs)
        st = [r["structure_tokens"] for r in rs if r["structure_tokens"] is not None]
        out.setdefault(task, {}).setdefault(layout, {}).setdefault(method, {})[f"{1 / rate:.0f}x"] = {
            "n": n,
            "answer_survival": round(sum(r["survival"] for r in rs) / n, 3),
            "rate_achieved": round(sum(r["rate_achieved"] for r in rs) / n, 4),
            "target_missed_share": round(sum(r["missed"] for r in rs) / n, 3),
            "structure_ok_share": round(sum(r["structure_ok"] for r in rs) / n, 3),
            "label_survival": round(sum(r["label_survival"] for r in rs) / n, 3),
            "detected": sorted({r["detected"] for r in rs}),
            **({"structure_tokens_mean": round(sum(st) / len(st), 1)} if st else {}),
        }
    return out


def format_table(summary: dict[str, Any]) -> str:
    lines = ["| task | layout | method | 2x surv / struct | 3x surv / struct | 4x surv / struct |",
             "|---|---|---|---|---|---|"]
    for task, lay in summary.items():
        for layout, meth in lay.items():
            for m, by in meth.items():
                cells = [f"{by[k]['answer_survival']:.3f} / {by[k]['structure_ok_share']:.2f}"
                         + (" (missed {:.0%})".format(by[k]["target_missed_share"])
                            if by[k]["target_missed_share"] else "")
                         if k in by else "-" for k in ("2x", "3x", "4x")]
                lines.append(f"| {task} | {layout} | {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _model_sha() -> str | None:
    """sha256 of the shipped model's config.json (which default model a report used)."""
    from mooscomp._util import sha256_file
    from mooscomp.compressor import DEFAULT_MODEL_DIR

    cfg = Path(DEFAULT_MODEL_DIR) / "config.json"
    return sha256_file(cfg) if cfg.is_file() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="items per dataset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "structured.json"))
    ap.add_argument("--layouts", default="", help="comma list (json,table,markdown,prose): rerun "
                    "only these and replace their rows in an existing --out report")
    args = ap.parse_args(argv)
    only = tuple(x for x in args.layouts.split(",") if x)
    from mooscomp import Compressor
    from mooscomp._util import atomic_write_json
    from mooscomp.evaluation.tasks import sample_hotpotqa, sample_squad

    comp = Compressor.from_pretrained(args.model)
    items = sample_hotpotqa(args.n, seed=args.seed) + sample_squad(args.n, seed=args.seed)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    seconds: Any
    for i, it in enumerate(items):
        rows.extend(run_item(comp, it, RATES, only))
        if (i + 1) % 10 == 0:
            print(f"{i + 1}/{len(items)} items, {time.perf_counter() - t0:.0f} s", flush=True)
    seconds = round(time.perf_counter() - t0, 1)
    if only and Path(args.out).is_file():  # keep the other layouts' rows of the earlier run
        old = json.loads(Path(args.out).read_text(encoding="utf-8"))
        rows = [r for r in old["rows"] if r["layout"] not in only] + rows
        seconds = {"earlier": old["seconds"], f"rerun {','.join(only)}": seconds}
    summary = summarize(rows)
    report = {
        "what": __doc__.split("\n\n")[0],
        "model": args.model or "shipped default (Compressor.from_pretrained())",
        "backend": comp.backend,
        "model_config_sha256": _model_sha(),
        "items": {"hotpotqa": args.n, "squad": args.n, "seed": args.seed},
        "rates": list(RATES),
        "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "seconds": seconds,
        "summary": summary,
        "table": format_table(summary),
        "rows": rows,
    }
    atomic_write_json(args.out, report)
    print(report["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
