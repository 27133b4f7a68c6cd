"""Compressor: segmentation -> alignment/chunking -> batched scoring -> selection -> result."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mooscomp import selection as sel
from mooscomp.alignment import Alignment, Words, align, chunk_spans, segment_words
from mooscomp.config import CompressionConfig, from_dict
from mooscomp.counting import TokenCounter, cl100k_count, count_many
from mooscomp.modeling import (
    DEFAULT_BASE,
    LOG_FREQ_KEY,
    TokenCompressorModel,
    load_model,
    resolve_base_dir,
    save_model,
)
from mooscomp.result import CompressionResult, ContextScores
from mooscomp.scoring import Scorer, rarity_z, score_chunks, tokens_to_words, transform

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).parent / "models" / "default"
MAX_FORCE_TOKENS = 1000
# Question words that say nothing about the content.
_STOP = frozenset(
    ["a", "an", "the", "of", "in", "on", "at", "to", "for", "from", "by", "with", "and", "or", "is", "are", "was", "were", "be", "been", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "does", "do", "did", "that", "this", "these", "those", "it", "its", "as", "than", "then", "there", "their"]
)

Inputs = str | Sequence[str]


@dataclass
class _Context:
    words: Words
    alignment: Alignment
    spans: list[tuple[int, int]]
    p_tok: np.ndarray | None = None
    z_tok: np.ndarray | None = None


class Compressor:
    """Compresses prompts by dropping low-value words.

    Example:
        >>> comp = Compressor.from_pretrained()
        >>> comp.compress(long_text, rate=0.33).text
    """

    def __init__(
        self,
        model: TokenCompressorModel,
        tokenizer: Any,
        *,
        config: CompressionConfig | None = None,
        token_counter: TokenCounter | None = None,
        log_freq: np.ndarray | None = None,
        model_config: dict[str, Any] | None = None,
        scorer: Scorer | None = None,
    ) -> None:
        """``scorer``: forward backend (a :class:`mooscomp.scoring.Scorer`); None = the torch model."""
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("tokenizer must be a fast tokenizer (offsets are needed for alignment)")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config or CompressionConfig()
        self.count = token_counter or cl100k_count
        self.log_freq = log_freq
        self.model_config = model_config or {}
        self._max_len = min(self.config.max_seq_len, model.max_positions)
        self.scorer = scorer

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        *,
        device: str = "cpu",
        config: CompressionConfig | None = None,
        token_counter: TokenCounter | None = None,
        backend: str = "auto",
        cache_dir: str | Path | None = None,
    ) -> Compressor:
        """Load a model directory; ``None`` = the shipped default model.

        ``backend`` picks the forward runtime (see :func:`mooscomp.onnx_runtime.select_scorer`):
        ``"auto"`` runs onnxruntime fp32 on a CPU when installed (same kept words, faster) and
        torch otherwise; ``"torch"`` / ``"onnx"`` force one. ``cache_dir`` holds exported graphs.
        When the package was built without trained weights, ``None`` falls back to the
        pip-installed MiniLM encoder with an untrained head (a stand-in for tests only).
        """
        from mooscomp.onnx_runtime import check_backend, select_scorer

        # before any loading: a typo or an unusable device must not cost a model load
        _check_device(device)
        check_backend(backend, device)
        if path is None and not (DEFAULT_MODEL_DIR / "config.json").is_file():
            logger.warning("no trained default model shipped; using MiniLM with an untrained head")
            comp = cls.untrained(device=device, config=config, token_counter=token_counter)
        else:
            model, tok, cfg, extra = load_model(path or DEFAULT_MODEL_DIR, device=device)
            defaults = cfg.get("defaults") or {}
            if config is None:
                config = from_dict(defaults) if defaults else CompressionConfig()
            lf = extra.get(LOG_FREQ_KEY)
            comp = cls(
                model,
                tok,
                config=config,
                token_counter=token_counter,
                log_freq=None if lf is None else lf.numpy().astype(np.float64),
                model_config=cfg,
            )
        comp.scorer = select_scorer(comp.model, backend=backend, device=device, cache_dir=cache_dir)
        return comp

    @property
    def backend(self) -> str:
        """The forward runtime in use: ``"torch"``, ``"onnx"``, ``"onnx-int8"`` (or a custom
        scorer's class name)."""
        if self.scorer is None:
            return "torch"
        return str(getattr(self.scorer, "name", type(self.scorer).__name__))

    @classmethod
    def untrained(
        cls,
        *,
        device: str = "cpu",
        config: CompressionConfig | None = None,
        token_counter: TokenCounter | None = None,
        seed: int = 0,
    ) -> Compressor:
        """MiniLM encoder + seeded untrained head: for tests and plumbing, not for real use."""
        from transformers import AutoTokenizer

        base = resolve_base_dir(DEFAULT_BASE)
        model = TokenCompressorModel.from_encoder_dir(base, seed=seed).to(device)
        tok = AutoTokenizer.from_pretrained(str(base))
        return cls(model, tok, config=config, token_counter=token_counter)

    def save_pretrained(self, path: str | Path, **kwargs: Any) -> Path:
        """Write a model directory (see :func:`mooscomp.modeling.save_model`)."""
        kwargs.setdefault("defaults", self.config.to_dict())
        if self.log_freq is not None:
            kwargs.setdefault("extra_tensors", {LOG_FREQ_KEY: torch.from_numpy(self.log_freq)})
        return save_model(self.model, self.tokenizer, path, **kwargs)

    # ------------------------------------------------------------------ public API

    def compress(
        self,
        text_or_contexts: Inputs,
        *,
        rate: float | None = None,
        target_tokens: int | None = None,
        force_tokens: Sequence[str] = (),
        question: str | None = None,
        config: CompressionConfig | None = None,
    ) -> CompressionResult:
        """Compress one prompt (a string, or a list of contexts compressed under one budget).

        Args:
            rate: wanted compressed/original token ratio in (0, 1].
            target_tokens: wanted compressed token count (> 0); exclusive with ``rate``.
            force_tokens: strings whose occurrences are always kept.
            question: optional question; words it mentions get ``config.question_weight``.
            config: overrides the compressor's default configuration.
        """
        return self.compress_batch(
            [text_or_contexts],
            rate=rate,
            target_tokens=target_tokens,
            force_tokens=force_tokens,
            question=question,
            config=config,
        )[0]

    def compress_batch(
        self,
        inputs: Sequence[Inputs],
        *,
        rate: float | None = None,
        target_tokens: int | None = None,
        force_tokens: Sequence[str] = (),
        question: str | None = None,
        config: CompressionConfig | None = None,
    ) -> list[CompressionResult]:
        """Compress many prompts; their chunks share length-sorted forward batches."""
        cfg = config or self.config
        if not isinstance(cfg, CompressionConfig):
            raise TypeError(f"config must be a CompressionConfig, got {type(cfg).__name__}")
        _check_budget(rate, target_tokens)
        forced_list = _check_force_tokens(force_tokens)
        if question is not None and not isinstance(question, str):
            raise TypeError(f"question must be a str or None, got {type(question).__name__}")
        if isinstance(inputs, str) or not isinstance(inputs, Sequence):
            raise TypeError("inputs must be a list of prompts (each a str or a list of str)")
        prompts = [_as_contexts(x, cfg.max_input_chars) for x in inputs]
        contexts = [[self._prepare(c, cfg) for c in ctxs] for ctxs in prompts]
        self._score([c for ctxs in contexts for c in ctxs], cfg)
        return [
            self._select(ctxs, cfg, rate, target_tokens, forced_list, question)
            for ctxs in contexts
        ]

    # ------------------------------------------------------------------ stages

    def _prepare(self, text: str, cfg: CompressionConfig) -> _Context:
        words = segment_words(text)
        al = align(words, self.tokenizer, end_chars=cfg.chunk_end_chars)
        n_special = self.tokenizer.num_special_tokens_to_add(pair=False)
        spans = chunk_spans(al, max(1, self._max_len - n_special)) if len(al) else []
        return _Context(words, al, spans)

    def _score(self, contexts: list[_Context], cfg: CompressionConfig) -> None:
        chunks = [c.alignment.input_ids[s:e] for c in contexts for s, e in c.spans]
        scored = self._score_chunks(chunks, cfg)
        k = 0
        for c in contexts:
            n = len(c.spans)
            part = scored[k : k + n]
            k += n
            c.p_tok = np.concatenate([p for p, _ in part]) if part else np.zeros(0, np.float32)
            c.z_tok = np.concatenate([z for _, z in part]) if part else np.zeros(0, np.float32)

    def _score_chunks(
        self, chunks: Sequence[np.ndarray], cfg: CompressionConfig
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(p, z) per chunk of token ids (no specials), through this compressor's backend."""
        tok = self.tokenizer
        return score_chunks(
            self.scorer if self.scorer is not None else self.model,
            chunks,
            cls_id=tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id,
            sep_id=tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id,
            pad_id=tok.pad_token_id if tok.pad_token_id is not None else 0,
            batch_size=cfg.batch_size,
            max_batch_tokens=cfg.max_batch_tokens,
        )

    def _word_scores(
        self, c: _Context, cfg: CompressionConfig
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n_words,) keep-prob, outlier z and fused score of one context."""
        n = len(c.words)
        assert c.p_tok is not None and c.z_tok is not None
        p = tokens_to_words(c.p_tok, c.alignment.token_word, n, cfg.token_to_word)
        if cfg.outlier_variant == "hidden":
            z_tok = c.z_tok
        else:
            z_tok = rarity_z(c.alignment.input_ids, self.log_freq)
        z = tokens_to_words(z_tok, c.alignment.token_word, n, "mean")
        fused = p + cfg.outlier_alpha * transform(z, cfg.outlier_transform, cfg.outlier_clip)
        return p, z, fused.astype(np.float32)

    def _select(
        self,
        ctxs: list[_Context],
        cfg: CompressionConfig,
        rate: float | None,
        target_tokens: int | None,
        force_tokens: list[str],
        question: str | None,
    ) -> CompressionResult:
        origin_each = [self.count(c.words.text) if len(c.words) else 0 for c in ctxs]
        origin = int(sum(origin_each))
        texts = [c.words.text for c in ctxs]
        if origin == 0:
            # no words at all: still one (empty) detail per context, as for any other input
            z, b = np.zeros(0, np.float32), np.zeros(0, dtype=bool)
            details = tuple(ContextScores(c.words, b, z, z, z, b) for c in ctxs)
            return _make_result(["" for _ in ctxs], [True] * len(ctxs), 0, 0, details)
        want_all = (rate is not None and rate >= 1.0) or (
            target_tokens is not None and target_tokens >= origin
        )
        scored = [self._word_scores(c, cfg) for c in ctxs]
        forced_tok = [_forced_words(c.words, force_tokens) for c in ctxs]
        forced = [
            ft | (_digit_words(c.words) if cfg.force_reserve_digit else False)
            for c, ft in zip(ctxs, forced_tok, strict=True)
        ]
        if question:
            qset = _question_terms(question)
            scored = [
                (p, z, f + cfg.question_weight * _mentions(c.words, qset))
                for c, (p, z, f) in zip(ctxs, scored, strict=True)
            ]
        if want_all:
            keeps = [np.ones(len(c.words), dtype=bool) for c in ctxs]
            return self._result(ctxs, keeps, [True] * len(ctxs), scored, forced, origin, texts)

        # Context-level filter (LLMLingua-2 semantics): drop whole low-scoring contexts first.
        kept_ctx = [True] * len(ctxs)
        if cfg.use_context_level_filter and len(ctxs) > 1:
            kept_ctx = _context_filter([s[0] for s in scored], rate, target_tokens, origin, cfg)
        live = [i for i, k in enumerate(kept_ctx) if k]
        live_origin = sum(origin_each[i] for i in live)
        if target_tokens is not None:
            target = float(target_tokens)
        else:
            assert rate is not None
            # with a context filter the rate applies to the surviving contexts (LLMLingua-2)
            base = live_origin if cfg.use_context_level_filter else origin
            target = float(rate) * base
        target = min(target, float(live_origin))

        keeps = [np.zeros(len(c.words), dtype=bool) for c in ctxs]
        if cfg.budget == "llmlingua2":
            eff_rate = min(target / max(live_origin, 1), 1.0)
            for i in live:
                keeps[i] = self._select_llmlingua2(ctxs[i], scored[i][2], forced[i], eff_rate)
        else:
            sub = self._select_global([ctxs[i] for i in live], [scored[i][2] for i in live],
                                      [forced[i] for i in live], target, cfg, force_tokens)
            for i, k in zip(live, sub, strict=True):
                keeps[i] = k
        if cfg.drop_consecutive:
            keeps = [
                sel.drop_consecutive_forced(c.words, k, ft)
                for c, k, ft in zip(ctxs, keeps, forced_tok, strict=True)
            ]
        return self._result(ctxs, keeps, kept_ctx, scored, forced, origin, texts, force_tokens)

    def _select_llmlingua2(
        self, c: _Context, fused: np.ndarray, forced: np.ndarray, rate: float
    ) -> np.ndarray:
        n = len(c.words)
        score = np.where(forced, 1.0, fused)
        cost = _unique_counts(self._normalised(c.words.tolist()), self.count)
        span_starts = np.asarray([s for s, _ in c.spans], dtype=np.int64)
        chunk_of_token = np.searchsorted(span_starts, np.arange(len(c.alignment)), side="right") - 1
        tw = c.alignment.token_word
        word_chunk = np.zeros(n, dtype=np.int64)
        ok = tw >= 0
        # chunk of a word = chunk of its first token; words without tokens follow their neighbour
        word_chunk[tw[ok][::-1]] = chunk_of_token[ok][::-1]
        word_chunk = np.maximum.accumulate(word_chunk)
        keep = sel.select_llmlingua2(score, cost, word_chunk, max(0.0, 1.0 - rate))
        # Forced words score 1.0, but fused scores (p + alpha * g(z), question boost) can exceed
        # 1 and push the percentile above it: keep them explicitly, as LLMLingua-2 always does.
        return keep | forced

    def _normalised(self, words: list[str]) -> list[str]:
        """Words as the encoder's tokenizer normalises them (e.g. lower-cased when uncased).

        LLMLingua-2 weights each word's score by the GPT tokens of the word it rebuilt from the
        encoder's tokens, i.e. the normalised form; the llmlingua2 budget does the same for parity.
        """
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        norm = getattr(backend, "normalizer", None)
        if norm is None:
            return words
        cache = {w: norm.normalize_str(w) for w in dict.fromkeys(words)}
        return [cache[w] for w in words]

    def _select_global(
        self,
        ctxs: list[_Context],
        fused: list[np.ndarray],
        forced: list[np.ndarray],
        target: float,
        cfg: CompressionConfig,
        force_tokens: list[str],
    ) -> list[np.ndarray]:
        keep_newlines = "\n" in force_tokens
        units_l, scores_l, costs_l, forced_l, n_units = [], [], [], [], []
        offset = 0
        for c, f, fo in zip(ctxs, fused, forced, strict=True):
            u = sel.unit_ids(c.words, cfg.units)
            nu = int(u[-1]) + 1 if u.size else 0
            cost = _word_costs(c.words, self.count)
            units_l.append(u + offset)
            scores_l.append(sel.pool_units(f.astype(np.float64), u, nu, cfg.unit_pool))
            costs_l.append(np.bincount(u, weights=cost, minlength=nu))
            forced_l.append(np.bincount(u, weights=fo.astype(np.float64), minlength=nu) > 0)
            n_units.append(nu)
            offset += nu
        units = np.concatenate(units_l) if units_l else np.zeros(0, np.int64)
        bounds = np.cumsum([0] + [len(c.words) for c in ctxs])

        def word_masks(unit_mask: np.ndarray) -> list[np.ndarray]:
            wm = unit_mask[units]
            return [wm[bounds[i] : bounds[i + 1]] for i in range(len(ctxs))]

        def measure(unit_mask: np.ndarray) -> int:
            return sum(
                self.count(sel.join_kept(c.words, m, keep_newlines=keep_newlines))
                for c, m in zip(ctxs, word_masks(unit_mask), strict=True)
            )

        unit_keep = sel.select_global(
            np.concatenate(scores_l),
            np.concatenate(costs_l),
            np.concatenate(forced_l),
            target,
            measure=measure,
        )
        return word_masks(unit_keep)

    def _result(
        self,
        ctxs: list[_Context],
        keeps: list[np.ndarray],
        kept_ctx: list[bool],
        scored: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        forced: list[np.ndarray],
        origin: int,
        texts: list[str],
        force_tokens: Sequence[str] = (),
    ) -> CompressionResult:
        keep_newlines = "\n" in force_tokens
        if all(k.all() for k in keeps) and all(kept_ctx):
            out = list(texts)  # nothing dropped: the input exactly
        else:
            out = [
                sel.join_kept(c.words, k, keep_newlines=keep_newlines) if kc else ""
                for c, k, kc in zip(ctxs, keeps, kept_ctx, strict=True)
            ]
        compressed = sum(self.count(t) for t, kc in zip(out, kept_ctx, strict=True) if kc)
        details = tuple(
            ContextScores(c.words, k & kc, p, z, f, fo)
            for c, k, kc, (p, z, f), fo in zip(ctxs, keeps, kept_ctx, scored, forced, strict=True)
        )
        return _make_result(out, kept_ctx, origin, compressed, details)


# ---------------------------------------------------------------------- helpers


def _make_result(
    out: list[str], kept_ctx: list[bool], origin: int, compressed: int, details: tuple[Any, ...]
) -> CompressionResult:
    text = "\n\n".join(t for t, k in zip(out, kept_ctx, strict=True) if k and t)
    rate = compressed / origin if origin else 1.0
    ratio = origin / compressed if compressed else (1.0 if origin == 0 else float("inf"))
    return CompressionResult(
        text=text,
        contexts=tuple(out),
        context_kept=tuple(kept_ctx),
        origin_tokens=int(origin),
        compressed_tokens=int(compressed),
        rate=float(rate),
        ratio=float(ratio),
        details=details,
    )


def _check_device(device: str | torch.device) -> None:
    """A usable torch device, or a ValueError naming it (not torch's assertion deep in a load)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} is not available: this torch has no usable CUDA GPU")
    if dev.type not in ("cpu", "cuda", "mps", "xpu"):
        raise ValueError(f"device must be cpu or cuda (or mps/xpu), got {device!r}")


def _check_budget(rate: float | None, target_tokens: int | None) -> None:
    if (rate is None) == (target_tokens is None):
        raise ValueError("give exactly one of rate (in (0, 1]) or target_tokens (> 0)")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise TypeError(f"rate must be a number in (0, 1], got {type(rate).__name__}")
        if not (0.0 < float(rate) <= 1.0):
            raise ValueError(f"rate must be in (0, 1], got {rate!r}")
    if target_tokens is not None:
        if isinstance(target_tokens, bool) or not isinstance(target_tokens, (int, np.integer)):
            raise TypeError(f"target_tokens must be an int > 0, got {type(target_tokens).__name__}")
        if target_tokens <= 0:
            raise ValueError(f"target_tokens must be > 0, got {target_tokens}")


def _check_force_tokens(force_tokens: Sequence[str]) -> list[str]:
    if isinstance(force_tokens, str) or not isinstance(force_tokens, (list, tuple)):
        raise TypeError("force_tokens must be a list or tuple of strings")
    if len(force_tokens) > MAX_FORCE_TOKENS:
        raise ValueError(f"force_tokens: at most {MAX_FORCE_TOKENS} tokens, got {len(force_tokens)}")
    for t in force_tokens:
        if not isinstance(t, str):
            raise TypeError(f"force_tokens must contain strings, got {type(t).__name__}")
        if t == "":
            raise ValueError("force_tokens must not contain the empty string")
    return list(dict.fromkeys(force_tokens))


def _as_contexts(x: Any, max_chars: int) -> list[str]:
    ctxs = [x] if isinstance(x, str) else x
    if not isinstance(ctxs, (list, tuple)):
        raise TypeError(f"a prompt must be a str or a list of str, got {type(x).__name__}")
    total = 0
    for c in ctxs:
        if not isinstance(c, str):
            raise TypeError(f"contexts must be strings, got {type(c).__name__}")
        total += len(c)
    if total > max_chars:
        raise ValueError(
            f"input has {total} characters, over max_input_chars={max_chars}; "
            "raise CompressionConfig.max_input_chars or split the input"
        )
    # Lone surrogates cannot be encoded or tokenised: replace each with U+FFFD (not "?", which
    # would invent a question mark that ends sentences and changes the text).
    return [_SURROGATE.sub("\ufffd", c) if _has_surrogate(c) else c for c in ctxs]


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(s: str) -> bool:
    return _SURROGATE.search(s) is not None


def _word_costs(words: Words, count: TokenCounter) -> np.ndarray:
    """(n_words,) tokens each word adds to the output, with its leading space where it has one."""
    lst = words.tolist()
    space = words.space_before()
    return _unique_counts([(" " + w) if s else w for w, s in zip(lst, space.tolist(), strict=True)], count)


def _unique_counts(strings: list[str], count: TokenCounter) -> np.ndarray:
    """(len(strings),) token counts, counting each distinct string once."""
    uniq = list(dict.fromkeys(strings))
    counts = dict(zip(uniq, count_many(count, uniq).tolist(), strict=True))
    return np.fromiter((counts[k] for k in strings), np.float64, len(strings))


def _forced_words(words: Words, force_tokens: list[str]) -> np.ndarray:
    """(n_words,) bool: words overlapping an occurrence of any force token."""
    n = len(words)
    mark = np.zeros(n + 1, dtype=np.int64)
    toks = [t for t in force_tokens if t.strip()]
    if not toks or n == 0:
        return np.zeros(n, dtype=bool)
    pattern = re.compile("|".join(re.escape(t) for t in sorted(toks, key=len, reverse=True)))
    spans = np.asarray([m.span() for m in pattern.finditer(words.text)], dtype=np.int64)
    if spans.size == 0:
        return np.zeros(n, dtype=bool)
    first = np.searchsorted(words.ends, spans[:, 0], side="right")
    last = np.searchsorted(words.starts, spans[:, 1], side="left")  # exclusive
    ok = last > first
    np.add.at(mark, first[ok], 1)
    np.add.at(mark, last[ok], -1)
    return np.cumsum(mark[:n]) > 0


def _digit_words(words: Words) -> np.ndarray:
    if len(words) == 0:
        return np.zeros(0, dtype=bool)
    return np.fromiter((any(ch.isdigit() for ch in w) for w in words.tolist()), bool, len(words))


def _question_terms(question: str) -> frozenset[str]:
    return frozenset(
        w.lower() for w in segment_words(question).tolist() if w.isalnum() and w.lower() not in _STOP
    )


def _mentions(words: Words, terms: frozenset[str]) -> np.ndarray:
    if not terms or len(words) == 0:
        return np.zeros(len(words), dtype=np.float32)
    return np.fromiter((w.lower() in terms for w in words.tolist()), np.float32, len(words))


def _context_filter(
    probs: list[np.ndarray],
    rate: float | None,
    target_tokens: int | None,
    origin: int,
    cfg: CompressionConfig,
) -> list[bool]:
    """LLMLingua-2's context filter: keep contexts whose mean keep-prob clears a percentile."""
    if cfg.context_level_rate is not None:
        level = cfg.context_level_rate
    elif target_tokens is not None:
        level = min(2.0 * target_tokens / max(origin, 1), 1.0)
    else:
        level = (float(rate or 1.0) + 1.0) / 2.0
    ctx_p = np.asarray([float(p.mean()) if p.size else 0.0 for p in probs])
    thr = np.percentile(ctx_p, int(100 * (1 - level)))
    return (ctx_p >= thr).tolist()
