"""Golden snapshots of one labelling job and one short training run (behaviour freeze).

Refactors of ``mooscomp.labeling`` and ``mooscomp.training`` must leave these outputs unchanged:
labels, unit spans, skip counts and the on-disk layout exactly; floats to 1e-6 (they are stored
rounded to 6 decimals, which also absorbs last-bit differences between CPUs). Regenerate only on a
deliberate behaviour change, with ``MOOSCOMP_UPDATE_SNAPSHOTS=1``, and say why in the commit.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mooscomp.alignment import segment_words

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("MOOSCOMP_UPDATE_SNAPSHOTS") == "1"

TEXT = (
    "Griselda Blanco moved to Miami in 1975. She ran a large network of couriers and paid "
    "them 3.5 million dollars. The police in New York arrested her after a long investigation. "
)
OTHER = (
    "The U.S. Geological Survey measured a 4.2 km fault near Route 9 on April 11. Engineers "
    "from Tokyo and Oslo re-checked the e-mail logs, don't ask why, and found 12 errors.\n\n"
    "Alice paid $30 for the report; Bob said it was worth 3 hours of work."
)


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if not math.isfinite(obj) else round(obj, 6)
    if isinstance(obj, dict):
        return {str(k): _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    return obj


def _assert_same(actual: Any, expected: Any, where: str = "$") -> None:
    """Exact for ints, strings and structure; floats within 1e-6 (absolute) or 1e-6 relative."""
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        assert math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-6), f"{where}: {actual} != {expected}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(actual) == sorted(expected), f"{where}: keys differ"
        for k in expected:
            _assert_same(actual[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: length differs"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_same(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def _check(name: str, actual: Any) -> None:
    path = SNAPSHOTS / name
    data = _rounded(actual)
    if UPDATE or not path.is_file():
        if not UPDATE:
            pytest.fail(f"{path} is missing; generate it with MOOSCOMP_UPDATE_SNAPSHOTS=1")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    expected = json.loads(path.read_text(encoding="utf-8"))
    _assert_same(json.loads(json.dumps(data)), expected)


# ------------------------------------------------------------------------------- labelling


@pytest.fixture(scope="module")
def teacher(wordpiece_tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from mooscomp.labeling import SurprisalConfig, SurprisalTeacher

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=wordpiece_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
        max_position_embeddings=512,
    )
    model = LlamaForCausalLM(cfg).eval()
    config = SurprisalConfig(keep_fraction=0.4, window_tokens=64, context_tokens=16,
                             select_tokens=64, batch_size=3)
    return SurprisalTeacher(model, wordpiece_tokenizer, config=config, model_id="tiny-llama")


def _read_shards(out: Path) -> dict[str, list[dict[str, Any]]]:
    shards = {}
    for p in sorted(out.glob("shard-*.jsonl.gz")):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            shards[p.name] = [json.loads(line) for line in f if line.strip()]
    return shards


def _stats(stats: Any) -> dict[str, Any]:
    d = stats.as_dict()
    return {k: v for k, v in d.items() if k not in ("seconds_teacher", "words_per_s")}


def test_label_corpus_snapshot(teacher, tmp_path: Path) -> None:
    from mooscomp.labeling import (
        Document,
        JobConfig,
        label_corpus,
        lexical_units,
        spans_from_units,
    )

    other_units = spans_from_units(lexical_units(OTHER))
    docs = [
        {"doc_id": "a", "text": TEXT * 3, "source": "s1"},
        {"doc_id": "b", "text": OTHER, "source": "s2", "unit_spans": other_units},
        {"doc_id": "c", "text": "   "},
        {"doc_id": "d", "text": OTHER * 4, "source": "s2"},
        {"doc_id": "a", "text": TEXT},
        {"doc_id": "e", "text": "<b>" * 40 + " x"},
        {"doc_id": "f", "text": TEXT + OTHER, "units": lexical_units(TEXT + OTHER).tolist()},
    ]
    cfg = JobConfig(batch_docs=2)
    s1 = label_corpus(docs[:4], teacher, tmp_path, shard_size=2, seed=3, config=cfg)
    s2 = label_corpus(docs, teacher, tmp_path, shard_size=2, seed=3, config=cfg)
    job = json.loads((tmp_path / "job.json").read_text())
    job["last_run"] = {k: v for k, v in job["last_run"].items()
                       if k not in ("seconds_teacher", "words_per_s")}
    words, ws, tw = teacher.word_surprisal([Document("w", OTHER)])[0]
    _check("labeling/label_corpus.json", {
        "run1": _stats(s1),
        "run2": _stats(s2),
        "shards": _read_shards(tmp_path),
        "job": job,
        "files": sorted(p.name for p in tmp_path.iterdir()),
        "tokens_scored": teacher.tokens_scored,
        "word_surprisal": [float(x) for x in ws],
        "token_word": tw.tolist(),
        "n_words": len(words),
    })


def test_unit_rules_snapshot() -> None:
    from mooscomp.labeling import (
        lexical_units,
        rule_unit_spans,
        rule_unit_spans_attached,
        spans_from_units,
        units_from_spans,
    )

    out = {}
    for name, text in (("text", TEXT), ("other", OTHER)):
        w = segment_words(text)
        out[name] = {
            "rule": [list(s) for s in rule_unit_spans(w)],
            "attached": [list(s) for s in rule_unit_spans_attached(w)],
            "units": lexical_units(text).tolist(),
            "roundtrip": spans_from_units(units_from_spans(len(w), rule_unit_spans(w))),
        }
    _check("labeling/unit_rules.json", out)


class _FakeChat:
    """Deterministic stand-in for an instruct LLM: drops function words, changes one word."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def complete(self, system: str, user: str) -> str:
        self.calls.append((system, user))
        text = user.split("please compress the following text: \n", 1)[1]
        text = text.rsplit("\nThe compressed text is: ", 1)[0]
        drop = {"the", "a", "of", "and", "to", "in", "her", "them", "she", "was", "it", "for"}
        kept = [w for w in text.split() if w.lower().strip(".,;") not in drop]
        return " ".join("paying" if w == "paid" else w for w in kept)


