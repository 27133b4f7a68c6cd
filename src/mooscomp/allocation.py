"""Question-aware budget allocation: sentence relevance blended with token keep-scores.

Coarse-to-fine in one global selection. Every sentence gets a priority (its cosine to the
question, mixed with its context's, blended with the mean keep-score of its words); sentences
are then taken in priority order and the i-th gets a bonus that falls linearly from 1 to 0 as the
tokens of the sentences before it fill ``spread`` budgets. A word's selection score is its token
score plus ``relevance_weight * bonus`` of its sentence. With a large weight and a short spread
the most relevant sentences are kept whole and the rest dropped (sentence ranking); with a small
weight the token classifier decides (the task-agnostic path); in between, relevant sentences are
compressed lightly and the others harder (a per-sentence dynamic ratio, as in LongLLMLingua).
The budget is exact because the final choice is the same global, recounted selection as without
a question (:func:`mooscomp.selection.select_global`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

import numpy as np

from mooscomp import selection as sel
from mooscomp._util import check_choice, check_float, check_int
from mooscomp.alignment import Words
from mooscomp.config import UNIT_RULE_NAMES, UNIT_RULES, ContextOrder
from mooscomp.counting import TokenCounter
from mooscomp.focus import sentence_bonus, sentence_stats, zscore
from mooscomp.terms import term_overlap
from mooscomp.units import FUNCTION_WORDS

Order = ContextOrder
ORDERS = get_args(ContextOrder)
_EPS = 1e-6


@dataclass(frozen=True)
class AllocationConfig:
    """How sentence relevance and token scores share the budget.

    Attributes:
        relevance_weight: scale of the sentence bonus added to word scores (token scores are
            ~[0, 1.3]); 0 = the question only reorders nothing and the token scores decide.
        spread: the bonus reaches 0 after the most relevant sentences fill this many budgets;
            small = focus (keep few sentences whole), large = spread the budget (blend).
        token_blend: weight of a sentence's mean token score (Z-scored) in its priority, against
            its relevance (Z-scored); 0 = relevance alone.
        context_weight: weight of the context's relevance in a sentence's relevance.
        feedback: pseudo-relevance feedback for multi-hop questions: the question vector plus
            this weight times the best sentence's vector is the query of a second ranking
            (finds the sentence about the bridge entity); 0 = one ranking.
        hop: second hop for multi-hop questions: a sentence's relevance is the larger of its
            cosine to the question and ``hop`` times its best cosine to the ``hop_top`` sentences
            that rank highest for the question (in other contexts than its own); 0 = one hop.
        hop_top: how many top-ranked sentences seed the second hop.
        link: entity-link hop for multi-hop questions: a context whose title
            (:func:`context_head`) is named by one of the ``link_top`` most relevant sentences of
            another context gets ``link`` times that sentence's relevance added to the relevance
            of its sentences (the bridge entity's own paragraph holds the answer, and rarely
            resembles the question); 0 = off.
        link_top: how many of the most relevant sentences may link a context.
        lead: a context's first sentence (where a passage names what it is about: "Wes Unseld:
            Westley Sissel Unseld (born ...)") gets at least this share of the best relevance of
            its context's sentences (the reader is told who "he" is); 0 = off.
        term_weight: added to the score of words the question mentions (today's lexical boost).
        window: a sentence's relevance is at least this share of the previous sentence's (same
            context): "It in turn evolved into Modern English." answers a question about the
            sentence before it, whose subject the pronoun carries; 0 = off.
        lexical: added to a sentence's relevance, times the IDF-weighted share of the question's
            terms it contains (IDF over the prompt's sentences; a hybrid of dense and sparse
            ranking: a name or number the question repeats is strong evidence the encoder's
            embedding blurs); 0 = the encoder alone.
        fine_cover: coarse-to-fine: the token classifier scores only the sentences ranked
            (by relevance alone) within this many budgets; the rest are dropped unscored. Keep it
            above ``spread`` (past it a sentence gets no bonus and is hardly ever kept).
        min_contexts: the best sentence of each of the this-many most relevant contexts is put
            first (kept whenever the budget allows).
        order: contexts in the output: ``"original"`` order or by ``"relevance"`` (best first).
        units: the unit rules the question path may apply, out of the compression config's
            (the default keeps ``phrase`` out: with it, dev survival fell, SQuAD 4x 0.981 -> 0.963;
            the question-free default does use it).
    """

    # defaults: the shipped model with its fine-tuned int8 sentence encoder, best mean dev
    # survival (SQuAD, HotpotQA, single paragraphs x 2x-10x) of a staged grid among the settings
    # whose fine stage keeps the 8k-token question overhead <= 1.3x (fine_cover <= 1.25);
    # reports/question_survival.json (tuning_log). The encoder now finds second-hop sentences
    # itself: hop 0 beats 0.9 on dev; the entity-link hop (titles named by the top 5 sentences)
    # raised the best dev mean of the grid from 0.823 to 0.872 (HotpotQA 4x 0.72 -> 0.84).
    # fine_cover 1.0 ties 1.25 on dev (real fine stage 0.8735 vs 0.8725; emulated 0.8714 vs
    # 0.8725) and makes the question path ~5% faster: a tie goes to the narrower cover.
    # lead 0.8: the reader's choice on dev (mean F1 0.606 vs 0.595, reports/readable_question_lead.json);
    # a tie on dev survival (0.8724 vs 0.8735). lexical 0.2: best mean dev survival on 300 more dev
    # items per task (0.8569 -> 0.8849; 0.3 0.8838, 0.5 0.8805: reports/question_survival.json lexical).
    # window 0.5 was then best on the same dev items (0.8849 -> 0.8899) but the reader's dev choice
    # was window 0 (mean F1 0.6169 vs 0.6121, reports/readable_question_window.json; again on
    # 400 dev items per task, 0.6153 vs 0.6107: readable_question_window2.json): off. link_top 40:
    # best mean dev survival (0.8849 -> 0.8891, HotpotQA 4x 0.826 -> 0.846; question_survival.json
    # link_top_session_14), then the reader's dev choice (readable_question_link.json).
    relevance_weight: float = 2.8
    spread: float = 0.5
    token_blend: float = 0.25
    context_weight: float = 0.0
    feedback: float = 0.0
    hop: float = 0.0
    hop_top: int = 1
    link: float = 1.0
    link_top: int = 40
    lead: float = 0.8
    term_weight: float = 0.0
    lexical: float = 0.2
    window: float = 0.0
    fine_cover: float = 1.0
    min_contexts: int = 0
    order: Order = "original"
    units: tuple[str, ...] = UNIT_RULES

    def __post_init__(self) -> None:
        check_float("relevance_weight", self.relevance_weight, 0.0, 1e6)
        check_float("spread", self.spread, 0.0, 1e6, low_open=True)
        check_float("token_blend", self.token_blend, 0.0, 1.0)
        check_float("context_weight", self.context_weight, 0.0, 1.0)
        check_float("feedback", self.feedback, 0.0, 100.0)
        check_float("hop", self.hop, 0.0, 10.0)
        check_int("hop_top", self.hop_top, 1, 1000)
        check_float("link", self.link, 0.0, 10.0)
        check_int("link_top", self.link_top, 1, 1000)
        check_float("lead", self.lead, 0.0, 1.0)
        check_float("term_weight", self.term_weight, 0.0, 100.0)
        check_float("lexical", self.lexical, 0.0, 100.0)
        check_float("window", self.window, 0.0, 1.0)
        check_float("fine_cover", self.fine_cover, 0.0, 1e6, low_open=True)
        check_int("min_contexts", self.min_contexts, 0, 10**6)
        check_choice("order", self.order, ORDERS)
        if not isinstance(self.units, (tuple, list)) or not set(self.units) <= set(UNIT_RULE_NAMES):
            raise ValueError(f"units must be a tuple of {UNIT_RULE_NAMES}, got {self.units!r}")
        object.__setattr__(self, "units", tuple(self.units))  # a JSON list (--params) too


def check_question(question: object) -> str | None:
    """The question to use: None for None, empty or whitespace-only (treated as absent)."""
    if question is None:
        return None
    if not isinstance(question, str):
        raise TypeError(f"question must be a str or None, got {type(question).__name__}")
    return question if question.strip() else None


def check_question_budget(question: str, target: float, count: TokenCounter) -> None:
    """A question longer than the whole budget cannot be answered from the budget: refuse."""
    n = count(question)
    if n > target:
        raise ValueError(
            f"the question has {n} tokens, more than the budget of {target:.0f} tokens; "
            "raise the rate / target_tokens or shorten the question"
        )


def sentence_priority(
    sent_rel: np.ndarray, ctx_rel: np.ndarray, token_mean: np.ndarray, cfg: AllocationConfig
) -> np.ndarray:
    """(n_sent,) priority: relevance (sentence cosine mixed with its context's) blended with
    the sentence's mean token score, each Z-scored over the prompt."""
    rel = (1.0 - cfg.context_weight) * np.asarray(sent_rel) + cfg.context_weight * np.asarray(ctx_rel)
    return (1.0 - cfg.token_blend) * zscore(rel) + cfg.token_blend * zscore(token_mean)


@dataclass(frozen=True)
class ContextRelevance:
    """What the allocator needs of one context.

    Attributes:
        words: the context's words.
        score: (n_words,) token-level selection score (keep-prob + outlier term).
        word_sent: (n_words,) sentence index of each word (non-decreasing, 0-based).
        sent_emb: (n_sent, dim) unit sentence embeddings.
        ctx_emb: (dim,) unit embedding of the whole context.
        mentions: (n_words,) 1.0 where the word is a question term.
        head: the context's title, lower-cased words joined by single spaces ("": none;
            :func:`context_head`).
        term_ids: (n_words,) int index of the question term each word is, -1 for none (None:
            not computed; the ``lexical`` relevance then uses ``mentions`` as one term).
    """

    words: Words
    score: np.ndarray
    word_sent: np.ndarray
    sent_emb: np.ndarray
    ctx_emb: np.ndarray
    mentions: np.ndarray
    head: str = ""
    term_ids: np.ndarray | None = None

    @property
    def n_sent(self) -> int:
        return int(self.sent_emb.shape[0])

    def sentence_text(self, s: int) -> str:
        """Sentence ``s`` lower-cased, words joined by single spaces, with a space either side."""
        lo, hi = np.searchsorted(self.word_sent, [s, s + 1])
        w, t = self.words, self.words.text
        spans = zip(w.starts[lo:hi].tolist(), w.ends[lo:hi].tolist(), strict=True)
        return " " + " ".join(t[a:b] for a, b in spans).lower() + " "


_HEAD_WORDS = 16  # a title lies within the context's first words


def context_head(words: Words) -> str:
    """The entity a context is about, lower-cased ("" if none): its title, when it starts
    "Title: ..." (as retrieval corpora write passages) or with a Markdown heading line.

    Only titles: a leading name of an untitled paragraph ("Warsaw is ...") was measured too and
    pulled up paragraphs of the question's own topic (reports/question_survival.json).
    """
    k = min(len(words), _HEAD_WORDS)
    if k == 0:
        return ""
    first = Words(words.text, words.starts[:k], words.ends[:k],
                  None if words.breaks is None else words.breaks[:k])
    toks = first.tolist()
    nl = first.newline_before()
    line_end = int(np.argmax(nl[1:])) + 1 if nl[1:].any() else k  # first line: words [0, line_end)
    if toks[0] == "#":  # "# Title" / "## Title"
        title = [t for t in toks[:line_end] if t != "#"]
    elif ":" in toks[:line_end]:
        title = toks[: toks.index(":")]
    else:
        return ""
    if len(title) > 2 and title[-1] == ")" and "(" in title:  # "Tom Hewitt (actor)" -> "Tom Hewitt"
        title = title[: len(title) - 1 - title[::-1].index("(")]
    head = " ".join(title).lower()
    named = any(any(ch.isalnum() for ch in t) and t not in FUNCTION_WORDS for t in head.split())
    return head if len(head) >= 3 and named else ""  # "The: ..." names nothing


def entity_links(contexts: Sequence[ContextRelevance], rel: np.ndarray, top: int) -> np.ndarray:
    """(n_contexts,) for each context, the highest relevance among the ``top`` most relevant
    sentences of *other* contexts that name its head entity (0 where none does)."""
    n_sent = [c.n_sent for c in contexts]
    ctx_of = np.repeat(np.arange(len(contexts)), n_sent)
    bounds = np.cumsum([0, *n_sent])
    heads = [(j, f" {c.head} ") for j, c in enumerate(contexts) if c.head]
    link = np.zeros(len(contexts))
    if not heads:
        return link
    for s in np.argsort(-rel, kind="stable")[:top].tolist():
        ci = int(ctx_of[s])
        text = contexts[ci].sentence_text(s - int(bounds[ci]))
        for j, h in heads:
            if j != ci and h in text:
                link[j] = max(link[j], float(rel[s]))
    return link


def relevance(
    contexts: Sequence[ContextRelevance], q_emb: np.ndarray, cfg: AllocationConfig | float
) -> tuple[np.ndarray, np.ndarray]:
    """(n_sent_total,) sentence and (n_contexts,) context relevance to the question."""
    dim = q_emb.shape[0]
    sents = [c.sent_emb.reshape(-1, dim) for c in contexts]
    ctx = np.stack([c.ctx_emb for c in contexts]) if contexts else np.zeros((0, dim))
    if not isinstance(cfg, AllocationConfig):  # the older signature: a feedback weight
        cfg = AllocationConfig(feedback=float(cfg))
    rel, ctx_rel = sentence_relevance(sents, ctx, q_emb, cfg)
    n = np.asarray([c.n_sent for c in contexts], dtype=np.int64)  # (n_contexts,)
    first = (np.cumsum(n) - n)[n > 0]  # (n_nonempty,) index of each context's first sentence
    if cfg.lexical > 0 and rel.size:
        rel = rel + cfg.lexical * term_overlap(contexts)
    if cfg.window > 0 and rel.size > 1:
        prev = np.r_[-np.inf, rel[:-1]]  # (n_sent_total,) the previous sentence's relevance
        prev[first] = -np.inf  # a context's first sentence has no previous one in its context
        rel = np.maximum(rel, cfg.window * prev)
    if cfg.link > 0 and len(contexts) > 1:
        link = entity_links(contexts, rel, cfg.link_top)  # (n_contexts,)
        rel = rel + cfg.link * np.repeat(link, n)
    if cfg.lead > 0 and rel.size:
        best = np.maximum.reduceat(rel, first)  # (n_nonempty,) best relevance per context
        rel[first] = np.maximum(rel[first], cfg.lead * best)
    return rel, ctx_rel


def sentence_relevance(
    sent_emb: Sequence[np.ndarray], ctx_emb: np.ndarray, q_emb: np.ndarray, cfg: AllocationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(n_sent_total,) sentence and (n_contexts,) context relevance from per-context (n_sent, dim)
    sentence and (n_contexts, dim) context unit embeddings (feedback and second hop applied)."""
    dim = q_emb.shape[0]
    sents = np.concatenate([np.asarray(e).reshape(-1, dim) for e in sent_emb]) if len(sent_emb) else np.zeros((0, dim))
    q = q_emb
    if cfg.feedback > 0 and sents.shape[0] > 1:
        top = sents[int(np.argmax(sents @ q))]
        q = q + cfg.feedback * top
        q = q / max(float(np.linalg.norm(q)), _EPS)
    rel = sents @ q  # (n_sent,)
    if cfg.hop > 0 and sents.shape[0] > 1:
        ctx_of = np.repeat(np.arange(len(sent_emb)), [np.asarray(e).reshape(-1, dim).shape[0] for e in sent_emb])
        rel = second_hop(sents, rel, ctx_of, hop=cfg.hop, top=cfg.hop_top)
    return rel, ctx_emb @ q


def second_hop(sents: np.ndarray, rel: np.ndarray, ctx_of: np.ndarray, *, hop: float, top: int) -> np.ndarray:
    """(n_sent,) max of the question relevance and ``hop`` x the best cosine to the ``top``
    highest-ranked sentences of other contexts (the bridge entity's paragraph is similar to
    the sentence that names it, not to the question)."""
    seeds = np.argsort(-rel, kind="stable")[:top]
    sim = sents @ sents[seeds].T  # (n_sent, top)
    sim[ctx_of[:, None] == ctx_of[seeds][None, :]] = -1.0  # same context: no second hop
    return np.maximum(rel, hop * sim.max(axis=1))


def allocate(
    contexts: Sequence[ContextRelevance],
    word_costs: Sequence[np.ndarray],
    target: float,
    q_emb: np.ndarray,
    cfg: AllocationConfig,
    *,
    eligible: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Per context, (n_words,) question-aware selection scores (token score + sentence bonus).

    ``eligible``: (n_sent_total,) bool, the sentences the token classifier scored
    (coarse-to-fine); the others get no bonus and take no part in the priority statistics.
    """
    n_sent = [c.n_sent for c in contexts]
    if sum(n_sent) == 0:
        return [c.score.astype(np.float64) for c in contexts]
    ctx_of = np.repeat(np.arange(len(contexts)), n_sent)
    sent_rel, ctx_rel = relevance(contexts, q_emb, cfg)
    stats = [sentence_stats(c.word_sent, c.score, wc, ns)
             for c, wc, ns in zip(contexts, word_costs, n_sent, strict=True)]
    means, costs = [m for m, _ in stats], [s for _, s in stats]
    ok = np.ones(sum(n_sent), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    pri = np.full(ok.shape[0], -np.inf)
    pri[ok] = sentence_priority(sent_rel[ok], ctx_rel[ctx_of][ok], np.concatenate(means)[ok], cfg)
    first = np.zeros(pri.shape[0], dtype=bool)
    if cfg.min_contexts > 0:
        top_ctx = np.argsort(-ctx_rel, kind="stable")[: cfg.min_contexts]
        for ci in top_ctx.tolist():
            idx = np.flatnonzero((ctx_of == ci) & ok)
            if idx.size:
                first[idx[np.argmax(pri[idx])]] = True
    bonus = sentence_bonus(pri, np.concatenate(costs), target, spread=cfg.spread, first=first)
    bonus[~ok] = 0.0
    out, k = [], 0
    for c, ns in zip(contexts, n_sent, strict=True):
        b = bonus[k : k + ns]
        k += ns
        out.append(c.score.astype(np.float64) + cfg.term_weight * c.mentions
                   + cfg.relevance_weight * b[c.word_sent])
    return out


def candidate_sentences(rel: np.ndarray, cost: np.ndarray, budget: float) -> np.ndarray:
    """(n_sent,) bool: sentences by falling relevance while the tokens before them are under
    ``budget`` (the coarse stage's candidates for the token classifier)."""
    order = np.argsort(-np.asarray(rel, dtype=np.float64), kind="stable")
    c = np.asarray(cost, dtype=np.float64)[order]
    out = np.zeros(order.shape[0], dtype=bool)
    out[order[(np.cumsum(c) - c) < budget]] = True
    return out


def context_order(ctx_rel: Sequence[float], order: Order) -> list[int]:
    """Output order of the contexts (indices)."""
    if order == "original":
        return list(range(len(ctx_rel)))
    return np.argsort(-np.asarray(ctx_rel, dtype=np.float64), kind="stable").tolist()


# The costs and force-token marks are the budget policy's own (one definition, in selection).
word_costs = sel.word_costs


def forced_words(words: Words, force_tokens: Sequence[str]) -> np.ndarray:
    """(n_words,) bool: words overlapping an occurrence of any (non-blank) force token."""
    return sel.forced_words(words, list(force_tokens))


def select_exact(
    words: Sequence[Words],
    scores: Sequence[np.ndarray],
    forced: Sequence[np.ndarray],
    costs: Sequence[np.ndarray],
    target: float,
    count: TokenCounter,
    *,
    units: Sequence[str] = UNIT_RULES,
    unit_pool: str = "mean",
    keep_newlines: bool = False,
) -> list[np.ndarray]:
    """Per context (n_words,) keep masks whose recounted total is the closest to ``target``."""
    if not words:
        return []
    return sel.select_contexts_global(
        words, scores, forced, costs, target, count=count, units=units, unit_pool=unit_pool,
        keep_newlines=keep_newlines,
    )
