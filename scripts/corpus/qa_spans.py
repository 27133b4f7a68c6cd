"""QA-span keep supervision (issue 15, labels item): DROP answers are "keep" in their passages.

The surprisal+entity teacher keeps what a small LM finds surprising plus names and numbers; a
reader needs the facts that questions ask about. DROP (BIG-bench ``natural_instructions/
subtask028_drop_answer_generation``, already a training source of the modern corpus, never an
evaluation set) gives questions with answers over the same passages as the corpus' ``drop_passages``
documents. This script marks every occurrence of a span answer (and of a number answer that occurs
literally at most twice) as keep on top of the teacher's labels, in a packed label file
(``scripts/device/train_job.py pack-labels`` output), and writes a JSON record of what it changed.

    .venv/bin/python scripts/corpus/qa_spans.py --labels .carry/h6/labels.jsonl.gz \\
        --out .carry/h6/labels_qa.jsonl.gz --record data/labels_modern/qa_spans.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from mooscomp._util import sha256_file  # noqa: E402
from mooscomp.alignment import segment_words  # noqa: E402

TASK = "natural_instructions/subtask028_drop_answer_generation"
MAX_NUMBER_HITS = 2  # a number answer that occurs more often is ambiguous: not marked


def _squash(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def drop_items(task_json: Path) -> Iterator[tuple[str, str, list[str]]]:
    """(passage, answer type, answers) of every DROP example of the BIG-bench task file."""
    for ex in json.loads(task_json.read_text(encoding="utf-8"))["examples"]:
        text = ex["input"]
        m = re.search(r"Passage:(.*?)\nQuestion:(.*?)\nAnswer type:(.*)", text, flags=re.S)
        if not m:
            continue
        targets = ex.get("target")
        targets = targets if isinstance(targets, list) else [targets]
        answers = [_squash(str(t)).rstrip(".").strip() for t in targets if str(t).strip()]
        yield _squash(m.group(1)), _squash(m.group(3)).lower(), [a for a in answers if a]


def occurrences(doc: list[str], span: list[str]) -> list[int]:
    """Start indices of ``span`` in ``doc`` (case-insensitive token sequences)."""
    n, k = len(doc), len(span)
    if k == 0 or k > n:
        return []
    low = [t.lower() for t in doc]
    sp = [t.lower() for t in span]
    return [i for i in range(n - k + 1) if low[i] == sp[0] and low[i : i + k] == sp]


def mark(text: str, labels: list[int], qas: list[tuple[str, list[str]]]) -> tuple[list[int], int, int]:
    """Labels with answer occurrences set to keep; (labels, answers found, words newly kept)."""
    toks = segment_words(text).tolist()
    if len(toks) != len(labels):
        raise ValueError(f"{len(toks)} words but {len(labels)} labels")
    out = list(labels)
    found = 0
    for kind, answers in qas:
        for a in answers:
            hits = occurrences(toks, segment_words(a).tolist())
            if not hits or (kind.startswith("number") and len(hits) > MAX_NUMBER_HITS):
                continue
            found += 1
            k = len(segment_words(a))
            for i in hits:
                out[i : i + k] = [1] * k
    return out, found, sum(out) - sum(labels)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", required=True, help="packed label file (pack-labels output)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--record", required=True, help="JSON record of the change")
    ap.add_argument("--bigbench", default=str(ROOT / "data/cache/bbx/bigbench-1.0.0/bigbench/benchmark_tasks"))
    args = ap.parse_args(argv)
    task_json = Path(args.bigbench) / TASK / "task.json"
    if not task_json.is_file():
        raise SystemExit(f"{task_json} missing: unpack the bigbench 1.0.0 sdist (see data/corpus_modern/README.md)")
    by_passage: dict[str, list[tuple[str, list[str]]]] = {}
    for passage, kind, answers in drop_items(task_json):
        by_passage.setdefault(passage, []).append((kind, answers))
    stats = {"docs": 0, "drop_docs": 0, "drop_docs_matched": 0, "questions": 0, "answers_found": 0,
             "words_drop": 0, "keep_before": 0, "keep_added": 0}
    with gzip.open(args.labels, "rt", encoding="utf-8") as f, gzip.open(args.out, "wt", encoding="utf-8") as g:
        for line in f:
            d = json.loads(line)
            stats["docs"] += 1
            if d.get("source") == "drop_passages":
                stats["drop_docs"] += 1
                stats["words_drop"] += len(d["labels"])
                stats["keep_before"] += sum(d["labels"])
                qas = by_passage.get(_squash(d["text"]))
                if qas:
                    stats["drop_docs_matched"] += 1
                    stats["questions"] += len(qas)
                    d["labels"], found, added = mark(d["text"], d["labels"], qas)
                    stats["answers_found"] += found
                    stats["keep_added"] += added
            g.write(json.dumps(d) + "\n")
    record = {"what": "DROP answer spans marked keep over the teacher labels of drop_passages documents",
              "source": {"package": "bigbench", "version": "1.0.0", "task": TASK,
                         "task_json_sha256": sha256_file(task_json)},
              "input": args.labels, "output": args.out, "stats": stats,
              "command": "python scripts/corpus/qa_spans.py " + " ".join(argv or sys.argv[1:])}
    Path(args.record).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
