"""Distilling a smaller student from a trained compressor's keep-probabilities.

Almost all CPU time is the encoder forward, so a student with 2-3 of the teacher's layers is the
route to a faster default. The student starts as a copy of the teacher (embeddings, the chosen
layers, head, word-shape table) and learns the teacher's per-token keep-probability (the quantity
the outlier fusion and the selection work on): ``T^2 * KL(teacher || student)`` at temperature
``T`` over the word tokens, ``+ hard_weight * CE`` on the gold labels, ``+ z_weight * MSE`` of the
hidden-deviation outlier Z-scores. Teacher targets are computed once, before training. The
embeddings stay frozen (they are the teacher's, and the student then ships as an int8 delta of
its layers over the same pip base as the teacher). Data, batching, the schedule and the optimiser
groups are the training package's (:mod:`mooscomp.training.data`, :mod:`.params`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mooscomp._util import check_float, check_int
from mooscomp.losses import IGNORE_INDEX
from mooscomp.modeling import TokenCompressorModel, save_model
from mooscomp.outliers import hidden_deviation_z
from mooscomp.training.data import EncodedDoc, collate, encode_docs, make_batches, split_by_document
from mooscomp.training.loop import resolve_device
from mooscomp.training.params import (
    autocast,
    encoder_layer_prefixes,
    epoch_seed,
    lr_factor,
    param_groups,
    select_trainable,
    trainable_state,
)

Example = tuple[np.ndarray, ...]  # (input_ids, labels, shape_ids, teacher_logit, teacher_z), (n_tokens,)


@dataclass(frozen=True)
class DistillConfig:
    """Hyper-parameters of one distillation run (validated on construction).

    ``layers``: the teacher's layers the student starts from, bottom to top (e.g. ``(0, 2, 4)``).
    ``temperature``: softens both distributions; the KL term is scaled by ``T^2``.
    ``hard_weight``: weight of the CE on gold labels (0 = labels unused, documents may lack them).
    ``z_weight``: weight of the MSE between the hidden-deviation Z-scores (the "hidden" outlier
    score the fusion adds to the probability).
    ``label_boost``: added to the teacher's keep-minus-drop logit on tokens labelled 1 (labels then
    mark spans to favour, e.g. answers of questions over the text): the student learns the teacher
    plus the boost it can predict from context (0 = pure distillation).
    """

    layers: tuple[int, ...] = (0, 2, 4)
    temperature: float = 1.0
    hard_weight: float = 0.0
    z_weight: float = 0.0
    label_boost: float = 0.0
    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 32
    max_length: int = 512
    seed: int = 0
    val_fraction: float = 0.1
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    device: str = "auto"

    def __post_init__(self) -> None:
        n = "DistillConfig."
        if not isinstance(self.layers, tuple) or not self.layers:
            raise ValueError(f"{n}layers must be a non-empty tuple of layer indices, got {self.layers!r}")
        for i in self.layers:
            check_int(n + "layers[]", i, 0, 1023)
        if list(self.layers) != sorted(set(self.layers)):
            raise ValueError(f"{n}layers must be strictly increasing, got {self.layers!r}")
        check_float(n + "temperature", self.temperature, 0.0, 100.0, low_open=True)
        check_float(n + "hard_weight", self.hard_weight, 0.0, 100.0)
        check_float(n + "z_weight", self.z_weight, 0.0, 100.0)
        check_float(n + "label_boost", self.label_boost, 0.0, 100.0)
        check_int(n + "epochs", self.epochs, 1, 1000)
        check_float(n + "lr", self.lr, 0.0, 1.0, low_open=True)
        check_int(n + "batch_size", self.batch_size, 1, 4096)
        check_int(n + "max_length", self.max_length, 8, 8192)
        check_int(n + "seed", self.seed, 0, 2**31 - 1)
        check_float(n + "val_fraction", self.val_fraction, 0.0, 0.5)
        check_float(n + "warmup_ratio", self.warmup_ratio, 0.0, 0.99)
        check_float(n + "weight_decay", self.weight_decay, 0.0, 1.0)
        check_float(n + "grad_clip", self.grad_clip, 0.0, math.inf, low_open=True)
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
        ):
            raise ValueError(f"{n}device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "layers": list(self.layers)}


@dataclass
class DistillResult:
    """What :func:`distill` returns; ``student`` holds the lowest-validation-KL weights (eval mode)."""

    student: TokenCompressorModel
    config: DistillConfig
    history: list[dict[str, Any]]
    best_epoch: int
    best_metrics: dict[str, Any] | None
    n_train_docs: int
    n_val_docs: int
    train_seconds: float
    teacher_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def build_student(teacher: TokenCompressorModel, layers: Sequence[int]) -> TokenCompressorModel:
    """A copy of ``teacher`` with only ``layers`` (bottom to top) of its encoder: embeddings,
    those layers, head and word-shape table copied; same dropout and word-shape features."""
    from transformers import AutoModel

    prefixes = encoder_layer_prefixes(teacher)
    if not layers or any(i < 0 or i >= len(prefixes) for i in layers):
        raise ValueError(f"student layers must be among the teacher's {len(prefixes)} layers, got {tuple(layers)}")
    cfg = copy.deepcopy(teacher.encoder.config)
    cfg.num_hidden_layers = len(layers)
    with torch.random.fork_rng(devices=[]):  # the throw-away init leaves the caller's RNG alone
        encoder = AutoModel.from_config(cfg, add_pooling_layer=False)
    student = TokenCompressorModel(encoder, dropout=float(teacher.dropout.p), word_shape=teacher.word_shape)
    state: dict[str, torch.Tensor] = {}
    for k, v in teacher.state_dict().items():
        src = next((p for p in prefixes if k.startswith(p)), None)
        if src is None:
            state[k] = v
        elif prefixes.index(src) in layers:
            state[prefixes[list(layers).index(prefixes.index(src))] + k[len(src):]] = v
    student.load_state_dict(state, strict=True)
    return student.to(next(teacher.parameters()).device)


def encode_for_distill(
    docs: Sequence[Mapping[str, Any]], tokenizer: Any, config: DistillConfig, *, word_shape: Sequence[str]
) -> list[EncodedDoc]:
    """:func:`encode_docs` for distillation: documents without labels get placeholder labels
    (only allowed when ``hard_weight`` is 0, since the labels then only mark the word tokens)."""
    from mooscomp.alignment import segment_words

    ready = []
    for i, d in enumerate(docs):
        if isinstance(d.get("labels"), list):
            ready.append(d)
        elif config.hard_weight > 0 or config.label_boost > 0:
            raise ValueError(f"document {d.get('doc_id', i)!r} has no labels but DistillConfig.hard_weight "
                             "or label_boost > 0")
        else:
            ready.append({**d, "labels": [0] * len(segment_words(str(d.get("text", ""))))})
    return encode_docs(ready, tokenizer, max_length=config.max_length, word_shape=word_shape)


def _valid(ids: torch.Tensor, attn: torch.Tensor, specials: Sequence[int]) -> torch.Tensor:
    """(B, L) bool: the tokens inference scores (no specials, no padding)."""
    v = attn.bool()
    for s in specials:
        v = v & (ids != s)
    return v


def _pad(arrays: Sequence[np.ndarray], width: int) -> torch.Tensor:
    out = torch.zeros((len(arrays), width), dtype=torch.float32)  # (B, L)
    for r, a in enumerate(arrays):
        out[r, : len(a)] = torch.from_numpy(a)
    return out


@torch.no_grad()
def teacher_targets(
    teacher: TokenCompressorModel, examples: Sequence[Example], *, batch_size: int, pad_id: int,
    specials: Sequence[int], device: torch.device,
) -> list[Example]:
    """``examples`` + the teacher's keep-minus-drop logit and outlier Z per token (fp32 forward)."""
    teacher.eval()
    out: list[Example | None] = [None] * len(examples)
    for idx in make_batches([len(x[0]) for x in examples], batch_size, generator=None):
        b = {k: v.to(device) for k, v in collate([examples[j][:3] for j in idx], pad_id=pad_id).items()}
        o = teacher(b["input_ids"], b["attention_mask"], shape_ids=b["shape_ids"])
        logit = (o.logits[..., 1] - o.logits[..., 0]).float().cpu().numpy()  # (B, L)
        z = hidden_deviation_z(o.last_hidden.float(), _valid(b["input_ids"], b["attention_mask"], specials))
        z_np = z.cpu().numpy()  # (B, L)
        for r, j in enumerate(idx):
            n = len(examples[j][0])
            out[j] = (*examples[j][:3], logit[r, :n].copy(), z_np[r, :n].copy())
    return [x for x in out if x is not None]


