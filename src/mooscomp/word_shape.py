"""Word-shape features: what an uncased encoder cannot see (issue 15 item 3).

The MiniLM backbone lower-cases its input, so "Stevens" and "stevens" reach it as the same
tokens. A model trained with word shapes adds a learned keep/drop logit per *shape id* (the bit
set of the features below, computed from the original words) to the encoder's head. Because the
head is linear, that term is an additive logit offset: inference applies it to the scored
keep-probabilities (:func:`apply_shape_delta`), so every forward backend (torch, ONNX) stays the
same graph and the shapes are computed once, here, for training and inference alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mooscomp.alignment import Words, _codepoints

# Bit order is part of the on-disk format: a model records the feature names it was trained with.
FEATURES = ("capitalised", "all_caps", "has_digit", "sentence_start", "punct")
_SENTENCE_END = frozenset(".!?…")


def check_features(features: Sequence[str]) -> tuple[str, ...]:
    """``features`` as a tuple in :data:`FEATURES` order; unknown or repeated names raise."""
    feats = tuple(features)
    unknown = [f for f in feats if f not in FEATURES]
    if unknown or len(set(feats)) != len(feats):
        raise ValueError(f"word-shape features must be distinct names from {FEATURES}, got {feats!r}")
    return tuple(f for f in FEATURES if f in feats)


def n_shape_ids(features: Sequence[str]) -> int:
    """Size of the shape-id vocabulary: every subset of the features."""
    return 1 << len(check_features(features))


def word_shape_ids(words: Words, features: Sequence[str]) -> np.ndarray:
    """(n_words,) int64 shape ids: bit k set when the word has ``features[k]`` (in FEATURES order).

    ``sentence_start``: the first word, or a word after a newline, or after ``. ! ?`` and a space
    ("U.S" inside an abbreviation is not a start; "Mr. Smith" is, a known false positive).
    Vectorised over characters (a few ms for 10k words).
    """
    feats = check_features(features)
    n = len(words)
    out = np.zeros(n, dtype=np.int64)
    if not feats or n == 0:
        return out
    alpha, upper, digit = _char_classes(words.text)  # (n_chars,) bool each

    def count(mask: np.ndarray) -> np.ndarray:  # (n_words,) chars of the word in the mask
        c = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        return c[words.ends] - c[words.starts]

    first_upper = upper[words.starts]
    n_alpha, n_upper, n_digit = count(alpha), count(upper), count(digit)
    for k, f in enumerate(feats):
        if f == "capitalised":
            has = first_upper
        elif f == "all_caps":
            has = (n_alpha >= 2) & (n_upper == n_alpha)
        elif f == "has_digit":
            has = n_digit > 0
        elif f == "sentence_start":
            single = (words.ends - words.starts) == 1
            ender = single & np.isin(_codepoints(words.text)[words.starts], _ENDERS)
            has = np.zeros(n, dtype=bool)
            has[0] = True
            has[1:] = ender[:-1] & words.space_before()[1:]
            has |= words.newline_before()
        else:  # punct: no letter or digit (other alphanumerics, e.g. CJK, count as letters)
            has = (n_alpha + n_digit) == 0
        out |= has.astype(np.int64) << k
    return out


_ENDERS = np.asarray([ord(c) for c in _SENTENCE_END], dtype=np.uint32)


def _char_classes(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_chars,) bool: alphabetic (incl. other non-digit alphanumerics), upper-case, digit."""
    cp = _codepoints(text)
    a = np.minimum(cp, 127).astype(np.uint8)
    ascii_ = cp < 128
    upper = ascii_ & (a >= 65) & (a <= 90)
    alpha = upper | (ascii_ & (a >= 97) & (a <= 122))
    digit = ascii_ & (a >= 48) & (a <= 57)
    idx = np.flatnonzero(~ascii_)
    if idx.size:  # non-ASCII characters need Python's Unicode tables
        chars = [text[i] for i in idx.tolist()]
        digit[idx] = [c.isdigit() for c in chars]
        alpha[idx] = [c.isalnum() and not c.isdigit() for c in chars]
        upper[idx] = [c.isupper() for c in chars]
    return alpha, upper, digit


def token_shape_ids(word_ids: np.ndarray, token_word: np.ndarray) -> np.ndarray:
    """(n_tokens,) int64: each sub-token takes its word's shape id; word-less tokens get 0."""
    if word_ids.size == 0:
        return np.zeros(token_word.shape[0], dtype=np.int64)
    idx = np.clip(token_word, 0, word_ids.size - 1)
    return np.where(token_word >= 0, word_ids[idx], 0).astype(np.int64)


def apply_shape_delta(p_tok: np.ndarray, shape_tok: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Keep-probabilities with the shape term added in logit space.

    ``delta`` is (n_shape_ids,) = keep minus drop logit of the model's shape embedding, so the
    result equals softmax(head(h) + shape_bias[shape])[keep] of the training-time forward.
    """
    p = np.clip(p_tok.astype(np.float64), 1e-12, 1.0 - 1e-12)
    logit = np.log(p) - np.log1p(-p) + delta[shape_tok]
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


class ShapeTerm:
    """A model's word-shape logit term, applied at selection time to scored contexts.

    ``features``: the feature names the model was trained with; ``delta``: (n_shape_ids,)
    keep-minus-drop logit offsets (:meth:`TokenCompressorModel.shape_logit_delta`).
    """

    def __init__(self, features: Sequence[str], delta: np.ndarray) -> None:
        self.features = check_features(features)
        self.delta = np.asarray(delta, dtype=np.float64)
        if self.delta.shape != (n_shape_ids(self.features),):
            raise ValueError(
                f"shape delta has shape {self.delta.shape}, expected ({n_shape_ids(self.features)},)"
            )

    @classmethod
    def of_model(cls, model: object) -> ShapeTerm | None:
        """The term of a :class:`TokenCompressorModel` trained with word shapes, else None."""
        getter = getattr(model, "shape_logit_delta", None)
        delta = getter() if callable(getter) else None
        return None if delta is None else cls(getattr(model, "word_shape", ()), delta)

    def apply(self, words: Words, token_word: np.ndarray, p_tok: np.ndarray) -> np.ndarray:
        """(n_tokens,) float32 keep-probabilities of one context with the shape term added."""
        shape_tok = token_shape_ids(word_shape_ids(words, self.features), token_word)
        return apply_shape_delta(p_tok, shape_tok, self.delta)
