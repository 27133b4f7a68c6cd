"""Training a token compressor with the MOOS loss (CE + beta * inter-class cosine similarity).

Documents are chunked exactly as at inference (``align`` + ``chunk_spans`` at sentence ends,
``max_length - 2`` tokens + CLS/SEP), every sub-token takes the label of its word, and special
tokens, padding and tokens outside every word are ignored (-100). The validation split is by
document and depends only on the doc ids, so runs with different seeds or betas are compared on
the same documents. Checkpoints are safetensors + JSON (never pickle), written atomically each
epoch, verified by sha256 on resume.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mooscomp.alignment import align, chunk_spans, segment_words
from mooscomp.losses import IGNORE_INDEX, layerwise_interclass_cosine, moos_loss
from mooscomp.modeling import TokenCompressorModel

CHECKPOINT_DIR = "checkpoints"
MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
MANIFEST_FILE = "MANIFEST.json"
_CKPT_FORMAT = "mooscomp-train-checkpoint/1"


class CheckpointError(ValueError):
    """A training checkpoint is missing, corrupt or belongs to a different configuration."""


# ---------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (validated on construction).

    ``trainable_top_layers``: None trains everything; k trains only the top k encoder layers and
    the head (what delta storage ships, ~k * 3.5 MB in fp16 for MiniLM-L6).
    ``val_fraction`` = 0 trains on all documents without validation or early stopping.
    """

    encoder: str
    beta: float = 0.0
    lr: float = 5e-5
    epochs: int = 3
    batch_size: int = 16
    max_length: int = 512
    seed: int = 0
    val_fraction: float = 0.1
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0
    trainable_top_layers: int | None = None
    patience: int | None = 2
    dropout: float = 0.1
    device: str = "auto"

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(f"TrainConfig.{name} must be {rule}, got {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not isinstance(self.encoder, str) or not self.encoder:
            raise bad("encoder", "a non-empty path string")
        if not is_num(self.beta) or not 0 <= self.beta <= 100:
            raise bad("beta", "a number in [0, 100]")
        if not is_num(self.lr) or not 0 < self.lr < 1:
            raise bad("lr", "a number in (0, 1)")
        if not is_int(self.epochs) or not 1 <= self.epochs <= 1000:
            raise bad("epochs", "an int in [1, 1000]")
        if not is_int(self.batch_size) or not 1 <= self.batch_size <= 4096:
            raise bad("batch_size", "an int in [1, 4096]")
        if not is_int(self.max_length) or not 8 <= self.max_length <= 8192:
            raise bad("max_length", "an int in [8, 8192]")
        if not is_int(self.seed) or not 0 <= self.seed < 2**31:
            raise bad("seed", "an int in [0, 2**31)")
        if not is_num(self.val_fraction) or not 0 <= self.val_fraction <= 0.5:
            raise bad("val_fraction", "a number in [0, 0.5]")
        if not is_num(self.warmup_ratio) or not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "a number in [0, 1)")
        if not is_num(self.weight_decay) or not 0 <= self.weight_decay <= 1:
            raise bad("weight_decay", "a number in [0, 1]")
        if self.grad_clip is not None and (not is_num(self.grad_clip) or self.grad_clip <= 0):
            raise bad("grad_clip", "None or a number > 0")
        if self.trainable_top_layers is not None and (
            not is_int(self.trainable_top_layers) or self.trainable_top_layers < 1
        ):
            raise bad("trainable_top_layers", "None (all) or an int >= 1")
        if self.patience is not None and (not is_int(self.patience) or self.patience < 1):
            raise bad("patience", "None (no early stopping) or an int >= 1")
        if not is_num(self.dropout) or not 0 <= self.dropout < 1:
            raise bad("dropout", "a number in [0, 1)")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
        ):
            raise bad("device", "'auto', 'cpu', 'cuda' or 'cuda:N'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**dict(d))


# ------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class EncodedDoc:
    """One labelled document as encoder inputs.

    Attributes:
        doc_id: the document id (drives the train/validation split).
        chunks: per chunk ``(input_ids, labels)``, both (n_tokens,) int64 including CLS/SEP;
            labels are 0/1 per word's label, -100 for specials and word-less tokens.
    """

    doc_id: str
    chunks: tuple[tuple[np.ndarray, np.ndarray], ...]


def load_label_shards(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read gzip (or plain) JSONL label shards, one document per line, in path order."""
    docs: list[dict[str, Any]] = []
    for p in sorted(Path(x) for x in paths):
        opener = gzip.open if p.suffix == ".gz" else open
        try:
            with opener(p, "rt", encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            docs.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            raise ValueError(f"{p}:{n}: not valid JSON: {e}") from None
        except (OSError, EOFError) as e:
            raise ValueError(f"{p}: cannot be read as {'gzip ' if p.suffix == '.gz' else ''}JSONL: {e}") from None
    return docs


def encode_docs(
    docs: Sequence[Mapping[str, Any]], tokenizer: Any, *, max_length: int
) -> list[EncodedDoc]:
    """Chunk and label documents ``{"doc_id", "text", "labels"}`` exactly as inference chunks."""
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise ValueError("tokenizer needs cls_token_id and sep_token_id (BERT-style specials)")
    out: list[EncodedDoc] = []
    for i, doc in enumerate(docs):
        doc_id = str(doc.get("doc_id", f"#{i}"))
        text, labels = doc.get("text"), doc.get("labels")
        if not isinstance(text, str) or not isinstance(labels, list):
            raise ValueError(f"document {doc_id!r} (index {i}): needs 'text' (str) and 'labels' (list)")
        words = segment_words(text)
        if len(labels) != len(words):
            raise ValueError(
                f"document {doc_id!r} (index {i}): {len(labels)} labels but segment_words(text) "
                f"gives {len(words)} words; the label scheme does not match (one 0/1 per word)"
            )
        lab = np.asarray(labels, dtype=np.int64)  # (n_words,)
        if lab.size and not np.isin(lab, (0, 1)).all():
            raise ValueError(f"document {doc_id!r} (index {i}): labels must be 0 (drop) or 1 (keep)")
        al = align(words, tokenizer)
        has_word = (al.token_word >= 0) & (lab.size > 0)  # (n_tokens,)
        word_lab = lab[np.clip(al.token_word, 0, max(lab.size - 1, 0))] if lab.size else 0
        tok_lab = np.where(has_word, word_lab, IGNORE_INDEX)  # (n_tokens,)
        chunks = []
        for st, ed in chunk_spans(al, max_length - 2):
            ids = np.concatenate([[cls_id], al.input_ids[st:ed], [sep_id]]).astype(np.int64)
            y = np.concatenate([[IGNORE_INDEX], tok_lab[st:ed], [IGNORE_INDEX]]).astype(np.int64)
            if (y != IGNORE_INDEX).any():
                chunks.append((ids, y))
        out.append(EncodedDoc(doc_id, tuple(chunks)))
    return out


def split_by_document(doc_ids: Sequence[str], val_fraction: float) -> tuple[list[int], list[int]]:
    """Deterministic document split: the docs whose sha256(doc_id) sort first go to validation."""
    n = len(doc_ids)
    n_val = 0 if val_fraction <= 0 or n < 2 else min(n - 1, max(1, round(n * val_fraction)))
    ids = sorted(set(doc_ids), key=lambda d: hashlib.sha256(d.encode("utf-8")).hexdigest())
    val_ids: set[str] = set()
    count = {d: 0 for d in ids}
    for d in doc_ids:
        count[d] += 1
    taken = 0
    for d in ids:  # duplicates of one id stay on one side
        if taken >= n_val:
            break
        val_ids.add(d)
        taken += count[d]
    train = [i for i, d in enumerate(doc_ids) if d not in val_ids]
    val = [i for i, d in enumerate(doc_ids) if d in val_ids]
    return train, val


def make_batches(
    lengths: Sequence[int], batch_size: int, *, generator: torch.Generator | None
) -> list[list[int]]:
    """Length-bucketed batches: shuffle, sort inside blocks of 50 batches, shuffle batch order.

    Without a generator: sorted by length, no shuffling (validation).
    """
    n = len(lengths)
    if generator is None:
        order = sorted(range(n), key=lambda j: lengths[j])
        return [order[k : k + batch_size] for k in range(0, n, batch_size)]
    perm = torch.randperm(n, generator=generator).tolist()
    block = batch_size * 50
    batches: list[list[int]] = []
    for i in range(0, n, block):
        part = sorted(perm[i : i + block], key=lambda j: lengths[j])
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[j] for j in order]


def collate(
    examples: Sequence[tuple[np.ndarray, np.ndarray]], *, pad_id: int
) -> dict[str, torch.Tensor]:
    """Right-pad a batch: input_ids/attention_mask/labels, each (batch, max_len_in_batch)."""
    width = max(len(ids) for ids, _ in examples)
    b = len(examples)
    input_ids = torch.full((b, width), pad_id, dtype=torch.long)
    attention = torch.zeros((b, width), dtype=torch.long)
    labels = torch.full((b, width), IGNORE_INDEX, dtype=torch.long)
    for r, (ids, y) in enumerate(examples):
        input_ids[r, : len(ids)] = torch.from_numpy(ids)
        attention[r, : len(ids)] = 1
        labels[r, : len(y)] = torch.from_numpy(y)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


# ------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def evaluate(
    model: TokenCompressorModel,
    examples: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Token-level keep-class precision/recall/F1, accuracy, CE and S^l of every layer.

    ``layer_cos[0]`` is the embedding output, ``layer_cos[-1]`` the last layer (the one the loss
    acts on). Averages are over sequences that have both classes.
    """
    dev = torch.device(device)
    was_training = model.training
    model.eval()
    tp = fp = fn = correct = total = 0
    ce_sum = 0.0
    cos_sum: torch.Tensor | None = None
    cos_n = 0
    try:
        for idx in make_batches([len(x[0]) for x in examples], batch_size, generator=None):
            batch = {k: v.to(dev) for k, v in collate([examples[j] for j in idx], pad_id=pad_id).items()}
            with _autocast(dev):
                out = model(batch["input_ids"], batch["attention_mask"], output_hidden_states=True)
            y = batch["labels"]  # (B, L)
            m = y != IGNORE_INDEX
            logits = out.logits.float()  # (B, L, 2)
            pred = logits.argmax(-1)  # (B, L)
            tp += int(((pred == 1) & (y == 1) & m).sum())
            fp += int(((pred == 1) & (y == 0) & m).sum())
            fn += int(((pred == 0) & (y == 1) & m).sum())
            correct += int(((pred == y) & m).sum())
            total += int(m.sum())
            ce_sum += float(nn.functional.cross_entropy(logits[m], y[m], reduction="sum"))
            assert out.hidden_states is not None
            sums, n = layerwise_interclass_cosine(out.hidden_states, y)
            cos_sum = sums.cpu() if cos_sum is None else cos_sum + sums.cpu()
            cos_n += n
    finally:
        model.train(was_training)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    layer_cos = (cos_sum / cos_n).tolist() if cos_sum is not None and cos_n else []
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": correct / total if total else 0.0,
        "ce": ce_sum / total if total else 0.0,
        "gold_keep_rate": (tp + fn) / total if total else 0.0,
        "pred_keep_rate": (tp + fp) / total if total else 0.0,
        "n_tokens": total,
        "n_sequences": len(examples),
        "layer_cos": layer_cos,
        "last_layer_cos": layer_cos[-1] if layer_cos else None,
    }


# ---------------------------------------------------------------------------------- trainer


@dataclass(frozen=True)
class TrainProgress:
    """Reported to ``progress`` every few steps and after validation (the CLI draws a bar)."""

    epoch: int  # 1-based
    epochs: int
    step: int  # steps done in this epoch
    steps_per_epoch: int
    loss: float  # running mean of the total loss in this epoch
    stage: str  # "train" | "val" | "done"
    metrics: dict[str, Any] | None = None


@dataclass
class TrainResult:
    """What :func:`train` returns; ``model`` holds the best-validation weights (eval mode)."""

    model: TokenCompressorModel
    tokenizer: Any
    config: TrainConfig
    history: list[dict[str, Any]]
    best_epoch: int
    best_metrics: dict[str, Any] | None
    stopped_early: bool
    resumed_from: int | None
    trainable_prefixes: list[str] | None
    out_dir: Path
    n_train_docs: int
    n_val_docs: int
    train_tokens_per_epoch: int
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"TrainConfig.device is {name!r} but CUDA is not available")
    return torch.device(name)


