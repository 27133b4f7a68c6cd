"""The O(n*d) inter-class cosine similarity equals the naive double sum in ``losses``' docstring."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mooscomp.losses import (
    MoosLoss,
    interclass_cosine,
    layerwise_interclass_cosine,
    moos_loss,
    sequence_interclass_cosine,
)


def naive(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    """Mean over sequences with both classes of 1/(|P||D|) sum_i sum_j cos(h_i, h_j)."""
    vals = []
    for h, y in zip(hidden.double(), labels, strict=True):
        keep = [i for i in range(len(y)) if y[i] == 1]
        drop = [j for j in range(len(y)) if y[j] == 0]
        if not keep or not drop:
            continue
        tot = 0.0
        for i in keep:
            for j in drop:
                tot += float(torch.dot(h[i], h[j]) / (h[i].norm() * h[j].norm()))
        vals.append(tot / (len(keep) * len(drop)))
    return (sum(vals) / len(vals) if vals else 0.0), len(vals)


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 4),
    n=st.integers(1, 12),
    d=st.integers(1, 8),
    seed=st.integers(0, 10_000),
    p_ignore=st.sampled_from([0.0, 0.3, 0.9]),
)
def test_matches_naive_double_sum(b: int, n: int, d: int, seed: int, p_ignore: float) -> None:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, n, d, generator=g) + 0.1
    labels = torch.randint(0, 2, (b, n), generator=g)
    labels[torch.rand(b, n, generator=g) < p_ignore] = -100
    want, n_valid = naive(hidden, labels)
    got = interclass_cosine(hidden, labels)
    assert math.isclose(float(got), want, rel_tol=1e-4, abs_tol=1e-5)
    s, valid = sequence_interclass_cosine(hidden, labels)
    assert int(valid.sum()) == n_valid
    sums, count = layerwise_interclass_cosine([hidden, hidden * 2.0], labels)
    assert count == n_valid
    if count:
        assert torch.allclose(sums / count, torch.tensor([want, want], dtype=sums.dtype), atol=1e-5)


def test_empty_class_contributes_nothing() -> None:
    h = torch.randn(3, 5, 4)
    y = torch.tensor([[1, 1, 1, -100, -100], [1, 0, 0, 1, -100], [0, 0, 0, 0, 0]])
    s, valid = sequence_interclass_cosine(h, y)
    assert valid.tolist() == [False, True, False]
    assert float(interclass_cosine(h, y)) == pytest.approx(float(s[1]))
    none = interclass_cosine(h, torch.ones(3, 5, dtype=torch.long))
    assert float(none) == 0.0


def test_identical_and_opposite_classes() -> None:
    v = torch.tensor([1.0, 2.0, 3.0])
    h = torch.stack([v, 2 * v, -v, -3 * v]).unsqueeze(0)  # (1, 4, 3)
    y = torch.tensor([[1, 1, 0, 0]])
    assert float(interclass_cosine(h, y)) == pytest.approx(-1.0, abs=1e-6)
    y2 = torch.tensor([[1, 0, -100, -100]])
    assert float(interclass_cosine(h, y2)) == pytest.approx(1.0, abs=1e-6)


def test_moos_loss_total_and_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 2, generator=g, requires_grad=True)
    hidden = torch.randn(2, 6, 8, generator=g, requires_grad=True)
    labels = torch.tensor([[1, 0, 1, 0, -100, -100], [0, 0, 1, 1, 1, -100]])
    total, ce, cs = moos_loss(logits, hidden, labels, 0.5)
    ref_ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 2), labels.reshape(-1))
    assert float(ce.detach()) == pytest.approx(float(ref_ce.detach()), rel=1e-6)
    assert float(total.detach()) == pytest.approx(float(ce.detach()) + 0.5 * float(cs.detach()), rel=1e-6)
    total.backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0
    # beta = 0: the similarity term does not reach the hidden states
    h2 = hidden.detach().clone().requires_grad_(True)
    t0, _, _ = MoosLoss(0.0)(logits.detach(), h2, labels)
    assert not t0.requires_grad or h2.grad is None
    with pytest.raises(ValueError, match="beta"):
        MoosLoss(-1.0)


def test_no_labelled_token_is_zero_not_nan() -> None:
    logits = torch.randn(1, 3, 2, requires_grad=True)
    total, ce, cs = moos_loss(logits, torch.randn(1, 3, 4), torch.full((1, 3), -100), 1.0)
    assert float(total.detach()) == 0.0 and not math.isnan(float(ce.detach()))
    total.backward()
