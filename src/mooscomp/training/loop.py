"""The training loop: MOOS loss (CE + beta * inter-class cosine), validation, resume, export.

``train`` = ``_prepare_data`` (tokenise, chunk, split by document) -> ``_setup`` (model, frozen
layers, optimiser, schedule) -> ``_resume`` (latest verified checkpoint) -> per epoch
``_run_epoch`` + ``_end_epoch`` (validation, best weights, checkpoint, early stop) -> ``_finish``
(best weights back, ``TrainResult``). Seeding happens inside ``torch.random.fork_rng``, so the
caller's global RNG state is untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mooscomp._util import resolve_device as _resolve_device
from mooscomp.losses import moos_loss
from mooscomp.modeling import TokenCompressorModel
from mooscomp.training.checkpoint import (
    CHECKPOINT_DIR,
    ckpt_name,
    latest_checkpoint,
    load_checkpoint,
    read_checkpoint_model,
    save_checkpoint,
)
from mooscomp.training.config import TrainConfig
from mooscomp.training.data import EncodedDoc, collate, encode_docs, make_batches, split_by_document
from mooscomp.training.evaluate import evaluate
from mooscomp.training.params import (
    autocast,
    epoch_seed,
    lr_factor,
    param_groups,
    select_trainable,
    trainable_state,
)

Example = tuple[np.ndarray, ...]  # (input_ids, labels, shape_ids), each (n_tokens,) int64


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
    """``TrainConfig.device`` as a torch device; a CUDA device without CUDA -> ValueError."""
    try:
        return _resolve_device(name)
    except ValueError as e:
        raise ValueError(f"TrainConfig.device: {e}") from None


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
    dev = resolve_device(config.device)
    tokenizer, encoded = _prepare_data(config, docs)
    tr_idx, va_idx = split_by_document([d.doc_id for d in encoded], config.val_fraction)
    train_ex: list[Example] = [c for i in tr_idx for c in encoded[i].chunks]
    val_ex: list[Example] = [c for i in va_idx for c in encoded[i].chunks]
    if not train_ex:
        raise ValueError("no training chunk with labelled tokens: check the documents and labels")
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed)
        run = _setup(config, dev, tokenizer, train_ex, val_ex, Path(out_dir) / CHECKPOINT_DIR)
        if resume:
            _resume(run)
        t0 = time.perf_counter()
        stopped_early = bool(run.history and run.history[-1].get("stopped_early"))
        for epoch in range(run.start_epoch, config.epochs + 1):
            mean, n_steps = _run_epoch(run, epoch, progress=progress, log_every=log_every)
            if _end_epoch(run, epoch, mean, n_steps, seconds=time.perf_counter() - t0, progress=progress):
                stopped_early = True
                break
        train_seconds = time.perf_counter() - t0
    return _finish(run, progress=progress, stopped_early=stopped_early, out_dir=Path(out_dir),
                   n_docs=(len(tr_idx), len(va_idx)), train_seconds=train_seconds)


def _prepare_data(
    config: TrainConfig, docs: Sequence[Mapping[str, Any]] | Sequence[EncodedDoc]
) -> tuple[Any, list[EncodedDoc]]:
    """The encoder's tokenizer and the documents as chunks no longer than ``max_length``."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.encoder)
    if docs and isinstance(docs[0], EncodedDoc):
        encoded = [d for d in docs if isinstance(d, EncodedDoc)]
        if config.word_shape and any(d.word_shape != config.word_shape for d in encoded):
            raise ValueError(
                f"TrainConfig.word_shape {config.word_shape} differs from the word_shape the documents "
                "were encoded with: encode_docs(..., word_shape=config.word_shape)"
            )
    else:
        encoded = encode_docs(docs, tokenizer, max_length=config.max_length,  # type: ignore[arg-type]
                              word_shape=config.word_shape)
    for d in encoded:
        for ids, *_ in d.chunks:
            if len(ids) > config.max_length:
                raise ValueError(
                    f"document {d.doc_id!r} has a chunk of {len(ids)} tokens > TrainConfig.max_length "
                    f"{config.max_length}: encode with the same max_length"
                )
    return tokenizer, encoded


@dataclass
class _Run:
    """The state one run carries between epochs (and what a checkpoint restores)."""

    config: TrainConfig
    dev: torch.device
    tokenizer: Any
    model: TokenCompressorModel
    prefixes: list[str] | None
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_ex: list[Example]
    val_ex: list[Example]
    pad_id: int
    steps_per_epoch: int
    ckpt_root: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_f1: float = -1.0
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch: int = 1
    resumed_from: int | None = None


