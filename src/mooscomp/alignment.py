"""Word segmentation, sub-token <-> word alignment and sentence-end chunking.

Words are defined once, by a tokenizer-independent rule (runs of letters/digits, single CJK
characters, or single other non-space characters), so labels, scores and outputs refer to the same
units whatever encoder is used. Sub-tokens are mapped to words through the tokenizer's character
offsets, never through model-specific prefixes such as ``##`` or ``▁``.

Scripts written without spaces (Chinese, Japanese) still get one word per character, but the
boundaries between their *dictionary* words are recorded as ``Words.breaks`` so the unit rules can
keep or drop "北京" whole instead of a whole sentence (a no-space run was one unit before). Breaks
come from ``rjieba`` (jieba's dictionary) when installed; without it every Han character is its
own unit. Only text mostly (>= 25% of its visible characters) in those scripts gets breaks: in
other text a short Han/kana run stays one unit, like a name, and English units are unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

# CJK ideographs, kana and hangul syllables are one word per character (no spaces in those scripts).
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{_CJK}]")
_WORD_RE = re.compile(r"[^\W_]+|\S")
_WORD_RE_CJK = re.compile(f"[{_CJK}]|(?:(?![{_CJK}])[^\\W_])+|\\S")
# Scripts without spaces between words whose dictionary words become unit boundaries (hangul is
# written with spaces between words, so it is left out): Han ideographs, hiragana, katakana.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_NOSPACE_RUN_RE = re.compile(f"[{_HAN}]+|[\u3041-\u309f]+|[\u30a0-\u30ff]+|[\u0e00-\u0e7f]+")
_HAN_OR_KANA_RE = re.compile(f"[{_HAN}\u3041-\u30ff\u0e00-\u0e7f]")
# Thai is written without spaces between words, and its vowel and tone marks are not "word"
# characters for ``re``: a Thai word is a character cluster (base + its combining marks).
_THAI_RE = re.compile("[\u0e00-\u0e7f]")
_THAI_CLUSTER = "[\u0e00-\u0e7f][\u0e31\u0e34-\u0e3a\u0e47-\u0e4e]*"
_WORD_RE_THAI = re.compile(f"{_THAI_CLUSTER}|(?:(?![\u0e00-\u0e7f])[^\\W_])+|\\S")
# Han, kana, CJK symbols and punctuation, full-width forms: no spaces are written between words
# there, so output joining must not invent one where words were dropped.
NOSPACE_CHAR_RE = re.compile(
    "[\u0e00-\u0e7f\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uff00-\uffef]"
)
# Share of non-space characters that must be Han/kana for dictionary-word units (see segment_words).
_NOSPACE_SHARE = 0.25

# Characters after which a sentence may end; a newline in the gap after a token also ends one.
DEFAULT_END_CHARS = ".!?\n"
# Tokenise long texts in blocks of about this many characters, each cut just before a space that
# precedes a word: the blocks go through the tokenizer's thread pool together (an 8k-token text
# tokenises in about half the time on two cores), and memory stays bounded. A text without such
# a space is cut only at _MAX_BLOCK_CHARS.
_BLOCK_CHARS = 8_192
_MAX_BLOCK_CHARS = 200_000
_CUT_RE = re.compile(r" (?=\S)")


@dataclass(frozen=True)
class Words:
    """A text and its words as character spans.

    Attributes:
        text: the original text.
        starts: (n_words,) int64 start offsets.
        ends: (n_words,) int64 end offsets (exclusive).
        breaks: (n_words,) bool or None: a word boundary without whitespace precedes the word
            (between dictionary words of a script written without spaces); None = none.
    """

    text: str
    starts: np.ndarray
    ends: np.ndarray
    breaks: np.ndarray | None = None  # (n_words,) bool: a dictionary-word boundary, no space

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def word(self, i: int) -> str:
        return self.text[int(self.starts[i]) : int(self.ends[i])]

    def tolist(self) -> list[str]:
        t = self.text
        return [t[s:e] for s, e in zip(self.starts.tolist(), self.ends.tolist(), strict=True)]

    def space_before(self) -> np.ndarray:
        """(n_words,) bool: whitespace, the text start or a no-space word boundary (``breaks``)
        precedes the word: the unit rules treat a dictionary-word boundary as a space."""
        n = len(self)
        out = np.ones(n, dtype=bool)
        if n > 1:
            out[1:] = self.starts[1:] > self.ends[:-1]
        if self.breaks is not None:
            out |= self.breaks
        return out

    def newline_before(self) -> np.ndarray:
        """(n_words,) bool: the gap before the word contains a newline."""
        n = len(self)
        out = np.zeros(n, dtype=bool)
        if n > 1:
            nl = _newline_prefix(self.text)
            # newlines in text[ends[i-1]:starts[i]]
            out[1:] = (nl[self.starts[1:]] - nl[self.ends[:-1]]) > 0
        return out


def _newline_prefix(text: str) -> np.ndarray:
    """(len(text)+1,) int: number of newlines in text[:k]."""
    cps = _codepoints(text)
    return np.concatenate([[0], np.cumsum(cps == 10)])


def _codepoints(text: str) -> np.ndarray:
    """(len(text),) uint32 code points, vectorised (utf-32 keeps one unit per character)."""
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


def segment_words(text: str) -> Words:
    """Split ``text`` into words: letter/digit runs, single CJK characters, single other symbols."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if _THAI_RE.search(text):  # Thai clusters; CJK in the same text stays in its letter runs
        pattern = _WORD_RE_THAI
    else:
        pattern = _WORD_RE_CJK if _CJK_RE.search(text) else _WORD_RE
    spans = [m.span() for m in pattern.finditer(text)]
    if not spans:
        empty = np.zeros(0, dtype=np.int64)
        return Words(text, empty, empty.copy())
    arr = np.asarray(spans, dtype=np.int64)  # (n_words, 2)
    starts, ends = arr[:, 0].copy(), arr[:, 1].copy()
    breaks = _nospace_breaks(text, starts) if _mostly_nospace(text) else None
    return Words(text, starts, ends, breaks)