def boost_targets(examples: Sequence[Example], boost: float) -> list[Example]:
    """``examples`` with ``boost`` added to the teacher logit of every token labelled 1."""
    return [(*x[:3], (x[3] + boost * (x[1] == 1)).astype(np.float32), x[4]) for x in examples]


def _batch(examples: Sequence[Example], idx: list[int], pad_id: int, dev: torch.device) -> dict[str, torch.Tensor]:
    b = collate([examples[j][:3] for j in idx], pad_id=pad_id)
    width = b["input_ids"].shape[1]
    b["t_logit"] = _pad([examples[j][3] for j in idx], width)  # (B, L)
    b["t_z"] = _pad([examples[j][4] for j in idx], width)  # (B, L)
    return {k: v.to(dev, non_blocking=True) for k, v in b.items()}


def _kl(s_logit: torch.Tensor, t_logit: torch.Tensor, temperature: float) -> torch.Tensor:
    """(N,) binary KL(teacher || student) of keep-minus-drop logits at ``temperature``."""
    s, p_t = s_logit / temperature, torch.sigmoid(t_logit / temperature)
    ent = -(p_t * torch.log(p_t.clamp_min(1e-12)) + (1 - p_t) * torch.log((1 - p_t).clamp_min(1e-12)))
    return nn.functional.binary_cross_entropy_with_logits(s, p_t, reduction="none") - ent


