"""The ceiling of the generated-question labels: teacher_answer_survival_4x of the scheme every head
since session 17 learns from (issue 15, deliverable 2).

The reader LLM wrote eight questions over every paragraph of the first 100 dev items per task
(scripts/device/question_gen_job.py, the training prompt, on the dev paragraphs; nothing here trains on
them). A perfect student of those labels keeps the words they mark: each word scores the number of
generated answers (``answer``) or answers + the question's words in the answer's sentence (``support``)
covering it; the top share of words is kept in order (ties: earlier words first) and gold
answer survival measured as everywhere else. ``caps_digits`` and the unlimited-budget coverage frame it.

    python benchmarks/generated_ceiling.py --items <answer_head_job prepare's dev_items.jsonl.gz>
(questions: reports/raw/qgen_dev_qa.jsonl.gz, written by question_gen_job.py over those paragraphs)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from backbone_probe import keep_top, whitespace_labels  # noqa: E402
from worthiness_finetune import LABELS  # noqa: E402  (the training labels' own definitions)

from mooscomp.alignment import segment_words  # noqa: E402
from mooscomp.evaluation.items import load_items  # noqa: E402
from mooscomp.evaluation.methods.caps_digits import caps_digits_scores  # noqa: E402
from mooscomp.evaluation.metrics import answer_survival  # noqa: E402

SHARES = (0.5, 0.33, 0.25, 0.2)


def pid_of(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def paragraph_scores(text: str, pairs: list[list[str]], scheme: str) -> np.ndarray:
    """(n_whitespace_words,) how many generated pairs label each word under ``LABELS[scheme]`` (the
    training labels, one pair at a time), a whitespace word taking the most of its segment words."""
    seg = segment_words(text)
    counts = np.zeros(len(seg), dtype=np.float32)
    for q, a in pairs:
        counts += LABELS[scheme](seg, [(q, a)])
    return whitespace_labels(text, counts)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qa", default=str(ROOT / "reports/raw/qgen_dev_qa.jsonl.gz"))
    ap.add_argument("--items", default=str(ROOT / ".carry/fix/dev_items.jsonl.gz"))
    ap.add_argument("--per-task", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "reports/generated_ceiling.json"))
    a = ap.parse_args()
    with gzip.open(a.qa, "rt", encoding="utf-8") as f:
        qa = {r["pid"]: r["pairs"] for r in map(json.loads, f)}
    seen: Counter[str] = Counter()
    items = []
    for it in load_items(a.items):
        if seen[it.task] < a.per_task:
            seen[it.task] += 1
            items.append(it)
    surv: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    missing = 0
    for it in items:
        words = [w for c in it.contexts for w in c.split()]
        missing += sum(pid_of(c) not in qa for c in it.contexts)
        rows = {s: np.concatenate([paragraph_scores(c, qa.get(pid_of(c), []), s) for c in it.contexts])
                for s in ("answer", "support")}
        rows["caps_digits"] = caps_digits_scores(words)
        for name, sc in rows.items():
            for share in SHARES:
                surv[f"{name}@{share}"][it.task].append(answer_survival(keep_top(words, sc, share), it.answers))
            if name != "caps_digits":  # every marked word kept, no budget: does any generated label cover it?
                marked = " ".join(w for w, s in zip(words, sc, strict=True) if s > 0)
                surv[f"{name}@all_marked"][it.task].append(answer_survival(marked, it.answers))
                surv[f"{name}@marked_share"][it.task].append(float((sc > 0).mean()))
    table = {k: {t: round(float(np.mean(v)), 4) for t, v in d.items()} for k, d in surv.items()}
    report = {"what": __doc__.split("\n\n")[0], "method": __doc__.split("\n\n")[1],
              "items_per_task": dict(seen), "paragraphs_without_questions": missing,
              "generation": json.loads((ROOT / "reports/raw/qgen_dev_summary.json").read_text()),
              "survival": table,
              "teacher_answer_survival_4x": {s: table[f"{s}@0.25"] for s in ("answer", "support", "caps_digits")},
              "command": "python benchmarks/generated_ceiling.py (after question_gen_job.py --per-passage 8 over the "
                         "paragraphs of the first 100 dev items per task, H200, 167 s)"}
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    for k, v in table.items():
        print(f"{k:24s} " + "  ".join(f"{t} {x:.3f}" for t, x in v.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