def _autocast(dev: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA (speed, no loss scaling needed); plain fp32 elsewhere."""
    if dev.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def encoder_layer_prefixes(model: TokenCompressorModel) -> list[str]:
    """Parameter-name prefixes of the encoder's transformer layers, bottom to top."""
    n = int(getattr(model.encoder.config, "num_hidden_layers", 0))
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n and n > 0:
            return [f"{name}.{i}." for i in range(n)]
    raise ValueError("cannot find the encoder's layer list (expected an nn.ModuleList of num_hidden_layers)")


def _select_trainable(model: TokenCompressorModel, top: int | None) -> list[str] | None:
    """Freeze all but the top layers + head; returns their prefixes (None = all trainable)."""
    if top is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return None
    layers = encoder_layer_prefixes(model)
    if top > len(layers):
        raise ValueError(
            f"TrainConfig.trainable_top_layers must be <= the encoder's {len(layers)} layers, got {top}"
        )
    prefixes = layers[len(layers) - top :]
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("head.") or any(name.startswith(x) for x in prefixes))
    return prefixes


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _epoch_seed(seed: int, epoch: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}".encode()).digest()[:6], "little")


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up to 1, then linear decay to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No decay for biases and LayerNorm weights (standard BERT fine-tuning)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.dim() < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def train(
    config: TrainConfig,
    docs: Sequence[Mapping[str, Any]] | Sequence[EncodedDoc],
    *,
    out_dir: str | Path,
    progress: Callable[[TrainProgress], None] | None = None,
    resume: bool = True,
    log_every: int = 20,
) -> TrainResult:
    """Train (or resume) one run; checkpoints go to ``out_dir/checkpoints``.

    ``docs`` are raw labelled documents or the output of :func:`encode_docs` (to share encoding
    between runs). Global RNG state is restored on return (seeding happens inside a fork).
    """
    from transformers import AutoTokenizer

    out = Path(out_dir)
    dev = resolve_device(config.device)
    tokenizer = AutoTokenizer.from_pretrained(config.encoder)
    if docs and isinstance(docs[0], EncodedDoc):
        encoded = [d for d in docs if isinstance(d, EncodedDoc)]
    else:
        encoded = encode_docs(docs, tokenizer, max_length=config.max_length)  # type: ignore[arg-type]
    for d in encoded:
        for ids, _ in d.chunks:
            if len(ids) > config.max_length:
                raise ValueError(
                    f"document {d.doc_id!r} has a chunk of {len(ids)} tokens > TrainConfig.max_length "
                    f"{config.max_length}: encode with the same max_length"
                )
    tr_idx, va_idx = split_by_document([d.doc_id for d in encoded], config.val_fraction)
    train_ex = [c for i in tr_idx for c in encoded[i].chunks]
    val_ex = [c for i in va_idx for c in encoded[i].chunks]
    if not train_ex:
        raise ValueError("no training chunk with labelled tokens: check the documents and labels")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        model = TokenCompressorModel.from_encoder_dir(config.encoder, seed=config.seed, dropout=config.dropout)
        if config.max_length > model.max_positions:
            raise ValueError(
                f"TrainConfig.max_length must be <= the encoder's {model.max_positions} positions, "
                f"got {config.max_length}"
            )
        prefixes = _select_trainable(model, config.trainable_top_layers)
        model.to(dev)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr)
        lengths = [len(x[0]) for x in train_ex]
        steps_per_epoch = math.ceil(len(train_ex) / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        warmup = int(round(config.warmup_ratio * total_steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: _lr_factor(s, total_steps, warmup)
        )

        history: list[dict[str, Any]] = []
        best_epoch, best_f1, bad_epochs = 0, -1.0, 0
        best_state: dict[str, torch.Tensor] | None = None
        start_epoch, resumed_from = 1, None
        ckpt_root = out / CHECKPOINT_DIR
        latest = latest_checkpoint(ckpt_root) if resume else None
        if latest is not None:
            st = load_checkpoint(latest, model=model, optimizer=optimizer, scheduler=scheduler, config=config)
            history, best_epoch, best_f1, bad_epochs = (
                st["history"], st["best_epoch"], st["best_f1"], st["bad_epochs"]
            )
            start_epoch = resumed_from = int(st["epoch"])
            start_epoch += 1
            if best_epoch and best_epoch != st["epoch"]:
                best_state = read_checkpoint_model(ckpt_root / _ckpt_name(best_epoch))
            else:
                best_state = _trainable_state(model)
            if st.get("stopped_early"):
                start_epoch = config.epochs + 1

        t0 = time.perf_counter()
        stopped_early = bool(history and history[-1].get("stopped_early"))
        for epoch in range(start_epoch, config.epochs + 1):
            torch.manual_seed(_epoch_seed(config.seed, epoch))  # dropout; resumable per epoch
            gen = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch))
            model.train()
            sums = torch.zeros(3, device=dev)  # total, ce, cs
            n_steps = 0
            for idx in make_batches(lengths, config.batch_size, generator=gen):
                batch = {
                    k: v.to(dev, non_blocking=True)
                    for k, v in collate([train_ex[j] for j in idx], pad_id=pad_id).items()
                }
                with _autocast(dev):
                    o = model(batch["input_ids"], batch["attention_mask"])
                total, ce, cs = moos_loss(o.logits, o.last_hidden, batch["labels"], config.beta)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                scheduler.step()
                sums += torch.stack([total.detach(), ce.detach(), cs.detach()]).float()
                n_steps += 1
                if progress is not None and (n_steps % log_every == 0 or n_steps == steps_per_epoch):
                    progress(TrainProgress(epoch, config.epochs, n_steps, steps_per_epoch,
                                           float(sums[0]) / n_steps, "train"))
            mean = (sums / max(1, n_steps)).tolist()
            rec: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": mean[0],
                "train_ce": mean[1],
                "train_cs": mean[2],
                "lr_end": scheduler.get_last_lr()[0],
                "seconds": time.perf_counter() - t0,
            }
            if val_ex:
                vm = evaluate(model, val_ex, batch_size=config.batch_size * 2, pad_id=pad_id, device=dev)
                rec["val"] = vm
                if vm["f1"] > best_f1:
                    best_f1, best_epoch, bad_epochs = vm["f1"], epoch, 0
                    best_state = _trainable_state(model)
                else:
                    bad_epochs += 1
                if progress is not None:
                    progress(TrainProgress(epoch, config.epochs, n_steps, steps_per_epoch, mean[0], "val", vm))
            else:
                best_epoch, best_state = epoch, _trainable_state(model)
            stop = config.patience is not None and bad_epochs >= config.patience and epoch < config.epochs
            rec["stopped_early"] = stop
            history.append(rec)
            save_checkpoint(
                ckpt_root, epoch=epoch, model=model, optimizer=optimizer, scheduler=scheduler,
                config=config,
                state={"history": history, "best_epoch": best_epoch, "best_f1": best_f1,
                       "bad_epochs": bad_epochs, "stopped_early": stop},
            )
            if stop:
                stopped_early = True
                break
        train_seconds = time.perf_counter() - t0

    if best_state is not None:
        model.load_state_dict({k: v.to(dev) for k, v in best_state.items()}, strict=False)
    model.eval()
    best_metrics = None
    for rec in history:
        if rec["epoch"] == best_epoch:
            best_metrics = rec.get("val")
    if progress is not None:
        progress(TrainProgress(len(history), config.epochs, 0, steps_per_epoch, 0.0, "done", best_metrics))
    return TrainResult(
        model=model,
        tokenizer=tokenizer,
        config=config,
        history=history,
        best_epoch=best_epoch,
        best_metrics=best_metrics,
        stopped_early=stopped_early,
        resumed_from=resumed_from,
        trainable_prefixes=prefixes,
        out_dir=out,
        n_train_docs=len(tr_idx),
        n_val_docs=len(va_idx),
        train_tokens_per_epoch=int(sum(lengths)),
        train_seconds=train_seconds,
    )


