import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.prunable import PruningError
from metrics.prune_amount import (
    amount_to_sparsity,
    check_fraction,
    prune_count,
    sparsity_to_amount,
)


def test_prune_count_counts_what_is_already_pruned():
    assert prune_count(10, 0, 0.3) == 3
    assert prune_count(10, 2, 0.3) == 1
    assert prune_count(10, 3, 0.3) == 0
    assert prune_count(100, 0, 0.29) == 29  # 28.999999999999996 rounds to 29


def test_prune_count_rounds_halves_to_even_like_torch():
    assert prune_count(10, 0, 0.25) == 2
    assert prune_count(10, 0, 0.35) == 4
    assert prune_count(2, 0, 0.25) == 0


def test_prune_count_never_restores_a_weight():
    with pytest.raises(PruningError, match="layer x: already 4 of 10 pruned, more than the 3"):
        prune_count(10, 4, 0.3, where="layer x")


def test_amount_and_sparsity_conversions():
    assert sparsity_to_amount(0.5, 0.0) == 0.5
    assert sparsity_to_amount(0.75, 0.5) == 0.5
    assert sparsity_to_amount(0.5, 0.5) == 0.0
    assert amount_to_sparsity(0.5, 0.5) == 0.75
    assert amount_to_sparsity(0.2, 0.2) == pytest.approx(0.36)
    assert amount_to_sparsity(0.0, 0.3) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sparsity_to_amount(0.5, 0.6), "current sparsity 0.6 is above the target 0.5"),
        (lambda: sparsity_to_amount(1.0, 1.0), "nothing is left to prune"),
        (lambda: amount_to_sparsity(1.5, 0.0), r"amount must lie in \[0, 1\], got 1.5"),
        (lambda: check_fraction(float("nan")), r"sparsity must lie in \[0, 1\], got nan"),
        (lambda: prune_count(10, 0, -0.1), r"sparsity must lie in \[0, 1\]"),
    ],
)
def test_bad_fractions_raise(call, match):
    with pytest.raises(PruningError, match=match):
        call()


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1), st.floats(0, 0.999))
def test_property_conversions_are_inverse(sparsity, current):
    if current > sparsity:
        sparsity, current = current, sparsity
    amount = sparsity_to_amount(sparsity, current)
    assert 0.0 <= amount <= 1.0
    assert amount_to_sparsity(amount, current) == pytest.approx(sparsity, abs=1e-12)