def _setup(
    config: TrainConfig, dev: torch.device, tokenizer: Any, train_ex: list[Example],
    val_ex: list[Example], ckpt_root: Path,
) -> _Run:
    """Model from the encoder folder, trainable layers, AdamW and the warm-up/decay schedule."""
    model = TokenCompressorModel.from_encoder_dir(config.encoder, seed=config.seed, dropout=config.dropout,
                                                  word_shape=config.word_shape)
    if config.max_length > model.max_positions:
        raise ValueError(
            f"TrainConfig.max_length must be <= the encoder's {model.max_positions} positions, "
            f"got {config.max_length}"
        )
    prefixes = select_trainable(model, config.trainable_top_layers)
    model.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        param_groups(model, config.weight_decay, lr=config.lr, shape_lr_scale=config.shape_lr_scale),
        lr=config.lr,
    )
    steps_per_epoch = math.ceil(len(train_ex) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(round(config.warmup_ratio * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, warmup)
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return _Run(config=config, dev=dev, tokenizer=tokenizer, model=model, prefixes=prefixes,
                params=params, optimizer=optimizer, scheduler=scheduler, train_ex=train_ex,
                val_ex=val_ex, pad_id=pad_id, steps_per_epoch=steps_per_epoch, ckpt_root=ckpt_root)


def _resume(run: _Run) -> None:
    """Continue from the newest verified checkpoint, if any (a finished run trains no more)."""
    latest = latest_checkpoint(run.ckpt_root)
    if latest is None:
        return
    st = load_checkpoint(latest, model=run.model, optimizer=run.optimizer,
                         scheduler=run.scheduler, config=run.config)
    run.history, run.best_epoch = st["history"], st["best_epoch"]
    run.best_f1, run.bad_epochs = st["best_f1"], st["bad_epochs"]
    run.resumed_from = int(st["epoch"])
    run.start_epoch = run.resumed_from + 1
    if run.best_epoch and run.best_epoch != st["epoch"]:
        run.best_state = read_checkpoint_model(run.ckpt_root / ckpt_name(run.best_epoch))
    else:
        run.best_state = trainable_state(run.model)
    if st.get("stopped_early"):
        run.start_epoch = run.config.epochs + 1


def _run_epoch(
    run: _Run, epoch: int, *, progress: Callable[[TrainProgress], None] | None, log_every: int
) -> tuple[list[float], int]:
    """One pass over the training chunks; returns the mean (total, ce, cs) loss and the steps."""
    cfg, dev = run.config, run.dev
    torch.manual_seed(epoch_seed(cfg.seed, epoch))  # dropout; resumable per epoch
    gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
    run.model.train()
    sums = torch.zeros(3, device=dev)  # total, ce, cs
    n_steps = 0
    lengths = [len(x[0]) for x in run.train_ex]
    for idx in make_batches(lengths, cfg.batch_size, generator=gen):
        batch = {
            k: v.to(dev, non_blocking=True)
            for k, v in collate([run.train_ex[j] for j in idx], pad_id=run.pad_id).items()
        }  # each (B, L)
        with autocast(dev):
            o = run.model(batch["input_ids"], batch["attention_mask"], shape_ids=batch["shape_ids"])
        total, ce, cs = moos_loss(o.logits, o.last_hidden, batch["labels"], cfg.beta)
        run.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        sums += torch.stack([total.detach(), ce.detach(), cs.detach()]).float()
        n_steps += 1
        if progress is not None and (n_steps % log_every == 0 or n_steps == run.steps_per_epoch):
            progress(TrainProgress(epoch, cfg.epochs, n_steps, run.steps_per_epoch,
                                   float(sums[0]) / n_steps, "train"))
    return (sums / max(1, n_steps)).tolist(), n_steps


def _end_epoch(
    run: _Run, epoch: int, mean: list[float], n_steps: int, *, seconds: float,
    progress: Callable[[TrainProgress], None] | None,
) -> bool:
    """Validate, keep the best weights, append the history, checkpoint; True = stop early."""
    cfg = run.config
    rec: dict[str, Any] = {
        "epoch": epoch,
        "train_loss": mean[0],
        "train_ce": mean[1],
        "train_cs": mean[2],
        "lr_end": run.scheduler.get_last_lr()[0],
        "seconds": seconds,
    }
    if run.val_ex:
        vm = evaluate(run.model, run.val_ex, batch_size=cfg.batch_size * 2, pad_id=run.pad_id,
                      device=run.dev)
        rec["val"] = vm
        if vm["f1"] > run.best_f1:
            run.best_f1, run.best_epoch, run.bad_epochs = vm["f1"], epoch, 0
            run.best_state = trainable_state(run.model)
        else:
            run.bad_epochs += 1
        if progress is not None:
            progress(TrainProgress(epoch, cfg.epochs, n_steps, run.steps_per_epoch, mean[0], "val", vm))
    else:
        run.best_epoch, run.best_state = epoch, trainable_state(run.model)
    stop = cfg.patience is not None and run.bad_epochs >= cfg.patience and epoch < cfg.epochs
    rec["stopped_early"] = stop
    run.history.append(rec)
    save_checkpoint(
        run.ckpt_root, epoch=epoch, model=run.model, optimizer=run.optimizer,
        scheduler=run.scheduler, config=cfg,
        state={"history": run.history, "best_epoch": run.best_epoch, "best_f1": run.best_f1,
               "bad_epochs": run.bad_epochs, "stopped_early": stop},
    )
    return stop


def _finish(
    run: _Run, *, progress: Callable[[TrainProgress], None] | None, stopped_early: bool,
    out_dir: Path, n_docs: tuple[int, int], train_seconds: float,
) -> TrainResult:
    """Best weights back into the model (eval mode) and the run's ``TrainResult``."""
    model = run.model
    if run.best_state is not None:
        model.load_state_dict({k: v.to(run.dev) for k, v in run.best_state.items()}, strict=False)
    model.eval()
    best_metrics = None
    for rec in run.history:
        if rec["epoch"] == run.best_epoch:
            best_metrics = rec.get("val")
    if progress is not None:
        progress(TrainProgress(len(run.history), run.config.epochs, 0, run.steps_per_epoch, 0.0,
                               "done", best_metrics))
    return TrainResult(
        model=model,
        tokenizer=run.tokenizer,
        config=run.config,
        history=run.history,
        best_epoch=run.best_epoch,
        best_metrics=best_metrics,
        stopped_early=stopped_early,
        resumed_from=run.resumed_from,
        trainable_prefixes=run.prefixes,
        out_dir=out_dir,
        n_train_docs=n_docs[0],
        n_val_docs=n_docs[1],
        train_tokens_per_epoch=int(sum(len(x[0]) for x in run.train_ex)),
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