def export_model(
    result: TrainResult,
    path: str | Path,
    *,
    base: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float16,
    defaults: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``result.model`` as a model directory: delta storage (top layers + head over
    ``base``) when trained with ``trainable_top_layers``, full storage otherwise."""
    from mooscomp.modeling import save_model

    meta = {
        "training": {
            "config": result.config.to_dict(),
            "best_epoch": result.best_epoch,
            "val": {k: v for k, v in (result.best_metrics or {}).items()},
            "n_train_docs": result.n_train_docs,
            "n_val_docs": result.n_val_docs,
        }
    }
    meta.update(metadata or {})
    delta = result.trainable_prefixes is not None and base is not None
    return save_model(
        result.model,
        result.tokenizer,
        path,
        base=base if delta else None,
        delta_prefixes=result.trainable_prefixes if delta else None,
        dtype=dtype,
        defaults=defaults,
        metadata=meta,
    )


# ------------------------------------------------------------------------------ checkpoints


def _ckpt_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint folder (temporary folders of a crashed write are skipped)."""
    r = Path(root)
    if not r.is_dir():
        return None
    done = [p for p in r.iterdir() if p.is_dir() and p.name.startswith("epoch-") and "." not in p.name]
    return max(done, key=lambda p: p.name) if done else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state -> (tensors for safetensors, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                plain.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        _, pid, k = name.split(".", 2)
        state.setdefault(int(pid), {})[k] = t
    for pid, st in meta.get("plain_state", {}).items():
        state.setdefault(int(pid), {}).update(st)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    root: str | Path,
    *,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    config: TrainConfig,
    state: dict[str, Any],
) -> Path:
    """Write ``root/epoch-NNNN`` atomically (temp folder + rename), then prune older ones
    except the best epoch's (needed to restore the best weights on resume)."""
    from safetensors.torch import save_file

    r = Path(root)
    r.mkdir(parents=True, exist_ok=True)
    final = r / _ckpt_name(epoch)
    tmp = r / f"{_ckpt_name(epoch)}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_trainable_state(model), str(tmp / MODEL_FILE))
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_file(opt_tensors, str(tmp / OPTIM_FILE))
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    body = {
        "format": _CKPT_FORMAT,
        "epoch": epoch,
        "config": config.to_dict(),
        "optimizer": opt_meta,
        "scheduler": sched,
        **state,
    }
    (tmp / STATE_FILE).write_text(json.dumps(body, indent=1, default=float))
    manifest = {n: _sha256(tmp / n) for n in (MODEL_FILE, OPTIM_FILE, STATE_FILE)}
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    keep = {final.name, _ckpt_name(int(state.get("best_epoch") or 0))}
    for p in r.iterdir():
        if p.is_dir() and p.name.startswith("epoch-") and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
    return final


def _verify(folder: Path) -> None:
    mpath = folder / MANIFEST_FILE
    if not mpath.is_file():
        raise CheckpointError(f"{mpath} is missing: incomplete checkpoint (delete {folder} to restart)")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{mpath} is corrupt (not JSON: {e})") from None
    for name in (MODEL_FILE, OPTIM_FILE, STATE_FILE):
        p = folder / name
        if not p.is_file():
            raise CheckpointError(f"{p} is missing from the checkpoint")
        want = manifest.get(name) if isinstance(manifest, dict) else None
        got = _sha256(p)
        if got != want:
            raise CheckpointError(f"{p} is corrupt: sha256 {got} differs from the {want} in {mpath}")


def read_checkpoint_model(folder: str | Path) -> dict[str, torch.Tensor]:
    """The trainable weights stored in a checkpoint folder (verified)."""
    from safetensors.torch import load_file

    f = Path(folder)
    _verify(f)
    try:
        return load_file(str(f / MODEL_FILE))
    except Exception as e:  # safetensors raises several types on bad files
        raise CheckpointError(f"{f / MODEL_FILE} cannot be read as safetensors: {e}") from None


def load_checkpoint(
    folder: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    config: TrainConfig,
) -> dict[str, Any]:
    """Restore model/optimizer/scheduler from a checkpoint; returns the trainer state."""
    from safetensors.torch import load_file

    f = Path(folder)
    weights = read_checkpoint_model(f)
    state = json.loads((f / STATE_FILE).read_text())
    if state.get("format") != _CKPT_FORMAT:
        raise CheckpointError(f"{f / STATE_FILE}: format {state.get('format')!r}, expected {_CKPT_FORMAT!r}")
    saved = dict(state.get("config") or {})
    now = config.to_dict()
    diff = sorted(k for k in set(saved) | set(now) if k != "device" and saved.get(k) != now.get(k))
    if diff:
        raise CheckpointError(
            f"{f / STATE_FILE} was written with a different configuration ("
            + ", ".join(f"{k}: {saved.get(k)!r} != {now.get(k)!r}" for k in diff)
            + "); use another out_dir or the same configuration"
        )
    own = dict(model.named_parameters())
    expected = {n for n, p in own.items() if p.requires_grad}
    if set(weights) != expected:
        raise CheckpointError(
            f"{f / MODEL_FILE}: holds {len(weights)} tensors, expected the {len(expected)} trainable ones"
        )
    with torch.no_grad():
        for n, t in weights.items():
            if tuple(t.shape) != tuple(own[n].shape):
                raise CheckpointError(f"{f / MODEL_FILE}: {n} has shape {tuple(t.shape)}, expected {tuple(own[n].shape)}")
            own[n].copy_(t.to(own[n].device, own[n].dtype))
    try:
        opt_tensors = load_file(str(f / OPTIM_FILE))
    except Exception as e:
        raise CheckpointError(f"{f / OPTIM_FILE} cannot be read as safetensors: {e}") from None
    dev = next(iter(own.values())).device
    opt_sd = _unflatten_optimizer({k: v.to(dev) for k, v in opt_tensors.items()}, state["optimizer"])
    try:
        optimizer.load_state_dict(opt_sd)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{f / OPTIM_FILE} does not match the optimizer: {e}") from None
    # AdamW keeps "step" on the CPU unless capturable; restore as written.
    for st in optimizer.state.values():
        if "step" in st and isinstance(st["step"], torch.Tensor):
            st["step"] = st["step"].cpu()
    sched = dict(scheduler.state_dict())
    sched.update(state.get("scheduler") or {})
    scheduler.load_state_dict(sched)
    return state