def _mostly_nospace(text: str) -> bool:
    """At least ``_NOSPACE_SHARE`` of the non-space characters are Han or kana.

    In text of a spaced script a short Han/kana run is a quoted term or a name and stays one unit,
    as a name would; dictionary-word units are for text written mainly without spaces.
    """
    if not _HAN_OR_KANA_RE.search(text):
        return False
    cps = _codepoints(text)
    han = (cps >= 0x3400) & (cps <= 0x9FFF) & ~((cps >= 0x4DC0) & (cps <= 0x4DFF))
    kana = (cps >= 0x3041) & (cps <= 0x30FF)
    compat = (cps >= 0xF900) & (cps <= 0xFAFF)
    thai = (cps >= 0x0E00) & (cps <= 0x0E7F)
    visible = int((cps > 32).sum())
    return int((han | kana | compat | thai).sum()) >= _NOSPACE_SHARE * max(visible, 1)


def _dictionary_cuts(run: str) -> list[int]:
    """End offsets of the dictionary words of a Han run (rjieba), or of every character."""
    try:
        import rjieba
    except ImportError:
        return list(range(1, len(run) + 1))
    cuts, k = [], 0
    for w in rjieba.cut(run):
        k += len(w)
        cuts.append(k)
    return cuts if k == len(run) else list(range(1, len(run) + 1))


def _thai_cuts(run: str) -> list[int] | None:
    """End offsets of the dictionary words of a Thai run (pythainlp, when installed), else None."""
    try:
        from pythainlp.tokenize import word_tokenize
    except ImportError:
        return None
    cuts, k = [], 0
    for w in word_tokenize(run, keep_whitespace=False):
        k += len(w)
        cuts.append(k)
    return cuts if k == len(run) else None


