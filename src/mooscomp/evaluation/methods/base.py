"""What every compression method shares: the :class:`Method` protocol, the context joining, the
build context handed to registry builders, and the cl100k budget helpers.

Budgets are in cl100k tokens of the joined contexts, like LLMLingua-2's ``rate``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mooscomp.evaluation.tasks import EvalItem

CONTEXT_SEP = "\n\n"


@runtime_checkable
class Method(Protocol):
    """``names``: the method names this object produces. ``compress_many`` returns, for every
    name, one list per rate (in the order given) of compressed texts (one per item)."""

    names: tuple[str, ...]

    def compress_many(
        self, items: Sequence[EvalItem], rates: Sequence[float]
    ) -> dict[str, list[list[str]]]: ...


@dataclass(frozen=True, kw_only=True)
class MethodOptions:
    """What registry builders may use; a method whose inputs are missing is not built.

    Attributes:
        mooscomp_model: mooscomp model directory ("default" = the shipped model; "" = none).
        llmlingua2_style_model: a beta = 0 model directory ("" = none): ``llmlingua2_style``
            and, exported to a Hugging Face folder, ``llmlingua_pkg``.
        compress_device: device of the compressors.
        lm_device: device of a separately loaded Selective-Context LM.
        lm_dtype: its dtype (None = the reader's rule: bf16 on CUDA, fp32 on CPU).
        work_dir: folder for exported models (``llmlingua_pkg``).
        seed: seed of the seeded methods (``random``).
        sc_lm: Selective-Context LM: "reader" (the reader LLM), a model folder, or "" (none).
        sc_max_len: Selective-Context window in LM tokens.
        sc_batch: Selective-Context windows per forward.
        longllmlingua_lm: causal LM folder of ``longllmlingua_pkg`` ("" = none; it runs only
            under transformers 4.x, see :mod:`.longllmlingua`).
    """

    mooscomp_model: str = ""
    llmlingua2_style_model: str = ""
    compress_device: str = "cpu"
    lm_device: str = "cpu"
    lm_dtype: str | None = None
    work_dir: Path = Path("mooscomp-eval")
    seed: int = 0
    sc_lm: str = "reader"
    sc_max_len: int = 1024
    sc_batch: int = 16
    longllmlingua_lm: str = ""


@dataclass
class BuildContext:
    """Handed to every builder: the wanted names, the options, the reader (or None), a cache of
    loaded objects that builders share, and ``notes`` (what was built, for the report)."""

    wanted: frozenset[str]
    options: MethodOptions
    reader: Any | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


def joined(item: EvalItem) -> str:
    return CONTEXT_SEP.join(item.contexts)


def cl100k() -> Any:
    from mooscomp.counting import cl100k_encoding

    return cl100k_encoding()


def token_costs(texts: Sequence[str]) -> np.ndarray:
    """(len(texts),) int64 cl100k token counts."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    enc = cl100k()
    return np.fromiter(
        (len(t) for t in enc.encode_ordinary_batch(list(texts))), np.int64, len(texts)
    )


def keep_top(values: np.ndarray, costs: np.ndarray, budget: float) -> np.ndarray:
    """Mask keeping the highest-valued units until their cost reaches ``budget`` (stable ties:
    earlier units first). Equivalent to a token-weighted percentile threshold."""
    order = np.lexsort((np.arange(values.size), -values))
    cum = np.cumsum(costs[order])
    n_keep = int(np.searchsorted(cum, budget, side="left")) + 1 if values.size else 0
    keep = np.zeros(values.size, dtype=bool)
    keep[order[: min(n_keep, values.size)]] = True
    return keep


_WORD_RE = re.compile(r"\S+")


def words_with_gaps(text: str) -> tuple[list[str], list[str]]:
    """Whitespace-separated words and the gap before each."""
    words, gaps, last = [], [], 0
    for m in _WORD_RE.finditer(text):
        gaps.append(text[last : m.start()])
        words.append(m.group())
        last = m.end()
    return words, gaps


def rejoin(words: Sequence[str], gaps: Sequence[str], keep: np.ndarray) -> str:
    """Kept words joined by a space, or a newline where the original gap held one."""
    parts: list[str] = []
    for i in np.flatnonzero(keep).tolist():
        sep = "\n" if "\n" in gaps[i] else " "
        parts.append((sep if parts else "") + words[i])
    return "".join(parts)


def select_words(
    items: Sequence[EvalItem], rates: Sequence[float], value_fn: Any
) -> list[list[str]]:
    """Word-level baselines: ``value_fn(item, words, rate)`` -> (n_words,) values; per rate, keep
    the highest-valued words until ``rate`` of the joined context's cl100k tokens are used."""
    out: list[list[str]] = [[] for _ in rates]
    for it in items:
        text = joined(it)
        words, gaps = words_with_gaps(text)
        costs = token_costs([(" " + w) for w in words])
        total = float(token_costs([text])[0])
        for ri, r in enumerate(rates):
            values = value_fn(it, words, r)
            keep = keep_top(values, costs, r * total) if words else np.zeros(0, bool)
            out[ri].append(rejoin(words, gaps, keep))
    return out
