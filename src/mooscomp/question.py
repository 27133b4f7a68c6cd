"""Question-aware compression over a :class:`~mooscomp.Compressor` (coarse-to-fine).

Coarse: every sentence and the question are embedded by the base sentence encoder (its int8
onnxruntime graph on a CPU) and ranked by cosine. Fine: the compressor's token classifier (its
own backend, the task-agnostic path's int8 graph on a CPU) scores only the sentences the ranking
can keep (``AllocationConfig.fine_cover`` budgets), and :mod:`mooscomp.allocation` turns
relevance + token scores into one exact global selection. The shipped model fine-tunes every
encoder layer, so nothing is shared and the fine forward shrinks with the budget instead.
``analyse`` (relevance) and ``select`` (budget, token scores) are separate so that one analysis
serves many budgets. ``relevance="shared"`` / ``"independent"`` keep the earlier one-forward
path for models that share their lower layers with the base encoder (every token scored).

Example:
    >>> qc = QuestionCompressor(Compressor.from_pretrained())
    >>> qc.compress(["doc 1 ...", "doc 2 ..."], rate=0.25, question="Who founded it?").text
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mooscomp._util import sha256_file
from mooscomp.allocation import (
    AllocationConfig,
    ContextRelevance,
    allocate,
    check_question,
    check_question_budget,
    context_head,
    context_order,
    forced_words,
    select_exact,
)
from mooscomp.config import CompressionConfig
from mooscomp.counting import context_costs
from mooscomp.fine import UNSCORED, Analysis, build_result, candidate_scores, fine_stage
from mooscomp.focus import question_sentences
from mooscomp.relevance import (
    SentenceEncoder,
    normalise,
    pool_segments,
    sentence_texts,
    token_sentences,
)
from mooscomp.result import CompressionResult
from mooscomp.scoring import rarity_z, tokens_to_words, transform
from mooscomp.shared_encoder import DualScorer, OnnxSharedEncoder, SharedEncoder, score_and_embed
from mooscomp.stages import Prepared
from mooscomp.terms import question_terms, term_ids
from mooscomp.word_shape import ShapeTerm

logger = logging.getLogger(__name__)
Relevance = Literal["sentences", "shared", "independent"]
RELEVANCES = ("sentences", "shared", "independent")
__all__ = ["UNSCORED", "Analysis", "QuestionCompressor", "build_result", "for_compressor"]


class QuestionCompressor:
    """Coarse-to-fine question-aware compression with a compressor's model.

    ``relevance``: ``"sentences"`` (default) embeds every sentence on its own with the base
    encoder and runs the token classifier only on the candidates the ranking can keep;
    ``"shared"`` pools base-encoder states computed over the compressor's own chunks (lower
    layers shared, one forward over everything); ``"independent"`` the same forward with
    sentences embedded on their own.
    ``relevance_layers``: base layers above the shared ones used for relevance (None = all).
    ``backend``: ``"auto"`` runs the sentence encoder (or the shared forward) in onnxruntime on a
    CPU (exported once per weights, cached; torch if the export fails), ``"torch"`` / ``"onnx"``
    force one.
    """

    def __init__(
        self,
        compressor: Any,
        *,
        allocation: AllocationConfig | None = None,
        relevance: Relevance = "sentences",
        sentence_encoder: SentenceEncoder | None = None,
        backend: str = "auto",
        cache_dir: str | None = None,
        relevance_layers: int | None = None,
    ) -> None:
        if relevance not in RELEVANCES:
            raise ValueError(f"relevance must be one of {RELEVANCES}, got {relevance!r}")
        if backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"backend must be 'auto', 'torch' or 'onnx', got {backend!r}")
        self.comp = compressor
        self.allocation = allocation or AllocationConfig()
        self.relevance = relevance
        device = str(next(compressor.model.parameters()).device)
        self.encoder = sentence_encoder or SentenceEncoder.from_base(device=device)
        self.shape_term = ShapeTerm.of_model(compressor.model)
        self.shared: SharedEncoder | None = None
        self.forward: DualScorer | None = None
        onnx = backend != "torch" and device == "cpu"
        if relevance != "sentences":  # raises ValueError when nothing is shared
            self.shared = SharedEncoder.from_model(compressor.model, self.encoder.encoder,
                                                   top_layers=relevance_layers)
            self.forward = self.shared
        try:
            if self.shared is not None and onnx:
                self.forward = OnnxSharedEncoder.from_shared(self.shared, cache_dir=cache_dir)
            elif self.shared is None and onnx and self.encoder.graph is None:
                self.encoder = self.encoder.with_onnx(cache_dir=cache_dir)
        except Exception as e:
            if backend == "onnx":
                raise
            logger.warning("onnxruntime relevance graph unavailable (%s: %s); using torch", type(e).__name__, e)

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
        """Stage 2 with a question. ``"sentences"``: sentence embeddings only (``states`` =
        (n_sent, dim); token scores come per budget in :meth:`select`). Otherwise the shared
        forward over every chunk: fills p_tok, z_tok and (n_tokens, dim) states."""
        if self.shared is None:  # one length-sorted pass over every sentence
            embs = self.encoder.embed_aligned([(c.words, c.alignment) for c in prepared], self.comp.tokenizer)
            for c, e in zip(prepared, embs, strict=True):
                c.states = e
            return
        assert self.forward is not None
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
        out = Analysis(q, q_emb, [], [], [], [], [], [], list(prepared), self.shared is not None)
        terms = question_terms(q)
        for c in prepared:
            if c.states is None or (self.shared is not None and (c.p_tok is None or c.z_tok is None)):
                raise ValueError("analyse_prepared needs contexts scored by QuestionCompressor.score")
            self._add_context(out, c, terms, force_tokens, cfg)
        return out

    def _add_context(
        self, out: Analysis, c: Prepared, terms: frozenset[str], force_tokens: Sequence[str],
        cfg: CompressionConfig,
    ) -> None:
        w, al, states = c.words, c.alignment, c.states
        assert states is not None
        n = len(w)
        ws = question_sentences(w, al)
        n_sent = int(ws[-1]) + 1 if ws.size else 0
        origin, costs = context_costs(w, self.comp.count)
        dim = int(self.encoder.encoder.config.hidden_size)
        if self.shared is None:  # "sentences": states are the sentence embeddings
            sent_emb = states
            weight = np.bincount(ws, weights=costs, minlength=n_sent) if n_sent else np.zeros(0)
            ctx_emb = normalise(weight @ sent_emb) if n_sent else np.zeros(dim, np.float32)
            p = z = fused = np.zeros(n)
        else:
            assert c.p_tok is not None and c.z_tok is not None
            p, z, fused = self._word_scores(c, c.p_tok, c.z_tok, cfg)
            if self.relevance == "shared":
                sent_emb = pool_segments(states, token_sentences(al, ws), n_sent)
            else:
                sent_emb = self.encoder.embed(sentence_texts(w, ws))
            ctx_emb = normalise(states.mean(0)) if states.shape[0] else np.zeros(dim, np.float32)
        forced = forced_words(w, force_tokens)
        if cfg.force_reserve_digit and n:
            forced |= np.fromiter((any(ch.isdigit() for ch in x) for x in w.tolist()), bool, n)
        tid = term_ids(w, terms)
        out.contexts.append(ContextRelevance(w, fused.astype(np.float64), ws, sent_emb, ctx_emb,
                                             (tid >= 0).astype(np.float64), context_head(w), tid))
        out.costs.append(costs)
        out.forced.append(forced)
        out.keep_prob.append(p)
        out.outlier_z.append(z)
        out.origin_each.append(origin)

    def _word_scores(
        self, c: Prepared, p_tok: np.ndarray, z_tok: np.ndarray, cfg: CompressionConfig
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n_words,) keep-probability, outlier Z and fused score (as stages.select computes)."""
        w, al = c.words, c.alignment
        n = len(w)
        if self.shape_term is not None:  # models trained with word shapes
            p_tok = self.shape_term.apply(w, al.token_word, p_tok)
        p = tokens_to_words(p_tok, al.token_word, n, cfg.token_to_word)
        zt = z_tok if cfg.outlier_variant == "hidden" else rarity_z(al.input_ids, self.comp.log_freq)
        z = tokens_to_words(zt, al.token_word, n, "mean")
        return p, z, p + cfg.outlier_alpha * transform(z, cfg.outlier_transform, cfg.outlier_clip)

    def fine(
        self, a: Analysis, target: float, cfg: AllocationConfig, config: CompressionConfig
    ) -> tuple[Analysis, np.ndarray]:
        """The fine stage of an unscored analysis (:func:`mooscomp.fine.fine_stage`)."""
        return fine_stage(self, a, target, cfg, config)

    def candidate_scores(
        self, a: Analysis, cand: np.ndarray, config: CompressionConfig
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per context (n_tokens,) p and z of the candidate sentences' tokens (0 elsewhere)."""
        return candidate_scores(self.comp, a, cand, config)

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
        ccfg = config or self.comp.config
        cfg = with_request_options(allocation or self.allocation, ccfg)
        words = [c.words for c in a.contexts]
        cand = None
        if not a.scored:
            a, cand = self.fine(a, min(target, float(a.origin)), cfg, ccfg)
        if target >= a.origin:
            keeps = [np.ones(len(w), dtype=bool) for w in words]
            scores = [c.score for c in a.contexts]
        else:
            scores = allocate(a.contexts, a.costs, target, a.q_emb, cfg, eligible=cand)
            keeps = select_exact(words, scores, a.forced, a.costs, target, self.comp.count,
                                 units=tuple(u for u in ccfg.units if u in cfg.units), unit_pool=ccfg.unit_pool,
                                 keep_newlines="\n" in force_tokens)
        order = context_order([float(c.ctx_emb @ a.q_emb) for c in a.contexts], cfg.order)
        return build_result(a, keeps, scores, order, self.comp.count, keep_newlines="\n" in force_tokens)


_UNSET: Any = object()


def for_compressor(comp: Any) -> QuestionCompressor | None:
    """The compressor's question path, built on first use and kept on it.

    None when its model is not of the base sentence encoder's family (hidden size, heads,
    vocabulary; the tiny test models): a question then only adds
    ``CompressionConfig.question_weight`` to the words it mentions.
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
        return None  # another family (its tokenizer may differ): no base weights loaded
    encoder = distilled_sentence_encoder(comp)
    # the compressor's runtime choice holds for the sentence encoder too
    return QuestionCompressor(comp, backend="torch" if comp.backend == "torch" else "auto",
                              sentence_encoder=encoder)


def distilled_sentence_encoder(comp: Any) -> SentenceEncoder | None:
    """The model directory's own sentence encoder (``config.json`` ``relevance``: a few layers
    distilled from the base, stored as int8 rows, over the base's embeddings), or None (the
    base's 6 layers). A smaller default model needs a relevance pass of its own size, or the
    question path would cost several task-agnostic calls."""
    spec = (comp.model_config or {}).get("relevance")
    if not spec or comp.model_dir is None:
        return None
    import torch
    from safetensors.torch import load_file

    from mooscomp.modeling import dequantize_rows

    path = Path(comp.model_dir) / spec["file"]
    if sha256_file(path) != spec["sha256"]:
        raise ValueError(f"{path}: sha256 does not match config.json relevance.sha256")
    base = SentenceEncoder.from_base(device=str(next(comp.model.parameters()).device))
    enc = base.encoder
    n = int(spec["n_layers"])
    enc.encoder.layer = torch.nn.ModuleList(enc.encoder.layer[:n])
    enc.config.num_hidden_layers = n
    state = {k: v.float() for k, v in dequantize_rows(load_file(str(path))).items()}
    missing = enc.load_state_dict(state, strict=False)
    if missing.unexpected_keys or any(k.startswith("encoder.layer.") for k in missing.missing_keys):
        raise ValueError(f"{path}: not a {n}-layer sentence encoder of the base")
    return SentenceEncoder(enc.eval(), base.tokenizer, max_tokens=base.max_tokens)


def score_prepared(comp: Any, prepared: Sequence[Prepared], question: object) -> bool:
    """Stage 2 with a question: the relevance pass (:meth:`QuestionCompressor.score`) when the
    compressor has a question path; False (nothing done) otherwise."""
    if check_question(question) is None:
        return False
    qc = for_compressor(comp)
    if qc is None:
        return False
    qc.score(prepared)
    return True


def with_request_options(alloc: AllocationConfig, config: CompressionConfig) -> AllocationConfig:
    """The allocation with the compression config's question options (``context_order``,
    ``min_contexts``) where they are set: the per-call switches of the CLI and the service."""
    if config.context_order is not None:
        alloc = replace(alloc, order=config.context_order)
    if config.min_contexts is not None:
        alloc = replace(alloc, min_contexts=config.min_contexts)
    return alloc


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