def _forward(model: TokenCompressorModel, b: dict[str, torch.Tensor], specials: Sequence[int]) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor
]:
    """(logits (B, L, 2) fp32, word-token mask (B, L), valid mask (B, L), outlier Z (B, L))."""
    with autocast(b["input_ids"].device):
        o = model(b["input_ids"], b["attention_mask"], shape_ids=b["shape_ids"])
    v = _valid(b["input_ids"], b["attention_mask"], specials)
    return o.logits.float(), b["labels"] != IGNORE_INDEX, v, hidden_deviation_z(o.last_hidden.float(), v)


def distill_loss(
    model: TokenCompressorModel, b: dict[str, torch.Tensor], cfg: DistillConfig, specials: Sequence[int]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its parts (``kl`` at temperature T, ``ce``, ``z``) of one batch."""
    logits, m, v, z = _forward(model, b, specials)
    t = cfg.temperature
    kl = _kl((logits[..., 1] - logits[..., 0])[m], b["t_logit"][m], t).mean()
    zero = torch.zeros((), device=logits.device)
    ce = nn.functional.cross_entropy(logits[m], b["labels"][m]) if cfg.hard_weight > 0 else zero
    zl = ((z - b["t_z"]) ** 2)[v].mean() if cfg.z_weight > 0 else zero
    total = kl * t * t + cfg.hard_weight * ce + cfg.z_weight * zl
    return total, {"kl": kl.detach(), "ce": ce.detach(), "z": zl.detach()}


@torch.no_grad()
def evaluate_student(
    model: TokenCompressorModel, examples: Sequence[Example], *, batch_size: int, pad_id: int,
    specials: Sequence[int], device: torch.device,
) -> dict[str, float]:
    """Mean per-token KL (T = 1) to the teacher, keep-F1/agreement against the teacher's p > 0.5,
    Z-score MSE, and keep-F1 against the gold labels (meaningful only when labels are real)."""
    was = model.training
    model.eval()
    acc = dict.fromkeys(("kl", "z", "n", "nz", "tp", "fp", "fn", "agree", "gtp", "gfp", "gfn"), 0.0)
    try:
        for idx in make_batches([len(x[0]) for x in examples], batch_size, generator=None):
            b = _batch(examples, idx, pad_id, device)
            logits, m, v, z = _forward(model, b, specials)
            s_logit = (logits[..., 1] - logits[..., 0])[m]  # (N,)
            s, t, y = s_logit > 0, b["t_logit"][m] > 0, (b["labels"] == 1)[m]
            for k, val in (("kl", _kl(s_logit, b["t_logit"][m], 1.0).sum()), ("z", ((z - b["t_z"]) ** 2)[v].sum()),
                           ("n", m.sum()), ("nz", v.sum()), ("tp", (s & t).sum()), ("fp", (s & ~t).sum()),
                           ("fn", (~s & t).sum()), ("agree", (s == t).sum()), ("gtp", (s & y).sum()),
                           ("gfp", (s & ~y).sum()), ("gfn", (~s & y).sum())):
                acc[k] += float(val)
    finally:
        model.train(was)
    n = max(acc["n"], 1.0)
    return {"kl": acc["kl"] / n, "z_mse": acc["z"] / max(acc["nz"], 1.0), "agreement": acc["agree"] / n,
            "keep_f1_vs_teacher": 2 * acc["tp"] / max(2 * acc["tp"] + acc["fp"] + acc["fn"], 1.0),
            "keep_f1_vs_gold": 2 * acc["gtp"] / max(2 * acc["gtp"] + acc["gfp"] + acc["gfn"], 1.0),
            "n_tokens": int(acc["n"])}


@dataclass
class _Opt:
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any


def _optimiser(student: TokenCompressorModel, config: DistillConfig, n_train: int) -> _Opt:
    """Every layer + head + shape table trainable (embeddings frozen), AdamW, warm-up/decay."""
    select_trainable(student, len(config.layers))
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(student, config.weight_decay, lr=config.lr), lr=config.lr)
    steps = math.ceil(n_train / config.batch_size) * config.epochs
    warm = int(round(config.warmup_ratio * steps))
    return _Opt(params, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warm)))


def _epoch(student: TokenCompressorModel, train_ex: list[Example], o: _Opt, config: DistillConfig,
           epoch: int, *, pad_id: int, specials: Sequence[int], dev: torch.device) -> list[float]:
    """One pass over the training chunks; the mean (total, kl, ce, z)."""
    torch.manual_seed(epoch_seed(config.seed, epoch))  # dropout
    gen = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
    student.train()
    sums = torch.zeros(4, device=dev)  # total, kl, ce, z
    batches = make_batches([len(x[0]) for x in train_ex], config.batch_size, generator=gen)
    for idx in batches:
        total, parts = distill_loss(student, _batch(train_ex, idx, pad_id, dev), config, specials)
        o.optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(o.params, config.grad_clip)
        o.optimizer.step()
        o.scheduler.step()
        sums += torch.stack([total.detach(), parts["kl"], parts["ce"], parts["z"]]).float()
    return (sums / max(1, len(batches))).tolist()


def distill(
    teacher: TokenCompressorModel, tokenizer: Any, docs: Sequence[Mapping[str, Any]] | Sequence[EncodedDoc],
    config: DistillConfig, *, log: Callable[[str], None] | None = None,
) -> DistillResult:
    """Train a student of ``config.layers`` on ``docs`` (raw documents or :func:`encode_for_distill`
    output); validation by document (:func:`split_by_document`), best epoch = lowest val KL.
    Global RNG state is restored on return (seeding happens inside a fork)."""
    dev = resolve_device(config.device)
    encoded = [d for d in docs if isinstance(d, EncodedDoc)]
    if len(encoded) != len(docs):
        encoded = encode_for_distill(docs, tokenizer, config, word_shape=teacher.word_shape)  # type: ignore[arg-type]
    tr, va = split_by_document([d.doc_id for d in encoded], config.val_fraction)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    specials = [i for i in (tokenizer.cls_token_id, tokenizer.sep_token_id, pad_id) if i is not None]
    teacher = teacher.to(dev)
    t0 = time.perf_counter()
    kw: dict[str, Any] = {"batch_size": config.batch_size * 2, "pad_id": pad_id, "specials": specials,
                          "device": dev}
    train_ex = teacher_targets(teacher, [c for i in tr for c in encoded[i].chunks], **kw)
    val_ex = teacher_targets(teacher, [c for i in va for c in encoded[i].chunks], **kw)
    if not train_ex:
        raise ValueError("no training chunk with word tokens: check the documents")
    if config.label_boost > 0:
        train_ex, val_ex = boost_targets(train_ex, config.label_boost), boost_targets(val_ex, config.label_boost)
    teacher_s = time.perf_counter() - t0
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor] | None, dict[str, Any] | None] = (math.inf, 0, None, None)
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed)
        student = build_student(teacher, config.layers).to(dev)
        o = _optimiser(student, config, len(train_ex))
        t1 = time.perf_counter()
        for epoch in range(1, config.epochs + 1):
            mean = _epoch(student, train_ex, o, config, epoch, pad_id=pad_id, specials=specials, dev=dev)
            rec: dict[str, Any] = {"epoch": epoch, "train_loss": mean[0], "train_kl": mean[1],
                                   "train_ce": mean[2], "train_z": mean[3], "seconds": time.perf_counter() - t1}
            if val_ex:
                rec["val"] = evaluate_student(student, val_ex, **kw)
            history.append(rec)
            score = rec["val"]["kl"] if val_ex else -epoch
            if score < best[0]:
                best = (score, epoch, trainable_state(student), rec.get("val"))
            if log is not None:
                log(f"  layers {config.layers} epoch {epoch}: loss {mean[0]:.4f} val {rec.get('val')}")
        train_s = time.perf_counter() - t1
    if best[2] is not None:
        student.load_state_dict({k: v.to(dev) for k, v in best[2].items()}, strict=False)
    student.eval()
    return DistillResult(student=student, config=config, history=history, best_epoch=best[1],
                         best_metrics=best[3], n_train_docs=len(tr), n_val_docs=len(va),
                         train_seconds=train_s, teacher_seconds=teacher_s)


def save_student(
    result: DistillResult, tokenizer: Any, path: str | Path, *, base: dict[str, Any] | None,
    defaults: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write the student as a model directory in int8 rows: a delta of its layers + head over
    ``base`` (the teacher's pip base: a few MB), or full storage when ``base`` is None."""
    prefixes = encoder_layer_prefixes(result.student)
    meta = {"distillation": {"config": result.config.to_dict(), "best_epoch": result.best_epoch,
                             "val": result.best_metrics, "n_train_docs": result.n_train_docs,
                             "n_val_docs": result.n_val_docs}}
    meta.update(metadata or {})
    return save_model(result.student, tokenizer, path, base=base,
                      delta_prefixes=prefixes if base is not None else None, dtype=torch.int8,
                      defaults=defaults, metadata=meta, extra_tensors=extra_tensors)
