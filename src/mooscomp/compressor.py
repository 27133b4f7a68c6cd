"""Compressor: the facade over the stages ``prepare`` -> ``score`` -> ``select``.

It owns what a call needs besides its options (model, tokenizer, forward backend, token counter,
default configuration) and runs :mod:`mooscomp.stages` over them; the algorithm lives in
:mod:`mooscomp.stages`, :mod:`mooscomp.outliers`, :mod:`mooscomp.units` and
:mod:`mooscomp.selection`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mooscomp import format_route, stages
from mooscomp.config import MAX_FORCE_TOKENS, CompressionConfig, Request, from_dict
from mooscomp.counting import TokenCounter, cl100k_count
from mooscomp.result import CompressionResult
from mooscomp.scoring import Scorer
from mooscomp.stages import Prepared
from mooscomp.word_shape import ShapeTerm

if TYPE_CHECKING:  # pragma: no cover - the torch model; imported only where it is loaded
    from mooscomp.formats import FormatOptions
    from mooscomp.modeling import TokenCompressorModel

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).parent / "models" / "default"
__all__ = ["DEFAULT_MODEL_DIR", "MAX_FORCE_TOKENS", "Compressor", "Inputs", "model_defaults"]

Inputs = str | Sequence[str]


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
        self.max_len = min(self.config.max_seq_len, model.max_positions)
        self.scorer = scorer
        self.shape_term = ShapeTerm.of_model(model)  # word-shape logits (None for most models)
        self.model_dir: Path | None = None  # set by from_pretrained: files beside the weights

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

        ``backend`` picks the forward runtime (see :func:`mooscomp.exporters.onnx.select_scorer`):
        ``"auto"`` runs onnxruntime int8 on a CPU when installed (the fp32 reference's answer
        survival, faster) and torch otherwise; ``"onnx"`` is the fp32 reference (torch's kept
        words); ``"torch"`` / ``"onnx"`` / ``"onnx-int8"`` force one. ``cache_dir`` holds
        exported graphs; once a directory's graph is cached, loading it imports no torch.
        ``config``: the fields it was given explicitly replace the model's recorded defaults,
        the others keep them (:meth:`CompressionConfig.merged`).
        When the package was built without trained weights, ``None`` falls back to the
        pip-installed MiniLM encoder with an untrained head (a stand-in for tests only).
        """
        from mooscomp.exporters.fast_load import attach_scorer, load_warm
        from mooscomp.exporters.onnx import check_backend

        # before any loading: a typo or an unusable device must not cost a model load
        _check_device(device)
        check_backend(backend, device)
        model_dir = None if path is None and not (DEFAULT_MODEL_DIR / "config.json").is_file() \
            else Path(path or DEFAULT_MODEL_DIR)
        warm = None if model_dir is None else load_warm(
            model_dir, backend=backend, device=device, cache_dir=cache_dir
        )
        if warm is not None:  # the graph is cached: no torch, no transformers
            comp = cls(
                warm.model,  # type: ignore[arg-type]
                warm.tokenizer,
                config=_defaults_of(warm.model_config).merged(config),
                token_counter=token_counter,
                log_freq=warm.log_freq,
                model_config=warm.model_config,
                scorer=warm.scorer,
            )
            comp.model_dir = model_dir
            return comp
        if model_dir is None:
            logger.warning("no trained default model shipped; using MiniLM with an untrained head")
            comp = cls.untrained(device=device, config=config, token_counter=token_counter)
        else:
            from mooscomp.modeling import LOG_FREQ_KEY, load_model

            model, tok, cfg, extra = load_model(model_dir, device=device)
            config = _defaults_of(cfg).merged(config)  # given fields over the model's defaults
            lf = extra.get(LOG_FREQ_KEY)
            comp = cls(
                model,
                tok,
                config=config,
                token_counter=token_counter,
                log_freq=None if lf is None else lf.numpy().astype(np.float64),
                model_config=cfg,
            )
        attach_scorer(comp, model_dir, backend=backend, device=device, cache_dir=cache_dir)
        comp.model_dir = model_dir
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

        from mooscomp.modeling import DEFAULT_BASE, TokenCompressorModel, resolve_base_dir

        base = resolve_base_dir(DEFAULT_BASE)
        model = TokenCompressorModel.from_encoder_dir(base, seed=seed).to(device)
        tok = AutoTokenizer.from_pretrained(str(base))
        return cls(model, tok, config=config, token_counter=token_counter)

    def save_pretrained(self, path: str | Path, **kwargs: Any) -> Path:
        """Write a model directory (see :func:`mooscomp.modeling.save_model`)."""
        from mooscomp.modeling import LOG_FREQ_KEY, save_model

        kwargs.setdefault("defaults", self.config.to_dict())
        if self.log_freq is not None:
            import torch

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
        format: str = "auto",
        format_options: FormatOptions | None = None,
    ) -> CompressionResult:
        """Compress one prompt (a string, or a list of contexts compressed under one budget).

        Args:
            rate: wanted compressed/original token ratio in (0, 1].
            target_tokens: wanted compressed token count (> 0); exclusive with ``rate``.
            force_tokens: strings whose occurrences are always kept.
            question: the question the prompt will answer: coarse-to-fine selection
                (:mod:`mooscomp.question`: sentences ranked by relevance with the base encoder's
                embeddings, blended with token scores, exact global budget). Models that share no
                layers with the base encoder boost the words it mentions by
                ``config.question_weight`` instead. Empty/whitespace = no question; a question
                longer than the budget is a ValueError; a non-string a TypeError.
            config: overrides of the compressor's configuration: the fields it was given
                explicitly replace the compressor's (see :meth:`config_with`).
            format: ``auto`` (the default: detect Markdown, JSON, code or text, see
                :func:`mooscomp.formats.detect_format`), ``raw`` (word by word over the whole
                input, no structure kept, no target check), ``text``, ``markdown``, ``json`` or
                ``code`` (:mod:`mooscomp.format_route`, docs/formats.md). ``auto`` compresses
                plain prose (one paragraph) and lists of contexts exactly as ``raw`` does; a
                structured format needs a str. Every format but ``raw`` checks the target
                (``target_missed``, ``warnings``, a
                :class:`mooscomp.result.TargetMissedWarning`). Every result has the same
                fields, per-word ``details`` included, whatever the format.
            format_options: :class:`mooscomp.formats.FormatOptions` (code blocks kept or
                dropped, code comments compressed, over-budget error).

        Raises:
            ValueError: also for ``format="json"`` on text that does not parse.
        """
        return self.compress_batch(
            [text_or_contexts],
            rate=rate,
            target_tokens=target_tokens,
            force_tokens=force_tokens,
            question=question,
            config=config,
            format=format,
            format_options=format_options,
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
        format: str = "auto",
        format_options: FormatOptions | None = None,
    ) -> list[CompressionResult]:
        """Compress many prompts; all their chunks share length-sorted forward batches (a
        structured prompt's prose is one context of that batch; its selection passes follow).
        ``format``: as in :meth:`compress`, for every prompt."""
        cfg = self.config.merged(config)
        request = Request(rate, target_tokens, force_tokens, question)  # type: ignore[arg-type]
        if isinstance(inputs, str) or not isinstance(inputs, Sequence):
            raise TypeError("inputs must be a list of prompts (each a str or a list of str)")
        fmt = format_route.check_format(format)
        prompts = [stages.as_contexts(x, cfg.max_input_chars) for x in inputs]
        routes = [format_route.route(p[0] if isinstance(x, str) else p, fmt)
                  for x, p in zip(inputs, prompts, strict=True)]
        raw = [i for i, r in enumerate(routes) if r in (format_route.RAW, format_route.PLAIN)]
        contexts = [[self.prepare(c, cfg) for c in prompts[i]] for i in raw]
        # structured prompts: their prose is one context each, scored in the same batches
        parsed = {i: format_route.parse_structured(prompts[i][0], r, format_options)
                  for i, r in enumerate(routes) if r not in (format_route.RAW, format_route.PLAIN)}
        prose = {i: self.prepare(stages.as_contexts([ctx], cfg.max_input_chars)[0], cfg)
                 for i, p in parsed.items() if (ctx := p.prose_context())}
        groups = [*contexts, *([c] for c in prose.values())]  # one group per prompt
        if request.question is not None and getattr(self.scorer, "max_rows", None):
            # dynamic int8: the sentence graph scales activations by its batch as well, so each
            # prompt's sentences are embedded apart from the others' (results as for compress)
            for g in groups:
                self.score(g, cfg, question=request.question)
        else:
            self.score([c for g in groups for c in g], cfg, question=request.question)
        out: list[CompressionResult | None] = [None] * len(inputs)
        for i, ctxs in zip(raw, contexts, strict=True):
            out[i] = self.select(ctxs, cfg, request)
        for i, r in enumerate(routes):
            if r == format_route.PLAIN:
                out[i] = format_route.check_target(out[i], request, cfg.budget)  # type: ignore[arg-type]
            elif r != format_route.RAW:
                out[i] = format_route.compress_structured(self, parsed[i], request, cfg,
                                                          prepared=prose.get(i))
        results = [r for r in out if r is not None]
        format_route.warn_missed(results)
        return results

    def config_with(
        self, config: CompressionConfig | None = None, **changes: Any
    ) -> CompressionConfig:
        """This compressor's configuration (the model's recorded defaults unless one was given at
        load) with ``config``'s explicitly given fields, then ``changes``, laid over it."""
        cfg = self.config.merged(config)
        return cfg.replace(**changes) if changes else cfg

    # ------------------------------------------------------------------ stages

    def prepare(self, text: str, config: CompressionConfig | None = None) -> Prepared:
        """Stage 1 (:func:`mooscomp.stages.prepare`): words, alignment and chunks of one context."""
        return stages.prepare(text, self.tokenizer, config or self.config, max_len=self.max_len)

    def score(
        self, prepared: Sequence[Prepared], config: CompressionConfig | None = None, *,
        question: str | None = None,
    ) -> None:
        """Stage 2 (:func:`mooscomp.stages.score`): one batched forward over all contexts.

        With a (non-blank) ``question`` and a model that shares layers with its base sentence
        encoder, the shared forward also fills the relevance states that :meth:`select` needs for
        question-aware selection (:func:`mooscomp.question.score_prepared`).
        """
        if question is not None:
            from mooscomp import question as _question  # torch: only on the question path

            if _question.score_prepared(self, prepared, question):
                return
        stages.score(prepared, self._forward_backend, config or self.config, tokenizer=self.tokenizer)

    def score_chunks(
        self, chunks: Sequence[np.ndarray], config: CompressionConfig | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(p, z) per chunk of token ids (no specials), through this compressor's backend."""
        return stages.score_chunks(
            self._forward_backend, chunks, config or self.config, tokenizer=self.tokenizer
        )

    def select(
        self, prepared: Sequence[Prepared], config: CompressionConfig | None, request: Request
    ) -> CompressionResult:
        """Stage 3 (:func:`mooscomp.stages.select`): one prompt's scored contexts -> result;
        coarse-to-fine (:func:`mooscomp.question.select_prepared`) when the request has a question
        and :meth:`score` was given it."""
        if request.question is not None and prepared and prepared[0].states is not None:
            from mooscomp import question as _question

            res = _question.select_prepared(self, prepared, config or self.config, request)
            if res is not None:
                return res
        return stages.select(
            prepared, config or self.config, request,
            count=self.count, tokenizer=self.tokenizer, log_freq=self.log_freq,
            shape_term=self.shape_term,
        )

    @property
    def _forward_backend(self) -> Any:
        return self.scorer if self.scorer is not None else self.model


def model_defaults(path: str | Path | None = None) -> CompressionConfig:
    """The compression defaults recorded with a model directory (``None`` = the shipped model),
    read without loading the weights; ``CompressionConfig()`` when it records none."""
    from mooscomp.modeling import read_config

    p = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if path is None and not (p / "config.json").is_file():
        return CompressionConfig()
    return _defaults_of(read_config(p))


def _defaults_of(model_config: dict[str, Any]) -> CompressionConfig:
    defaults = model_config.get("defaults") or {}
    return from_dict(defaults) if defaults else CompressionConfig()


def _check_device(device: Any) -> None:
    """A usable torch device, or a ValueError naming it (not torch's assertion deep in a load)."""
    if isinstance(device, str) and device == "cpu":
        return  # the warm ONNX path must not import torch just to check this
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} is not available: this torch has no usable CUDA GPU")
    if dev.type not in ("cpu", "cuda", "mps", "xpu"):
        raise ValueError(f"device must be cpu or cuda (or mps/xpu), got {device!r}")