def _nospace_breaks(text: str, starts: np.ndarray) -> np.ndarray:
    """(n_words,) bool: word boundaries inside and around Han/kana/Thai runs that have no space.

    Han runs are cut into dictionary words; a hiragana or katakana run is one word; a Thai run is
    cut into dictionary words (pythainlp) or, without a dictionary, at every character cluster;
    a change of script (Han | kana | Thai | Latin or digits) is a boundary too.
    """
    cut = np.zeros(len(text) + 1, dtype=bool)  # cut[k]: a word boundary at character offset k
    for m in _NOSPACE_RUN_RE.finditer(text):
        a, b = m.span()
        cut[a] = cut[b] = True
        if text[a] <= "\u0e7f":  # Thai
            thai = _thai_cuts(m.group())
            if thai is None:
                cut[a:b] = True  # every cluster (each a word of the segmenter) is a unit
            else:
                cut[[a + k for k in thai]] = True
        elif text[a] >= "\u3400" and not "\u3041" <= text[a] <= "\u30ff":
            for k in _dictionary_cuts(m.group()):
                cut[a + k] = True
    out = cut[starts]
    out[0] = False
    return out


@dataclass(frozen=True)
class Alignment:
    """Encoder tokens of one text, mapped to its words.

    Attributes:
        input_ids: (n_tokens,) int64 encoder token ids, no special tokens.
        token_word: (n_tokens,) int64 index of the word each token belongs to, -1 for none.
        sentence_end: (n_tokens,) bool, a sentence may end after this token.
        word_start: (n_tokens,) bool, this token starts a word (a safe cut point).
    """

    input_ids: np.ndarray
    token_word: np.ndarray
    sentence_end: np.ndarray
    word_start: np.ndarray

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def _blocks(text: str, block_chars: int) -> list[tuple[int, int]]:
    """Cut ``text`` into spans of about ``block_chars`` characters, each new span starting with
    the space before a word, so that every block tokenises as inside the whole text: WordPiece
    splits at whitespace, a SentencePiece space marker (``"▁word"``, with a marker prepended
    only to a block that does not start with one) and byte-level BPE (``" word"``) keep the
    space with the word. Without such a space the cut waits up to
    ``max(block_chars, _MAX_BLOCK_CHARS)`` characters."""
    spans: list[tuple[int, int]] = []
    st, n = 0, len(text)
    hard = max(block_chars, _MAX_BLOCK_CHARS)
    while st < n:
        ed = min(st + block_chars, n)
        if ed < n:
            cut = text.rfind(" ", st + 1, ed)
            while cut > st and text[cut + 1 : cut + 2].isspace():
                cut = text.rfind(" ", st + 1, cut)
            if cut <= st:  # none inside: the next one, within the hard bound
                m = _CUT_RE.search(text, ed, min(st + hard, n))
                cut = m.start() if m else min(st + hard, n)
            ed = cut
        spans.append((st, ed))
        st = ed
    return spans