def test_generative_teacher_snapshot() -> None:
    from mooscomp.labeling import (
        SYSTEM_PROMPT,
        Document,
        GenerativeConfig,
        GenerativeTeacher,
        chunk_text,
    )

    chat = _FakeChat()
    t = GenerativeTeacher(chat, config=GenerativeConfig(chunk_tokens=40, window_size=50),
                          model_id="fake")
    docs = [Document("g1", TEXT * 2), Document("g2", OTHER), Document("g3", "")]
    labels = t.label_batch(docs)
    assert chat.calls and all(s == SYSTEM_PROMPT for s, _ in chat.calls)
    assert [lab.shape[0] for lab in labels] == [len(segment_words(d.text)) for d in docs]
    _check("labeling/generative.json", {
        "describe": t.describe(),
        "labels": [lab.astype(int).tolist() for lab in labels],
        "annotations": [
            {"labels": a.labels.astype(int).tolist(), "comp_rate": a.comp_rate,
             "variation_rate": a.variation_rate, "hitting_rate": a.hitting_rate,
             "matching_rate": a.matching_rate}
            for a in t.last_annotations
        ],
        "n_calls": len(chat.calls),
        "chunks": [list(s) for s in chunk_text(OTHER * 3, max_tokens=30)],
        "chunks_counted": [list(s) for s in chunk_text(OTHER, max_tokens=20, count=len)],
    })


# -------------------------------------------------------------------------------- training

_TINY = {
    "model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 64, "max_position_embeddings": 128,
}
_FILLER = ["the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with"]
_NAMES = ["Paris", "Lyon", "Alice", "Bob", "Tokyo", "Rome", "Delta", "Nile"]


def _docs(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    docs = []
    for d in range(n):
        sents = []
        for _ in range(rng.randint(2, 4)):
            ws = [rng.choice(_NAMES) if rng.random() < 0.3 else
                  str(rng.randint(1, 999)) if rng.random() < 0.1 else rng.choice(_FILLER)
                  for _ in range(rng.randint(4, 10))]
            sents.append(" ".join(ws) + ".")
        text = " ".join(sents)
        labels = [int(w[:1].isupper() or w.isdigit()) for w in segment_words(text).tolist()]
        docs.append({"doc_id": f"t{d}", "text": text, "labels": labels})
    return docs


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory, wordpiece_tokenizer) -> str:
    import torch

    from mooscomp.modeling import TokenCompressorModel

    torch.manual_seed(0)
    model = TokenCompressorModel.from_config_dict({**_TINY, "vocab_size": wordpiece_tokenizer.vocab_size})
    path = tmp_path_factory.mktemp("snap_enc")
    model.encoder.save_pretrained(str(path))
    wordpiece_tokenizer.save_pretrained(str(path))
    return str(path)


def _ckpt_layout(root: Path) -> dict[str, Any]:
    from safetensors import safe_open

    out: dict[str, Any] = {}
    for d in sorted(root.iterdir()):
        state = json.loads((d / "trainer_state.json").read_text())
        manifest = json.loads((d / "MANIFEST.json").read_text())
        tensors = {}
        for name in ("model.safetensors", "optimizer.safetensors"):
            with safe_open(str(d / name), framework="pt") as f:
                tensors[name] = sorted(f.keys())
        out[d.name] = {
            "files": sorted(p.name for p in d.iterdir()),
            "manifest_keys": sorted(manifest),
            "state_keys": sorted(state),
            "format": state["format"],
            "epoch": state["epoch"],
            "best_epoch": state["best_epoch"],
            "scheduler_keys": sorted(state["scheduler"]),
            "optimizer_keys": sorted(state["optimizer"]),
            "tensors": tensors,
        }
    return out


def test_train_history_snapshot(tiny_encoder: str, tmp_path: Path) -> None:
    from mooscomp.training import TrainConfig, train

    cfg = TrainConfig(encoder=tiny_encoder, beta=0.5, lr=3e-3, epochs=2, batch_size=4,
                      max_length=32, seed=5, val_fraction=0.25, warmup_ratio=0.2,
                      trainable_top_layers=1, patience=None, device="cpu")
    seen: list[tuple[int, int, str]] = []
    res = train(cfg, _docs(16), out_dir=tmp_path, log_every=2,
                progress=lambda p: seen.append((p.epoch, p.step, p.stage)))
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in res.history]
    weights = {k: float(v.double().abs().sum()) for k, v in res.model.state_dict().items()
               if k.startswith("head.") or ".layer.1." in k}
    _check("training/history.json", {
        "history": history,
        "best_epoch": res.best_epoch,
        "best_metrics": res.best_metrics,
        "stopped_early": res.stopped_early,
        "resumed_from": res.resumed_from,
        "trainable_prefixes": res.trainable_prefixes,
        "n_train_docs": res.n_train_docs,
        "n_val_docs": res.n_val_docs,
        "train_tokens_per_epoch": res.train_tokens_per_epoch,
        "progress": [list(s) for s in seen],
        "checkpoints": _ckpt_layout(tmp_path / "checkpoints"),
        "weight_abs_sums": weights,
        "config": cfg.to_dict() | {"encoder": "<tiny>"},
    })
    assert np.isfinite(history[-1]["train_loss"])
