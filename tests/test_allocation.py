"""Budget allocator (mooscomp.allocation) and the question-aware adapter (mooscomp.question)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from mooscomp.alignment import segment_words
from mooscomp.allocation import (
    AllocationConfig,
    ContextRelevance,
    allocate,
    candidate_sentences,
    check_question,
    check_question_budget,
    context_head,
    context_order,
    entity_links,
    relevance,
    second_hop,
    select_exact,
    sentence_bonus,
    sentence_relevance,
    term_overlap,
    word_costs,
)
from mooscomp.counting import cl100k_count
from mooscomp.fine import candidates as fine_candidates
from mooscomp.question import QuestionCompressor
from mooscomp.relevance import SentenceEncoder
from mooscomp.selection import term_ids


@pytest.mark.parametrize(
    ("kw", "err"),
    [({"relevance_weight": -1.0}, ValueError), ({"spread": 0.0}, ValueError), ({"token_blend": 1.5}, ValueError),
     ({"min_contexts": -1}, ValueError), ({"order": "random"}, ValueError), ({"spread": "1"}, TypeError),
     ({"min_contexts": 1.5}, TypeError), ({"feedback": float("nan")}, ValueError),
     ({"link": -0.1}, ValueError), ({"link_top": 0}, ValueError), ({"lexical": -1.0}, ValueError),
     ({"lexical": "0.2"}, TypeError),
     ({"window": 1.5}, ValueError)],
)
def test_config_is_validated(kw, err):
    with pytest.raises(err):
        AllocationConfig(**kw)


def test_question_checks():
    assert check_question(None) is None
    assert check_question("  \n\t") is None
    assert check_question("Who?") == "Who?"
    with pytest.raises(TypeError, match="question must be a str"):
        check_question(42)
    with pytest.raises(ValueError, match="more than the budget"):
        check_question_budget("why " * 50, 10, cl100k_count)
    check_question_budget("why?", 10, cl100k_count)


def test_sentence_bonus_falls_linearly_with_tokens_before():
    pri = np.asarray([0.1, 0.9, 0.5, -1.0])
    cost = np.asarray([10.0, 10.0, 10.0, 10.0])
    b = sentence_bonus(pri, cost, 20.0, spread=1.0, first=np.zeros(4, bool))
    np.testing.assert_allclose(b, [0.0, 1.0, 0.5, 0.0])
    first = np.asarray([False, False, False, True])
    b = sentence_bonus(pri, cost, 20.0, spread=1.0, first=first)
    np.testing.assert_allclose(b, [0.0, 0.5, 0.0, 1.0])


def _context(text: str, sent_vecs: list[list[float]]) -> ContextRelevance:
    words = segment_words(text)
    # one sentence per "." (test texts are simple)
    ends = np.cumsum([w == "." for w in words.tolist()])
    ws = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    emb = np.asarray(sent_vecs, dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    score = np.full(len(words), 0.5)
    return ContextRelevance(words, score, ws, emb, emb.mean(0) / np.linalg.norm(emb.mean(0)),
                            np.zeros(len(words)))


CTXS = [
    ("Alpha beta gamma delta. Epsilon zeta eta theta.", [[1, 0], [0, 1]]),
    ("Iota kappa lambda mu. Nu xi omicron pi.", [[0.2, 1], [0.9, 0.1]]),
]


def test_relevant_sentences_are_kept_whole_with_a_large_weight():
    ctxs = [_context(t, v) for t, v in CTXS]
    costs = [word_costs(c.words, cl100k_count) for c in ctxs]
    q = np.asarray([1.0, 0.0], dtype=np.float32)
    cfg = AllocationConfig(relevance_weight=10.0, spread=1.0, token_blend=0.0, context_weight=0.0)
    target = 11.0
    scores = allocate(ctxs, costs, target, q, cfg)
    keeps = select_exact([c.words for c in ctxs], scores, [np.zeros(len(c.words), bool) for c in ctxs],
                         costs, target, cl100k_count)
    kept = [" ".join(np.asarray(c.words.tolist())[k]) for c, k in zip(ctxs, keeps, strict=True)]
    assert kept[0] == "Alpha beta gamma delta ."
    assert kept[1].startswith("Nu xi omicron")


def test_zero_weight_is_the_token_selection():
    ctxs = [_context(t, v) for t, v in CTXS]
    costs = [word_costs(c.words, cl100k_count) for c in ctxs]
    scores = allocate(ctxs, costs, 8.0, np.asarray([1.0, 0.0]), AllocationConfig(relevance_weight=0.0))
    for s, c in zip(scores, ctxs, strict=True):
        np.testing.assert_array_equal(s, c.score)


def test_min_contexts_and_order():
    ctxs = [_context(t, v) for t, v in CTXS]
    costs = [word_costs(c.words, cl100k_count) for c in ctxs]
    q = np.asarray([1.0, 0.0], dtype=np.float32)
    cfg = AllocationConfig(relevance_weight=10.0, spread=0.5, token_blend=0.0, min_contexts=2)
    scores = allocate(ctxs, costs, 12.0, q, cfg)
    assert all(s.max() > 5 for s in scores)  # the best sentence of both contexts ranks first
    assert context_order([0.1, 0.9, 0.5], "relevance") == [1, 2, 0]
    assert context_order([0.1, 0.9, 0.5], "original") == [0, 1, 2]


@pytest.fixture(scope="module")
def qc(_tiny_compressor, wordpiece_tokenizer):
    comp = copy.deepcopy(_tiny_compressor)
    base = copy.deepcopy(comp.model.encoder)
    with torch.no_grad():
        for p in comp.model.encoder.encoder.layer[1].parameters():
            p.add_(0.05)
    return QuestionCompressor(comp, sentence_encoder=SentenceEncoder(base, wordpiece_tokenizer), backend="torch")


DOCS = [
    "The Normans settled in Normandy in the tenth century. Rollo was their first leader. "
    "They spoke a Romance language.",
    "Mount Everest is the highest mountain. It lies in the Himalayas. Climbers reach it from Nepal.",
    "Café crème über naïve façade — 東京 is the capital of Japan. Ünïcödé is fine.",
]


@pytest.mark.parametrize("rate", [0.5, 0.33, 0.25])
def test_budget_is_exact_within_two_percent(qc, rate):
    res = qc.compress(DOCS * 4, rate=rate, question="Who led the Normans?")
    assert abs(res.compressed_tokens - rate * res.origin_tokens) <= max(2, 0.02 * rate * res.origin_tokens)
    assert res.compressed_tokens == sum(cl100k_count(t) for t in res.contexts)


def test_target_tokens_and_relevance_order(qc):
    res = qc.compress(DOCS, target_tokens=20, question="Where is Everest?")
    assert abs(res.compressed_tokens - 20) <= 2
    a = qc.analyse(DOCS, "Where is Everest?")
    out = qc.select(a, 20, allocation=AllocationConfig(order="relevance"))
    assert sorted(out.contexts) == sorted(qc.select(a, 20).contexts)


def test_bad_questions(qc):
    blank = qc.compress(DOCS, rate=0.5, question="   ")
    assert blank.text == qc.comp.compress(DOCS, rate=0.5).text  # whitespace = no question
    with pytest.raises(TypeError):
        qc.compress(DOCS, rate=0.5, question=["who"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than the budget"):
        qc.compress(DOCS, target_tokens=3, question="Who were the Normans and where did they settle?")
    with pytest.raises(ValueError, match="exactly one"):
        qc.compress(DOCS, question="who?")


def test_long_unpunctuated_sentence_and_many_contexts(qc):
    long = " ".join(f"word{i % 97}" for i in range(10_000))
    res = qc.compress(long, rate=0.25, question="word5?")
    assert abs(res.compressed_tokens - 0.25 * res.origin_tokens) <= 0.02 * 0.25 * res.origin_tokens
    many = [f"Doc {i} says item {i} costs {i} euros." for i in range(1000)]
    res = qc.compress(many, rate=0.2, question="What does item 7 cost?")
    assert len(res.contexts) == 1000
    assert abs(res.compressed_tokens - 0.2 * res.origin_tokens) <= 0.02 * 0.2 * res.origin_tokens


def test_registry_question_methods(qc):
    from mooscomp.evaluation.methods import REGISTRY
    from mooscomp.evaluation.methods.question import QuestionMethod
    from mooscomp.evaluation.tasks import EvalItem

    assert REGISTRY["mooscomp_question"] == REGISTRY["sentence_rank"] == "question:build"
    items = [EvalItem(task="squad", item_id="squad/x", contexts=tuple(DOCS), question="Who led the Normans?",
                      answers=("Rollo",), kind="qa"),
             EvalItem(task="squad", item_id="squad/y", contexts=tuple(DOCS), question="", answers=("x",), kind="qa")]
    out = QuestionMethod(qc, ["mooscomp_question", "sentence_rank"]).compress_many(items, [0.5, 0.25])
    assert set(out) == {"mooscomp_question", "sentence_rank"}
    assert all(len(per_rate) == 2 for per_rate in out["sentence_rank"])
    sents = {s.strip() for d in DOCS for s in d.replace(". ", ".|").split("|")}
    for text in out["sentence_rank"][1][0].split("\n\n"):
        assert text.replace(". ", ".|").split("|")[0].strip() in sents  # whole sentences only
    with pytest.raises(ValueError):
        QuestionMethod(qc, ["nope"])
    # the relevance-ordered variant keeps the same words, contexts best first
    both = QuestionMethod(qc, ["mooscomp_question", "mooscomp_question_relevance"]).compress_many(items[:1], [0.25])
    plain, by_rel = both["mooscomp_question"][0][0], both["mooscomp_question_relevance"][0][0]
    assert sorted(plain.split()) == sorted(by_rel.split())
    a = qc.analyse(list(DOCS), items[0].question)
    assert by_rel == qc.select(a, 0.25 * a.origin, allocation=AllocationConfig(order="relevance")).text
    # any named allocations (the reader-chosen grid of benchmarks/readable_focus.py --mode question)
    grid = QuestionMethod(qc, ["r"], allocations={"r": AllocationConfig(order="relevance")})
    assert grid.compress_many(items[:1], [0.25]) == {"r": [[by_rel]]}
    with pytest.raises(ValueError):
        QuestionMethod(qc, ["mooscomp_question"], allocations={"r": AllocationConfig()})


def test_candidate_sentences_cover_the_budget_by_relevance():
    rel = np.asarray([0.1, 0.9, 0.5, 0.7])
    cost = np.asarray([10.0, 10.0, 10.0, 10.0])
    np.testing.assert_array_equal(candidate_sentences(rel, cost, 15.0), [False, True, False, True])
    np.testing.assert_array_equal(candidate_sentences(rel, cost, 10.0), [False, True, False, False])
    assert candidate_sentences(rel, cost, 1e9).all()


def test_second_hop_reaches_the_bridge_sentence():
    sents = np.asarray([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    ctx_of = np.asarray([0, 0, 1, 1])
    rel = sents @ np.asarray([1.0, 0.0, 0.0])  # the question is sentence 0
    out = second_hop(sents, rel, ctx_of, hop=0.9, top=1)  # the seed: sentence 0
    np.testing.assert_allclose(out[[0, 1]], rel[[0, 1]])  # the seed's own context: unchanged
    assert out[2] == pytest.approx(0.0) and out[3] == pytest.approx(0.0)  # unlike the seed
    seeds = second_hop(sents, rel, ctx_of, hop=0.9, top=2)  # seeds 0 and 1: sentence 3 via seed 1
    assert seeds[3] == pytest.approx(0.9 * 0.8)
    cfg = AllocationConfig(hop=0.9, hop_top=2)
    got, _ = sentence_relevance([sents[:2], sents[2:]], np.eye(3)[:2], np.asarray([1.0, 0.0, 0.0]), cfg)
    np.testing.assert_allclose(got, seeds)


@pytest.mark.parametrize(
    ("text", "head"),
    [("Wes Unseld: Westley Sissel Unseld (born 1946) is a retired player.", "wes unseld"),
     ("## Magic Kingdom\nA park in Florida: it opened in 1971.", "magic kingdom"),
     ("Tom Hewitt (actor): Tom Hewitt (born 1957) is an actor.", "tom hewitt"),  # the text's name
     ("The Normans were the people who gave their name to Normandy.", ""),  # untitled
     ("It was a dark night.", ""), ("", ""), ("   ", ""), ("a: b", ""), (": b", ""),
     ("The: a title of function words only names nothing", ""), ("--- : x", ""),
     ("Note\nTitle: text", "")],  # a colon after a line break makes no title
)
def test_context_head(text, head):
    assert context_head(segment_words(text)) == head


def _headed(text: str, vecs: list[list[float]]) -> ContextRelevance:
    c = _context(text, vecs)
    return ContextRelevance(c.words, c.score, c.word_sent, c.sent_emb, c.ctx_emb, c.mentions,
                            context_head(c.words))


def test_entity_link_pulls_up_the_bridge_context():
    # the question matches ctx 0's first sentence, which names ctx 2's head; ctx 1 is unrelated
    ctxs = [_headed("Night of Joy: it was held at Magic Kingdom. It is a festival.", [[1, 0], [0.5, 0.5]]),
            _headed("Epcot: a park. It opened in 1982.", [[0.3, 1], [0.1, 1]]),
            _headed("Magic Kingdom: a park. It has nine venues.", [[0.2, 1], [0.1, 1]])]
    q = np.asarray([1.0, 0.0])
    base, _ = sentence_relevance([c.sent_emb for c in ctxs], np.stack([c.ctx_emb for c in ctxs]), q,
                                 AllocationConfig())
    link = entity_links(ctxs, base, top=1)
    np.testing.assert_allclose(link, [0.0, 0.0, base[0]])
    assert entity_links(ctxs, base, top=6)[0] == 0.0  # a context never links itself
    cfg = AllocationConfig(link=0.5, link_top=1, window=0.0)
    got, _ = sentence_relevance([c.sent_emb for c in ctxs], np.stack([c.ctx_emb for c in ctxs]), q, cfg)
    np.testing.assert_allclose(got, base)  # embeddings alone: no links
    from mooscomp.allocation import relevance

    linked, _ = relevance(ctxs, q, cfg)
    np.testing.assert_allclose(linked[:4], base[:4])
    np.testing.assert_allclose(linked[4:], base[4:] + 0.5 * base[0])
    # the allocator's bonus follows: ctx 2 now outranks ctx 1, which is closer to the question
    costs = [word_costs(c.words, cl100k_count) for c in ctxs]
    off = allocate(ctxs, costs, 12.0, q, AllocationConfig(relevance_weight=10.0, spread=2.0, link=0.0))
    on = allocate(ctxs, costs, 12.0, q, AllocationConfig(relevance_weight=10.0, spread=2.0, link=0.5, link_top=1))
    assert off[1].max() > off[2].max() and on[2].max() > on[1].max()


def test_lead_raises_each_context_first_sentence_to_a_share_of_its_best():
    from mooscomp.allocation import relevance

    ctxs = [_context("Wes Unseld: a player. He was inducted in 1988.", [[0.1, 1], [1, 0.1]]),
            _context("Other: nothing here. Really.", [[0.2, 1], [0.3, 1]]),
            _context("Lead wins. Second.", [[1, 0], [0.5, 0.5]])]
    q = np.asarray([1.0, 0.0])
    off, _ = relevance(ctxs, q, AllocationConfig(link=0.0, lead=0.0))
    on, _ = relevance(ctxs, q, AllocationConfig(link=0.0, lead=0.8))
    first = [0, 2, 4]
    for f in first:
        np.testing.assert_allclose(on[f], max(off[f], 0.8 * off[f : f + 2].max()))
    np.testing.assert_allclose(np.delete(on, first), np.delete(off, first))  # other sentences unchanged
    assert on[0] > off[0] and on[4] == off[4]  # a first sentence that is already the best stays
    with pytest.raises(ValueError, match="lead"):
        AllocationConfig(lead=1.5)


def test_ineligible_sentences_get_no_bonus():
    ctxs = [_context(t, v) for t, v in CTXS]
    costs = [word_costs(c.words, cl100k_count) for c in ctxs]
    q = np.asarray([1.0, 0.0], dtype=np.float32)
    cfg = AllocationConfig(relevance_weight=10.0, spread=4.0)
    eligible = np.asarray([False, True, True, False])  # the best sentence (0) was not scored
    scores = allocate(ctxs, costs, 8.0, q, cfg, eligible=eligible)
    np.testing.assert_array_equal(scores[0][ctxs[0].word_sent == 0], ctxs[0].score[ctxs[0].word_sent == 0])
    assert scores[0][ctxs[0].word_sent == 1].min() > 1.0 and scores[1][ctxs[1].word_sent == 0].min() > 1.0


def test_fine_stage_scores_only_the_candidates(qc, monkeypatch):
    seen = []
    orig = qc.comp.score_chunks

    def spy(chunks, config=None):
        seen.append(sum(len(c) for c in chunks))
        return orig(chunks, config)

    monkeypatch.setattr(qc.comp, "score_chunks", spy)
    docs = DOCS * 4
    a = qc.analyse(docs, "Who led the Normans?")
    assert not a.scored and seen == []  # relevance only: no token classifier yet
    total = sum(p.n_tokens for p in a.prepared)
    res = qc.select(a, 0.1 * a.origin)
    assert 0 < seen[-1] < 0.5 * total  # the fine forward saw the candidates only
    small = qc.select(a, 0.1 * a.origin, allocation=AllocationConfig(fine_cover=1.0))
    assert seen[-1] < 0.3 * total
    assert abs(small.compressed_tokens - 0.1 * a.origin) <= max(2, 0.02 * 0.1 * a.origin)
    # words outside the candidates are never kept
    cand = fine_candidates(a, 0.1 * a.origin, AllocationConfig(fine_cover=1.0))
    bounds = np.cumsum([0] + [c.n_sent for c in a.contexts])
    for i, (c, d) in enumerate(zip(a.contexts, small.details, strict=True)):
        assert not d.kept[~cand[bounds[i] : bounds[i + 1]][c.word_sent]].any()
    assert res.compressed_tokens > 0


def test_full_cover_is_the_one_forward_path(qc):
    """Candidates covering everything: the same token scores as one forward over all chunks."""
    one = QuestionCompressor(qc.comp, sentence_encoder=qc.encoder, relevance="independent", backend="torch")
    docs, q = DOCS * 3, "Where is Everest?"
    a1, a2 = qc.analyse(docs, q), one.analyse(docs, q)
    for rate in (0.5, 0.25):
        full = AllocationConfig(fine_cover=1e6)
        r1 = qc.select(a1, rate * a1.origin, allocation=full)
        r2 = one.select(a2, rate * a2.origin, allocation=full)
        assert r1.contexts == r2.contexts
        for d1, d2 in zip(r1.details, r2.details, strict=True):
            np.testing.assert_allclose(d1.keep_prob, d2.keep_prob, atol=1e-5)


def _with_terms(text: str, vecs: list[list[float]], terms: frozenset[str]) -> ContextRelevance:
    c = _context(text, vecs)
    tid = term_ids(c.words, terms)
    return ContextRelevance(c.words, c.score, c.word_sent, c.sent_emb, c.ctx_emb, (tid >= 0).astype(float),
                            "", tid)


def test_term_overlap_weighs_rare_question_terms_more():
    terms = frozenset({"1962", "library"})  # "library" in 3 of 4 sentences, "1962" in one
    ctxs = [_with_terms("The library opened. The library closed. Built in 1962.", [[1, 0]] * 3, terms),
            _with_terms("A library card. Nothing here.", [[1, 0]] * 2, terms)]
    ov = term_overlap(ctxs)
    assert ov.shape == (5,)
    assert ov[4] == 0.0 and ov[2] > 0.5 > ov[0] > 0.0  # the rare term counts more
    np.testing.assert_allclose(ov[0], ov[1])
    assert ov.max() <= 1.0 + 1e-12
    # no question term anywhere, or no sentences: zeros, not NaN
    assert not term_overlap([_with_terms("Nothing here.", [[1, 0]], terms)]).any()
    assert term_overlap([]).shape == (0,)


def test_lexical_relevance_lifts_the_sentence_that_repeats_the_question():
    terms = frozenset({"unseld"})
    # both sentences are equally close to the question in embedding space; one names it
    ctxs = [_with_terms("Wes Unseld was born in 1946. He played centre.", [[1, 0], [1, 0]], terms)]
    q = np.asarray([1.0, 0.0])
    base, _ = relevance(ctxs, q, AllocationConfig(lead=0.0, link=0.0, lexical=0.0))
    lex, _ = relevance(ctxs, q, AllocationConfig(lead=0.0, link=0.0, lexical=0.3))
    np.testing.assert_allclose(base[0], base[1])
    np.testing.assert_allclose(lex - base, [0.3, 0.0])
    # without term ids (older callers), mentions count as one term
    legacy = [dataclasses.replace(ctxs[0], term_ids=None)]
    np.testing.assert_allclose(relevance(legacy, q, AllocationConfig(lead=0.0, link=0.0, lexical=0.3))[0], lex)


def test_window_carries_relevance_to_the_next_sentence_of_the_same_context():
    ctxs = [_context("Alpha beta. Gamma delta. Eps.", [[1, 0], [0, 1], [0, 1]]),
            _context("Zeta eta. Theta.", [[0, 1], [0.6, 0.8]])]
    q = np.asarray([1.0, 0.0])
    kw = {"lead": 0.0, "link": 0.0, "lexical": 0.0}
    base, _ = relevance(ctxs, q, AllocationConfig(**kw, window=0.0))
    win, _ = relevance(ctxs, q, AllocationConfig(**kw, window=0.5))
    np.testing.assert_allclose(base, [1, 0, 0, 0, 0.6], atol=1e-6)
    # the sentence after the relevant one gets half of it; no chain (the third keeps 0) and no
    # carry across contexts (context 1's first sentence keeps 0)
    np.testing.assert_allclose(win, [1, 0.5, 0, 0, 0.6], atol=1e-6)


def test_term_overlap_matches_a_dense_reference_and_scales_with_matches():
    from types import SimpleNamespace as NS

    rng = np.random.default_rng(0)
    for _ in range(30):
        ctxs, sets = [], []
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(1, 30))
            ws = np.unique(np.sort(rng.integers(0, int(rng.integers(1, 5)), n)), return_inverse=True)[1]
            t = np.where(rng.random(n) < 0.3, rng.integers(0, 6, n), -1)
            ctxs.append(NS(n_sent=int(ws.max()) + 1, word_sent=ws, term_ids=t, mentions=(t >= 0).astype(float)))
            sets += [set(t[(ws == s) & (t >= 0)].tolist()) for s in range(int(ws.max()) + 1)]
        df = {k: sum(k in st for st in sets) for k in set().union(*sets)}
        idf = {k: np.log1p((len(sets) - d + 0.5) / (d + 0.5)) for k, d in df.items()}
        want = [sum(idf[k] for k in st) / sum(idf.values()) if idf else 0.0 for st in sets]
        np.testing.assert_allclose(term_overlap(ctxs), want, atol=1e-12)
    # 100k sentences x 50k question terms: no dense (sentences x terms) matrix
    n = 2_000_000
    t = np.where(rng.random(n) < 0.01, rng.integers(0, 50_000, n), -1)
    big = NS(n_sent=100_000, word_sent=np.arange(n) // 20, term_ids=t, mentions=(t >= 0).astype(float))
    out = term_overlap([big])
    assert out.shape == (100_000,) and 0.0 <= out.min() and out.max() <= 1.0
