"""The outlier formulas of ``mooscomp.outliers`` equal naive per-element loops of their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mooscomp import outliers
from mooscomp.config import CompressionConfig
from mooscomp.outliers import (
    EPS,
    fuse,
    hidden_deviation_z,
    rarity_z,
    tokens_to_words,
    transform,
    word_scores,
    zscore,
)

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True)


def naive_z(values: list[float]) -> list[float]:
    """(x - mean) / (population sd + EPS), one element at a time."""
    n = len(values)
    mu = sum(values) / n
    sd = math.sqrt(sum((v - mu) ** 2 for v in values) / n)
    return [(v - mu) / (sd + EPS) for v in values]


def naive_hidden_z(hidden: torch.Tensor, valid: torch.Tensor) -> tuple[list[list[float]], list[float]]:
    """Per row: 1 - cos(h_i, normalised sum of the valid unit vectors), Z-scored over the valid;
    and each row's sd of the deviations."""
    out, sds = [], []
    for h, v in zip(hidden.double(), valid, strict=True):
        idx = [i for i in range(len(v)) if v[i]]
        units = {i: h[i] / max(float(h[i].norm()), 1e-12) for i in idx}
        total = sum((units[i] for i in idx), torch.zeros(h.shape[-1], dtype=torch.float64))
        mean_dir = total / max(float(total.norm()), 1e-12)
        dev = [1.0 - float(torch.dot(units[i], mean_dir)) for i in idx]
        z = naive_z(dev) if idx else []
        sds.append(math.sqrt(sum((x - sum(dev) / len(dev)) ** 2 for x in dev) / len(dev)) if idx else 0.0)
        row = [0.0] * len(v)
        for i, zi in zip(idx, z, strict=True):
            row[i] = zi
        out.append(row)
    return out, sds


@SETTINGS
@given(b=st.integers(1, 3), n=st.integers(1, 10), d=st.integers(2, 8), seed=st.integers(0, 10_000),
       p_invalid=st.sampled_from([0.0, 0.3, 1.0]))
def test_hidden_deviation_z_matches_naive(b: int, n: int, d: int, seed: int, p_invalid: float) -> None:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, n, d, generator=g) + 0.5  # (b, n, d)
    valid = torch.rand(b, n, generator=g) >= p_invalid  # (b, n)
    got = hidden_deviation_z(hidden, valid)
    assert got.shape == (b, n)
    rows, sds = naive_hidden_z(hidden, valid)
    want = torch.tensor(rows, dtype=torch.float32)
    assert (got[~valid] == 0).all()
    # rows whose deviations are (near) equal have z = rounding noise / EPS: not comparable
    ok = torch.tensor([sd > 1e-3 for sd in sds])
    torch.testing.assert_close(got[ok], want[ok], atol=2e-3, rtol=2e-3)


def test_hidden_deviation_z_known_values() -> None:
    """Three tokens along x and one along y: the y token is the outlier (largest z)."""
    hidden = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    valid = torch.tensor([[True, True, True, True, False]])
    z = hidden_deviation_z(hidden, valid)[0]
    assert z[4] == 0.0 and int(z[:4].argmax()) == 3
    np.testing.assert_allclose(z[:3].numpy(), [z[0].item()] * 3, atol=1e-6)


@SETTINGS
@given(ids=st.lists(st.integers(0, 20), min_size=0, max_size=30), table=st.booleans())
def test_rarity_z_matches_naive(ids: list[int], table: bool) -> None:
    arr = np.asarray(ids, dtype=np.int64)
    log_freq = np.log(np.linspace(0.01, 0.5, 16)) if table else None
    got = rarity_z(arr, log_freq)
    if not ids:
        assert got.shape == (0,)
        return
    if log_freq is not None:
        surprise = [-float(log_freq[min(max(i, 0), 15)]) for i in ids]
    else:
        surprise = [-math.log(ids.count(i) / len(ids)) for i in ids]
    np.testing.assert_allclose(got, naive_z(surprise), rtol=1e-5, atol=1e-4)
    assert got.dtype == np.float32


def test_zscore_constant_and_empty() -> None:
    assert zscore(np.zeros(0)).shape == (0,)
    np.testing.assert_array_equal(zscore(np.full(4, 7.0)), np.zeros(4, np.float32))


@SETTINGS
@given(token_word=st.lists(st.integers(-1, 5), min_size=0, max_size=20),
       how=st.sampled_from(["mean", "first"]), seed=st.integers(0, 1000))
def test_tokens_to_words_matches_naive(token_word: list[int], how: str, seed: int) -> None:
    tw = np.asarray(sorted(token_word, key=lambda w: (w < 0, w)), dtype=np.int64)
    values = np.random.default_rng(seed).normal(size=tw.size).astype(np.float32)
    n_words = 6
    got = tokens_to_words(values, tw, n_words, how)
    for w in range(n_words):
        mine = [float(v) for v, t in zip(values, tw, strict=True) if t == w]
        want = 0.0 if not mine else (mine[0] if how == "first" else sum(mine) / len(mine))
        assert got[w] == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("how", ["relu", "sigmoid", "identity"])
def test_transform_and_fuse_match_naive(how: str) -> None:
    z = np.asarray([-5.0, -1.0, -0.2, 0.0, 0.7, 2.5, 9.0], dtype=np.float32)
    p = np.linspace(0.1, 0.9, z.size).astype(np.float32)
    clip, alpha = 3.0, 0.4

    def g(x: float) -> float:
        x = min(max(x, -clip), clip)
        return {"relu": max(x, 0.0), "sigmoid": 1.0 / (1.0 + math.exp(-x)), "identity": x}[how]

    np.testing.assert_allclose(transform(z, how, clip), [g(float(x)) for x in z], rtol=1e-6)
    cfg = CompressionConfig(outlier_transform=how, outlier_clip=clip, outlier_alpha=alpha)
    fused = fuse(p, z, cfg)
    assert fused.dtype == np.float32
    np.testing.assert_allclose(fused, [float(a) + alpha * g(float(b)) for a, b in zip(p, z, strict=True)],
                               rtol=1e-6)
    np.testing.assert_array_equal(fuse(p, z, cfg.replace(outlier_alpha=0.0)), p)  # alpha 0 = p


def test_word_scores_variants() -> None:
    p_tok = np.asarray([0.2, 0.4, 0.9, 0.5], np.float32)
    z_tok = np.asarray([1.0, -1.0, 2.0, 0.0], np.float32)
    ids = np.asarray([10, 11, 12, 10], np.int64)
    tw = np.asarray([0, 0, 1, 2], np.int64)
    p, z, f = word_scores(p_tok, z_tok, ids, tw, 3, CompressionConfig())
    np.testing.assert_allclose(p, [0.3, 0.9, 0.5], rtol=1e-6)
    np.testing.assert_allclose(z, [0.0, 2.0, 0.0])
    np.testing.assert_allclose(f, p + 0.1 * np.maximum(z, 0), rtol=1e-6)
    _, zr, _ = word_scores(p_tok, z_tok, ids, tw, 3, CompressionConfig(outlier_variant="rarity"))
    want = rarity_z(ids, None)
    np.testing.assert_allclose(zr, [(want[0] + want[1]) / 2, want[2], want[3]], rtol=1e-6)


def test_formula_version_is_an_int() -> None:
    assert isinstance(outliers.FORMULA_VERSION, int) and outliers.FORMULA_VERSION >= 1
