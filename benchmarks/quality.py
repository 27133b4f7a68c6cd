"""Quality vs compression rate for every method and task → reports/quality.json + PNG + table.

Two uses:

* run the benchmark here (CPU, small reader) — any ``mooscomp bench quality`` options pass through:
      python benchmarks/quality.py --reader <SmolLM2 .gguf> --limit 3 --tasks squad,hotpotqa
* rebuild the report, plot and table from results made elsewhere (e.g. the GPU job's output):
      python benchmarks/quality.py --from-results /work/.device/.../results.jsonl.gz \
          --items data/cache/eval/items.jsonl.gz --runtime /work/.device/.../quality.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

DEFAULTS = {
    "--items": "data/cache/eval/items.jsonl.gz",
    "--work": "data/cache/eval/run",
    "--report": "reports/quality.json",
    "--plot": "reports/quality.png",
}


def from_results(argv: list[str]) -> int:
    from mooscomp._util import atomic_write_text, read_jsonl
    from mooscomp.evaluation.report import format_table, plot_report, summarize
    from mooscomp.evaluation.tasks import load_items

    ap = argparse.ArgumentParser()
    ap.add_argument("--from-results", required=True)
    ap.add_argument("--items", default=DEFAULTS["--items"])
    ap.add_argument("--runtime", default="", help="a quality.json whose 'runtime' to keep")
    ap.add_argument("--report", default=DEFAULTS["--report"])
    ap.add_argument("--plot", default=DEFAULTS["--plot"])
    a = ap.parse_args(argv)
    rows = read_jsonl(a.from_results, strict=True)
    items = load_items(a.items)
    report = summarize(rows, items)
    if a.runtime:
        old = json.loads(Path(a.runtime).read_text())
        report["runtime"] = old.get("runtime", {})
        report["complete"] = old.get("complete")
    atomic_write_text(a.report, json.dumps(report, indent=1))
    plot_report(report, a.plot)
    print(format_table(report))
    return 0


def main() -> int:
    argv = sys.argv[1:]
    if any(x.startswith("--from-results") for x in argv):
        return from_results(argv)
    from mooscomp.cli import bench

    # the installed CLI has no repository-relative defaults; this script supplies them
    given = {x.split("=", 1)[0] for x in argv}
    for flag, value in DEFAULTS.items():
        if flag not in given:
            argv += [flag, value]
    parser = argparse.ArgumentParser(prog="mooscomp")
    bench.add_parser(parser.add_subparsers(dest="command"))
    return bench.run(parser.parse_args(["bench", "quality", *argv]))


if __name__ == "__main__":
    raise SystemExit(main())