def align(
    words: Words,
    tokenizer: Any,
    *,
    end_chars: str = DEFAULT_END_CHARS,
    block_chars: int = _BLOCK_CHARS,
) -> Alignment:
    """Tokenise ``words.text`` with a fast tokenizer and map every token to its word.

    A token belongs to the word containing its last character; tokens outside every word (e.g. a
    bare SentencePiece space marker) get -1 and still go through the encoder.
    """
    text = words.text
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("tokenizer must be a fast (Rust) tokenizer that returns offsets")
    if not text:
        z = np.zeros(0, dtype=np.int64)
        return Alignment(z, z.copy(), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    spans = _blocks(text, block_chars)
    enc = tokenizer(
        [text[s:e] for s, e in spans],
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )
    ids_parts, off_parts = [], []
    for (bs, _), ids, offs in zip(spans, enc["input_ids"], enc["offset_mapping"], strict=True):
        if not ids:
            continue
        ids_parts.append(np.asarray(ids, dtype=np.int64))
        off_parts.append(np.asarray(offs, dtype=np.int64).reshape(-1, 2) + bs)
    if not ids_parts:
        z = np.zeros(0, dtype=np.int64)
        return Alignment(z, z.copy(), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    input_ids = np.concatenate(ids_parts)
    offs = np.concatenate(off_parts)  # (n_tokens, 2)
    t_start, t_end = offs[:, 0], offs[:, 1]
    last = np.maximum(t_end - 1, t_start)
    n_words = len(words)
    if n_words:
        w = np.searchsorted(words.starts, last, side="right") - 1
        inside = (w >= 0) & (last < words.ends[np.clip(w, 0, n_words - 1)]) & (t_end > t_start)
        token_word = np.where(inside, w, -1)
    else:
        token_word = np.full(input_ids.shape[0], -1, dtype=np.int64)

    cps = _codepoints(text)
    end_set = np.asarray([ord(c) for c in end_chars if c != "\n"], dtype=np.uint32)
    last_cp = cps[np.clip(last, 0, len(cps) - 1)]
    # "3.5" or "U.S.A" must not end a sentence: the end character has to be followed by space
    # or by a closing quote/bracket ('... combined." According').
    next_cp = np.append(cps, np.uint32(32))[np.clip(t_end, 0, len(cps))]
    closers = np.asarray([ord(c) for c in " \t\n\r\"')]}\u00bb\u2019\u201d"], dtype=np.uint32)
    followed_ok = np.isin(next_cp, closers)
    sentence_end = np.isin(last_cp, end_set) & (t_end > t_start) & followed_ok
    if "\n" in end_chars:
        nl = np.concatenate([[0], np.cumsum(cps == 10)])
        nxt = np.append(t_start[1:], len(text))
        sentence_end |= (nl[nxt] - nl[t_end]) > 0
    prev_word = np.concatenate([[-2], token_word[:-1]])
    word_start = (token_word != prev_word) | (token_word < 0)
    return Alignment(input_ids, token_word.astype(np.int64), sentence_end, word_start)


def chunk_spans(alignment: Alignment, max_tokens: int) -> list[tuple[int, int]]:
    """Cut the token sequence into windows of at most ``max_tokens`` tokens.

    Each window ends at the last sentence end inside it; without one, at the last word start;
    without that (one enormous word), at the window edge.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    n = len(alignment)
    ends = np.flatnonzero(alignment.sentence_end) + 1  # candidate exclusive chunk ends
    starts = np.flatnonzero(alignment.word_start)  # candidate cut points (exclusive ends)
    spans: list[tuple[int, int]] = []
    st = 0
    while st < n:
        limit = st + max_tokens
        if limit >= n:
            spans.append((st, n))
            break
        j = int(np.searchsorted(ends, limit, side="right")) - 1
        if j >= 0 and ends[j] > st:
            ed = int(ends[j])
        else:
            k = int(np.searchsorted(starts, limit, side="right")) - 1
            ed = int(starts[k]) if k >= 0 and starts[k] > st else limit
        spans.append((st, ed))
        st = ed
    return spans


def nospace_joins(text: str, st: np.ndarray, ed: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """Gaps left by dropped words inside Chinese/Japanese text, where the original had no
    whitespace either: joined with nothing, so no space is invented between such characters."""
    out = np.zeros(gap.size, dtype=bool)
    if not NOSPACE_CHAR_RE.search(text):
        return out
    for i in np.flatnonzero(gap).tolist():
        a, b = int(ed[i - 1]), int(st[i])
        if any(c.isspace() for c in text[a:b]):
            continue
        out[i] = bool(NOSPACE_CHAR_RE.match(text[a - 1]) or NOSPACE_CHAR_RE.match(text[b]))
    return out
