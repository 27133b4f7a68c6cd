"""Question-aware compression over a :class:`~mooscomp.Compressor` (coarse-to-fine).

One forward pass per prompt gives both the token scores and the sentence embeddings
(:class:`mooscomp.relevance.SharedEncoder`: the frozen lower layers run once), the question is
embedded on its own, and :mod:`mooscomp.allocation` turns relevance + token scores into one exact
global selection. ``analyse`` (forward) and ``select`` (budget) are separate so that one analysis
serves many budgets.

Example:
    >>> qc = QuestionCompressor(Compressor.from_pretrained())
    >>> qc.compress(["doc 1 ...", "doc 2 ..."], rate=0.25, question="Who founded it?").text
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mooscomp.alignment import Words
from mooscomp.allocation import (
    AllocationConfig,
    ContextRelevance,
    allocate,
    check_question,
    check_question_budget,
    context_order,
    forced_words,
    select_exact,
    word_costs,
)
from mooscomp.config import CompressionConfig
from mooscomp.relevance import (
    DualScorer,
    OnnxSharedEncoder,
    SentenceEncoder,
    SharedEncoder,
    normalise,
    pool_segments,
    score_and_embed,
    sentence_texts,
    token_sentences,
    word_sentences,
)
from mooscomp.result import CompressionResult, ContextScores
from mooscomp.scoring import rarity_z, tokens_to_words, transform
from mooscomp.selection import mentions, question_terms
from mooscomp.stages import Prepared
from mooscomp.word_shape import ShapeTerm

logger = logging.getLogger(__name__)
Relevance = Literal["shared", "independent"]


@dataclass
class Analysis:
    """Everything the budget step needs of one prompt (no budget-dependent state).

    Attributes:
        question: the question (validated, non-empty).
        q_emb: (dim,) unit embedding of the question.
        contexts: per context, words + token scores + sentence relevance.
        costs: per context, (n_words,) output tokens of each word.
        forced: per context, (n_words,) bool force-token words.
        keep_prob / outlier_z: per context, (n_words,) word-level classifier outputs.
        origin_each: token count of every context.
    """

    question: str
    q_emb: np.ndarray
    contexts: list[ContextRelevance]
    costs: list[np.ndarray]
    forced: list[np.ndarray]
    keep_prob: list[np.ndarray]
    outlier_z: list[np.ndarray]
    origin_each: list[int]

    @property
    def origin(self) -> int:
        return int(sum(self.origin_each))


class QuestionCompressor:
    """Coarse-to-fine question-aware compression with a compressor's model.

    ``relevance``: ``"shared"`` pools base-encoder states computed over the compressor's own
    chunks (lower layers shared, one forward); ``"independent"`` embeds every sentence on its
    own (the sentence-transformers recipe, a second forward over the text).
    ``relevance_layers``: base layers above the shared ones used for relevance (None = all).
    ``backend``: ``"auto"`` runs the shared forward in onnxruntime on a CPU (exported once per
    weights, cached; torch if the export fails), ``"torch"`` / ``"onnx"`` force one.
    """

    def __init__(
        self,
        compressor: Any,
        *,
        allocation: AllocationConfig | None = None,
        relevance: Relevance = "shared",
        sentence_encoder: SentenceEncoder | None = None,
        backend: str = "auto",
        cache_dir: str | None = None,
        relevance_layers: int | None = None,
    ) -> None:
        if relevance not in ("shared", "independent"):
            raise ValueError(f"relevance must be 'shared' or 'independent', got {relevance!r}")
        if backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"backend must be 'auto', 'torch' or 'onnx', got {backend!r}")
        self.comp = compressor
        self.allocation = allocation or AllocationConfig()
        self.relevance = relevance
        device = str(next(compressor.model.parameters()).device)
        self.encoder = sentence_encoder or SentenceEncoder.from_base(device=device)
        self.shared = SharedEncoder.from_model(compressor.model, self.encoder.encoder,
                                               top_layers=relevance_layers)
        self.forward: DualScorer = self.shared
        self.shape_term = ShapeTerm.of_model(compressor.model)
        if backend != "torch" and device == "cpu":
            try:
                self.forward = OnnxSharedEncoder.from_shared(self.shared, cache_dir=cache_dir)
            except Exception as e:
                if backend == "onnx":
                    raise
                logger.warning("onnxruntime shared forward unavailable (%s: %s); using torch", type(e).__name__, e)

    def attach(self) -> QuestionCompressor:
        """Make this the question path of its compressor: ``compress(..., question=q)`` then uses
        its allocation settings and forward (e.g. ``AllocationConfig(order="relevance")``)."""
        self.comp.__dict__["_question_compressor"] = self
        return self

    def compress(
        self,
        contexts: str | Sequence[str],
        *,
        rate: float | None = None,
        target_tokens: int | None = None,
        question: str | None,
        force_tokens: Sequence[str] = (),
    ) -> CompressionResult:
        """As :meth:`Compressor.compress`; an empty/whitespace question means no question."""
        q = check_question(question)
        if (rate is None) == (target_tokens is None):
            raise ValueError("give exactly one of rate (in (0, 1]) or target_tokens (> 0)")
        if q is None:
            return self.comp.compress(contexts, rate=rate, target_tokens=target_tokens,
                                      force_tokens=list(force_tokens))
        a = self.analyse(contexts, q, force_tokens=force_tokens)
        target = float(target_tokens) if target_tokens is not None else float(rate or 0.0) * a.origin
        check_question_budget(q, target, self.comp.count)
        return self.select(a, target, force_tokens=force_tokens)

    def analyse(
        self, contexts: str | Sequence[str], question: str, *, force_tokens: Sequence[str] = ()
    ) -> Analysis:
        """Forward pass(es), word scores and sentence relevance of one prompt."""
        q = check_question(question)
        if q is None:
            raise ValueError("analyse needs a non-empty question")
        ctxs = [contexts] if isinstance(contexts, str) else list(contexts)
        if not all(isinstance(c, str) for c in ctxs):
            raise TypeError("contexts must be strings")
        prepared = [self.comp.prepare(c, self.comp.config) for c in ctxs]
        self.score(prepared)
        return self.analyse_prepared(prepared, q, force_tokens=force_tokens)

    def score(self, prepared: Sequence[Prepared]) -> None:
        """The shared forward over every chunk of ``prepared``: fills p_tok, z_tok and states."""
        tok = self.comp.tokenizer
        chunks = [ch for c in prepared for ch in c.chunks()]
        scored = score_and_embed(self.forward, chunks, cls_id=tok.cls_token_id,
                                 sep_id=tok.sep_token_id, pad_id=tok.pad_token_id or 0)
        dim = int(self.forward.hidden_size)
        k = 0
        for c in prepared:
            part = scored[k : k + len(c.spans)]
            k += len(c.spans)
            c.p_tok = np.concatenate([x[0] for x in part]) if part else np.zeros(0, np.float32)
            c.z_tok = np.concatenate([x[1] for x in part]) if part else np.zeros(0, np.float32)
            c.states = np.concatenate([x[2] for x in part]) if part else np.zeros((0, dim), np.float32)

    def analyse_prepared(
        self,
        prepared: Sequence[Prepared],
        question: str,
        *,
        force_tokens: Sequence[str] = (),
        config: CompressionConfig | None = None,
    ) -> Analysis:
        """The :class:`Analysis` of contexts scored by :meth:`score` (states filled)."""
        q = check_question(question)
        if q is None:
            raise ValueError("analyse needs a non-empty question")
        cfg = config or self.comp.config
        q_emb = self.encoder.embed([q])[0]  # (dim,)
        out = Analysis(q, q_emb, [], [], [], [], [], [])
        terms = question_terms(q)
        for c in prepared:
            if c.p_tok is None or c.z_tok is None or c.states is None:
                raise ValueError("analyse_prepared needs contexts scored by QuestionCompressor.score")
            self._add_context(out, c.words, c.alignment, c.p_tok, c.z_tok, c.states, terms,
                              force_tokens, cfg)
        return out

    def _add_context(
        self, out: Analysis, w: Words, al: Any, p_tok: np.ndarray, z_tok: np.ndarray,
        states: np.ndarray, terms: frozenset[str], force_tokens: Sequence[str],
        cfg: CompressionConfig,
    ) -> None:
        n = len(w)
        if self.shape_term is not None:  # models trained with word shapes (as stages.select does)
            p_tok = self.shape_term.apply(w, al.token_word, p_tok)
        p = tokens_to_words(p_tok, al.token_word, n, cfg.token_to_word)
        zt = z_tok if cfg.outlier_variant == "hidden" else rarity_z(al.input_ids, self.comp.log_freq)
        z = tokens_to_words(zt, al.token_word, n, "mean")
        fused = p + cfg.outlier_alpha * transform(z, cfg.outlier_transform, cfg.outlier_clip)
        ws = word_sentences(w, al)
        n_sent = int(ws[-1]) + 1 if ws.size else 0
        if self.relevance == "shared":
            sent_emb = pool_segments(states, token_sentences(al, ws), n_sent)
        else:
            sent_emb = self.encoder.embed(sentence_texts(w, ws))
        dim = int(self.encoder.encoder.config.hidden_size)
        ctx_emb = normalise(states.mean(0)) if states.shape[0] else np.zeros(dim, np.float32)
        forced = forced_words(w, force_tokens)
        if cfg.force_reserve_digit and n:
            forced |= np.fromiter((any(ch.isdigit() for ch in x) for x in w.tolist()), bool, n)
        out.contexts.append(ContextRelevance(w, fused.astype(np.float64), ws, sent_emb, ctx_emb,
                                             mentions(w, terms).astype(np.float64)))
        out.costs.append(word_costs(w, self.comp.count))
        out.forced.append(forced)
        out.keep_prob.append(p)
        out.outlier_z.append(z)
        out.origin_each.append(self.comp.count(w.text) if n else 0)

    def select(
        self,
        a: Analysis,
        target: float,
        *,
        force_tokens: Sequence[str] = (),
        allocation: AllocationConfig | None = None,
        config: CompressionConfig | None = None,
    ) -> CompressionResult:
        """Keep masks for ``target`` tokens and the result (contexts ordered per the config)."""
        cfg = allocation or self.allocation
        ccfg = config or self.comp.config
        words = [c.words for c in a.contexts]
        if target >= a.origin:
            keeps = [np.ones(len(w), dtype=bool) for w in words]
            scores = [c.score for c in a.contexts]
        else:
            scores = allocate(a.contexts, a.costs, target, a.q_emb, cfg)
            keeps = select_exact(words, scores, a.forced, a.costs, target, self.comp.count,
                                 units=ccfg.units, unit_pool=ccfg.unit_pool,
                                 keep_newlines="\n" in force_tokens)
        order = context_order([float(c.ctx_emb @ a.q_emb) for c in a.contexts], cfg.order)
        return build_result(a, keeps, scores, order, self.comp.count, keep_newlines="\n" in force_tokens)


_UNSET: Any = object()


def for_compressor(comp: Any) -> QuestionCompressor | None:
    """The compressor's question path, built on first use and kept on it.

    None when its model shares no layers with the base sentence encoder (the tiny test models):
    a question then only adds ``CompressionConfig.question_weight`` to the words it mentions.
    """
    qc = comp.__dict__.get("_question_compressor", _UNSET)
    if qc is _UNSET:
        qc = _build(comp)
        comp.__dict__["_question_compressor"] = qc
    return qc  # type: ignore[no-any-return]


def _build(comp: Any) -> QuestionCompressor | None:
    import json

    from mooscomp.modeling import DEFAULT_BASE, resolve_base_dir

    try:
        base = json.loads((resolve_base_dir(DEFAULT_BASE) / "config.json").read_text())
    except (OSError, ValueError, ImportError) as e:
        logger.warning("base sentence encoder unavailable (%s); question= boosts words only", e)
        return None
    own = comp.model.encoder.config
    keys = ("hidden_size", "num_attention_heads", "vocab_size")
    if any(getattr(own, k, None) != base.get(k) for k in keys):
        return None  # another architecture: nothing can be shared, no base weights loaded
    try:  # the compressor's runtime choice holds for the shared forward too
        return QuestionCompressor(comp, backend="torch" if comp.backend == "torch" else "auto")
    except ValueError:  # same shapes, different weights: nothing shared
        return None


def score_prepared(comp: Any, prepared: Sequence[Prepared], question: object) -> bool:
    """Stage 2 with a question: the shared forward (token scores + relevance states) when the
    compressor has a question path; False (nothing done) otherwise."""
    if check_question(question) is None:
        return False
    qc = for_compressor(comp)
    if qc is None:
        return False
    qc.score(prepared)
    return True


def select_prepared(
    comp: Any, prepared: Sequence[Prepared], config: CompressionConfig, request: Any
) -> CompressionResult | None:
    """Stage 3 with a question: coarse-to-fine selection of contexts scored by
    :func:`score_prepared` (None when the request has no question or they carry no states)."""
    q = check_question(request.question)
    if q is None or not prepared or any(c.states is None for c in prepared):
        return None
    qc = for_compressor(comp)
    if qc is None:
        return None
    a = qc.analyse_prepared(prepared, q, force_tokens=request.force_tokens, config=config)
    if a.origin == 0:
        return None  # no words: stages.select's empty result
    rate, target_tokens = request.rate, request.target_tokens
    target = float(target_tokens) if target_tokens is not None else float(rate) * a.origin
    check_question_budget(q, target, comp.count)
    return qc.select(a, target, force_tokens=request.force_tokens, config=config)


def build_result(
    a: Analysis,
    keeps: list[np.ndarray],
    scores: list[np.ndarray],
    order: list[int],
    count: Any,
    *,
    keep_newlines: bool,
) -> CompressionResult:
    """A :class:`CompressionResult` with the contexts in ``order``."""
    from mooscomp.selection import join_kept

    texts = [c.words.text if k.all() else join_kept(c.words, k, keep_newlines=keep_newlines)
             for c, k in zip(a.contexts, keeps, strict=True)]
    texts = [texts[i] for i in order]
    compressed = sum(count(t) for t in texts)
    origin = a.origin
    details = tuple(
        ContextScores(a.contexts[i].words, keeps[i], a.keep_prob[i], a.outlier_z[i],
                      scores[i].astype(np.float32), a.forced[i])
        for i in order
    )
    return CompressionResult(
        text="\n\n".join(t for t in texts if t),
        contexts=tuple(texts),
        context_kept=tuple(True for _ in texts),
        origin_tokens=origin,
        compressed_tokens=int(compressed),
        rate=compressed / origin if origin else 1.0,
        ratio=origin / compressed if compressed else (1.0 if origin == 0 else float("inf")),
        details=details,
    )
