"""The warm CPU path: a model directory whose ONNX graph is cached loads without torch.

A CLI call spent 4-7 s importing torch and transformers to run a graph that onnxruntime already
had on disk. Here the cache key of a model directory is computed from its files (``config.json``,
the tokenizer files, the sha256 of ``model.safetensors``, the options and the package versions),
not from its tensors, so the lookup needs no torch. Next to each graph a sidecar JSON records what
the compressor needs besides the forward (special token ids, encoder window, word-shape logit
term, and a ``.npy`` of the unigram log-frequencies when the model has them). The tokenizer is
read with ``tokenizers`` (:class:`FastTokenizer`), and the torch model is loaded only if
something asks for it (:class:`LazyModel`: training, the question-aware encoder, ``torch``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mooscomp._util import atomic_write_json, sha256_bytes, sha256_file
from mooscomp.exporters.onnx import (
    OnnxOptions,
    OnnxScorer,
    default_cache_dir,
    options_header,
    resolve_backend,
    select_scorer,
    session_threads,
)

SIDECAR_FORMAT = "mooscomp-onnx-sidecar"
SIDECAR_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
SPECIAL_NAMES = ("cls", "sep", "pad", "unk", "bos", "eos", "mask")
__all__ = ["FastTokenizer", "LazyModel", "WarmParts", "attach_scorer", "dir_key", "load_warm"]


def dir_key(model_dir: str | Path, options: OnnxOptions) -> str | None:
    """Cache key of a model directory's graph (None when the directory has no weights file).

    Hashes ``config.json`` and the tokenizer files as bytes and the weights by their sha256, so
    the key changes with any file the graph or the sidecar depends on.
    """
    d = Path(model_dir)
    weights, config = d / WEIGHTS_NAME, d / "config.json"
    if not (weights.is_file() and config.is_file()):
        return None
    parts = [sha256_bytes(repr(sorted(options_header(options).items())).encode())]
    for name in ("config.json", *TOKENIZER_FILES):
        f = d / name
        parts.append(f"{name}:{sha256_bytes(f.read_bytes()) if f.is_file() else '-'}")
    parts.append(f"{WEIGHTS_NAME}:{sha256_file(weights)}")
    return "dir-" + sha256_bytes("\n".join(parts).encode())[:24]


class FastTokenizer:
    """The subset of a transformers fast tokenizer that alignment and selection use, over a
    ``tokenizers.Tokenizer`` (offsets, special ids, normaliser) without importing transformers."""

    is_fast = True

    def __init__(self, tokenizer: Any, special: dict[str, int | None], *, source: Path | None = None) -> None:
        tokenizer.no_truncation()  # a tokenizer.json may carry padding/truncation; alignment wants none
        tokenizer.no_padding()
        self.backend_tokenizer = tokenizer
        self.source = source
        for name in SPECIAL_NAMES:
            setattr(self, f"{name}_token_id", special.get(f"{name}_token_id"))

    @classmethod
    def from_dir(cls, model_dir: str | Path, special: dict[str, int | None]) -> FastTokenizer:
        from tokenizers import Tokenizer

        d = Path(model_dir)
        return cls(Tokenizer.from_file(str(d / "tokenizer.json")), special, source=d)

    def __call__(
        self,
        text: str | list[str],
        *,
        add_special_tokens: bool = True,
        return_offsets_mapping: bool = False,
        return_attention_mask: bool = False,
        return_token_type_ids: bool = False,
        verbose: bool = True,
    ) -> dict[str, Any]:
        """``input_ids`` (and ``offset_mapping``) of one text or a list, as transformers returns."""
        texts = [text] if isinstance(text, str) else list(text)
        encs = self.backend_tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)
        out: dict[str, Any] = {"input_ids": [e.ids for e in encs]}
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encs]
        if return_attention_mask:
            out["attention_mask"] = [e.attention_mask for e in encs]
        if return_token_type_ids:
            out["token_type_ids"] = [e.type_ids for e in encs]
        return {k: v[0] for k, v in out.items()} if isinstance(text, str) else out

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return int(self.backend_tokenizer.num_special_tokens_to_add(pair))

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str | None]:
        return [self.backend_tokenizer.id_to_token(int(i)) for i in ids]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return str(self.backend_tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens))

    def __len__(self) -> int:
        return int(self.backend_tokenizer.get_vocab_size(with_added_tokens=True))

    def save_pretrained(self, path: str | Path) -> None:
        """Copy the tokenizer files of the model directory it was read from."""
        if self.source is None:
            raise ValueError("this tokenizer was not read from a model directory")
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        for name in TOKENIZER_FILES:
            if (self.source / name).is_file():
                shutil.copyfile(self.source / name, out / name)


class LazyModel:
    """Stands in for the torch model on the warm path: answers what compression needs (encoder
    window, word-shape term) from the sidecar and loads the real model on any other use."""

    def __init__(self, model_dir: Path, sidecar: dict[str, Any], device: str = "cpu") -> None:
        self.model_dir = model_dir
        self.device = device
        self.word_shape = tuple(sidecar.get("word_shape") or ())
        delta = sidecar.get("shape_delta")
        self._delta = None if delta is None else np.asarray(delta, dtype=np.float64)
        self._max_positions = int(sidecar["max_positions"])
        self._real: Any = None

    @property
    def max_positions(self) -> int:
        return self._max_positions

    def shape_logit_delta(self) -> np.ndarray | None:
        return None if self._delta is None else self._delta.copy()

    def eval(self) -> LazyModel:
        return self  # nothing loaded yet; the real model is loaded in eval mode

    def load(self) -> Any:
        """The torch model (loaded on first use; imports torch and transformers)."""
        if self._real is None:
            from mooscomp.modeling import load_model

            self._real = load_model(self.model_dir, device=self.device)[0]
        return self._real

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_real", "_delta", "_max_positions"):
            raise AttributeError(name)
        return getattr(self.load(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)


@dataclass(frozen=True)
class WarmParts:
    """What :meth:`Compressor.from_pretrained` builds a compressor from on the warm path."""

    model: LazyModel
    tokenizer: FastTokenizer
    model_config: dict[str, Any]
    log_freq: np.ndarray | None
    scorer: OnnxScorer


def load_warm(
    model_dir: str | Path, *, backend: str, device: Any, cache_dir: str | Path | None = None
) -> WarmParts | None:
    """The parts of a compressor whose graph is cached, read without torch; None when the graph
    or its sidecar is not cached (or the backend is torch, or the device not a CPU), so the
    caller loads the usual way (and :func:`attach_scorer` fills the cache)."""
    import json

    if backend not in ("auto", "onnx", "onnx-int8") or device != "cpu":
        return None
    d = Path(model_dir)
    opts = OnnxOptions.for_backend(resolve_backend(backend), threads=session_threads())
    key = dir_key(d, opts)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    graph, side = root / f"{key}.onnx", root / f"{key}.json"
    if key is None or not (graph.is_file() and side.is_file()):
        return None
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return None
    meta = json.loads(side.read_text())
    if meta.get("format") != SIDECAR_FORMAT or meta.get("version") != SIDECAR_VERSION:
        return None
    cfg = json.loads((d / "config.json").read_text())
    lf_path = root / f"{key}.log_freq.npy"
    log_freq = np.load(lf_path, allow_pickle=False) if meta.get("log_freq") else None
    return WarmParts(
        model=LazyModel(d, meta),
        tokenizer=FastTokenizer.from_dir(d, meta["special"]),
        model_config=cfg,
        log_freq=log_freq,
        scorer=OnnxScorer(graph, options=opts),
    )


def attach_scorer(
    comp: Any, model_dir: str | Path | None, *, backend: str, device: Any,
    cache_dir: str | Path | None = None,
) -> None:
    """Choose ``comp``'s forward backend (:func:`select_scorer`); for a model directory the graph
    is cached under :func:`dir_key` with a sidecar, so the next load takes :func:`load_warm`."""
    key = None
    if model_dir is not None and backend != "torch":
        key = dir_key(model_dir, OnnxOptions.for_backend(resolve_backend(backend)))
    comp.scorer = select_scorer(comp.model, backend=backend, device=device, cache_dir=cache_dir, key=key)
    if key is None or not isinstance(comp.scorer, OnnxScorer):
        return
    root = comp.scorer.path.parent
    side = root / f"{key}.json"
    if side.is_file():
        return
    if comp.log_freq is not None:
        tmp = root / f"{key}.log_freq.{np.random.default_rng().integers(1 << 30)}.tmp.npy"
        np.save(tmp, np.asarray(comp.log_freq, dtype=np.float64), allow_pickle=False)
        tmp.replace(root / f"{key}.log_freq.npy")
    delta = comp.model.shape_logit_delta() if hasattr(comp.model, "shape_logit_delta") else None
    tok = comp.tokenizer
    atomic_write_json(side, {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "max_positions": int(comp.model.max_positions),
        "word_shape": list(getattr(comp.model, "word_shape", ()) or ()),
        "shape_delta": None if delta is None else [float(x) for x in delta],
        "special": {f"{n}_token_id": getattr(tok, f"{n}_token_id", None) for n in SPECIAL_NAMES},
        "log_freq": comp.log_freq is not None,
    })
