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
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def from_results(argv: list[str]) -> int:
    from mooscomp.evaluation.runner import format_table, plot_report, summarize
    from mooscomp.evaluation.tasks import load_items

    ap = argparse.ArgumentParser()
    ap.add_argument("--from-results", required=True)
    ap.add_argument("--items", default="data/cache/eval/items.jsonl.gz")
    ap.add_argument("--runtime", default="", help="a quality.json whose 'runtime' to keep")
    ap.add_argument("--report", default="reports/quality.json")
    ap.add_argument("--plot", default="reports/quality.png")
    a = ap.parse_args(argv)
    opener = gzip.open if a.from_results.endswith(".gz") else open
    with opener(a.from_results, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    items = load_items(a.items)
    report = summarize(rows, items)
    if a.runtime:
        old = json.loads(Path(a.runtime).read_text())
        report["runtime"] = old.get("runtime", {})
        report["complete"] = old.get("complete")
    Path(a.report).parent.mkdir(parents=True, exist_ok=True)
    Path(a.report).write_text(json.dumps(report, indent=1))
    plot_report(report, a.plot)
    print(format_table(report))
    return 0


def main() -> int:
    argv = sys.argv[1:]
    if any(x.startswith("--from-results") for x in argv):
        return from_results(argv)
    from mooscomp.cli import bench

    parser = argparse.ArgumentParser(prog="mooscomp")
    bench.add_parser(parser.add_subparsers(dest="command"))
    return bench.run(parser.parse_args(["bench", "quality", *argv]))


if __name__ == "__main__":
    raise SystemExit(main())
