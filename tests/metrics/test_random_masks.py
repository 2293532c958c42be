import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.prunable import PruningError
from metrics.random_masks import kept_counts, layer_densities, random_masks

# ERK raw densities sum(shape) / prod(shape): conv (4+2+3+3)/72 = 1/6, "small" (1+2)/2 = 1.5,
# "big" (10+10)/100 = 0.2.
ERK_LAYERS = {
    "conv": torch.ones(4, 2, 3, 3),
    "small": torch.ones(1, 2),
    "big": torch.ones(10, 10),
}


def test_erk_resolves_a_layer_that_would_exceed_one():
    # s = 0.5 keeps 87 of 174. First factor 87 / (12 + 3 + 20): "small" would have density
    # 1.5 * 87/35 > 1, so it is dense and the factor is solved again over the others:
    # (87 - 2) / (12 + 20) = 85/32, giving conv 12 * 85/32 = 31.875 kept, big 53.125.
    densities = layer_densities(ERK_LAYERS, 0.5, "erk")
    assert densities == {"conv": 31.875 / 72, "small": 1.0, "big": 0.53125}
    # Largest remainders: floors 31 + 2 + 53 = 86, the one left goes to conv (0.875).
    assert kept_counts(ERK_LAYERS, 0.5, "erk") == {"conv": 32, "small": 2, "big": 53}


def test_erk_without_a_dense_layer_is_one_factor():
    layers = {"conv": ERK_LAYERS["conv"], "big": ERK_LAYERS["big"]}
    # 172 weights, keep 172 - 155 = 17 (round(0.9 * 172) = 155): factor 17 / 32.
    densities = layer_densities(layers, 0.9, "erk")
    assert densities["conv"] == pytest.approx(17 / 32 / 6)
    assert densities["big"] == pytest.approx(17 / 32 * 0.2)
    assert densities["conv"] / densities["big"] == pytest.approx((1 / 6) / 0.2)


def test_uniform_counts_add_up_by_largest_remainders():
    layers = {"a": torch.ones(5), "b": torch.ones(3), "c": torch.ones(2)}
    # Keep 5 of 10: 2.5, 1.5, 1.0 -> floors 2, 1, 1; the last one to the tie a/b: a (first).
    assert layer_densities(layers, 0.5, "uniform") == {"a": 0.5, "b": 0.5, "c": 0.5}
    assert kept_counts(layers, 0.5, "uniform") == {"a": 3, "b": 1, "c": 1}


def test_current_masks_cap_layer_densities():
    layers = {"a": torch.ones(10), "b": torch.ones(10)}
    current = {"a": torch.arange(10) < 2, "b": torch.ones(10, dtype=torch.bool)}
    # Uniform at 0.5 would keep 5 of a, but a has 2 left: it keeps them and b keeps 8.
    assert kept_counts(layers, 0.5, "uniform", current) == {"a": 2, "b": 8}
    masks = random_masks(layers, 0.5, seed=0, masks=current)
    assert torch.equal(masks["a"], current["a"])
    assert int(masks["b"].sum()) == 8


def test_random_masks_are_seeded_exact_and_within_the_current_masks():
    layers = {"a": torch.ones(6, 8), "b": torch.ones(3, 2, 2, 2)}
    current = {
        "a": torch.rand(6, 8, generator=torch.Generator().manual_seed(0)) > 0.3,
        "b": torch.ones(3, 2, 2, 2, dtype=torch.bool),
    }
    counts = kept_counts(layers, 0.6, "erk", current)
    masks = random_masks(layers, 0.6, seed=7, distribution="erk", masks=current)
    assert {name: int(m.sum()) for name, m in masks.items()} == counts
    assert sum(counts.values()) == 72 - round(0.6 * 72)
    assert not (masks["a"] & ~current["a"]).any()
    again = random_masks(layers, 0.6, seed=7, distribution="erk", masks=current)
    assert all(torch.equal(masks[n], again[n]) for n in layers)
    other = random_masks(layers, 0.6, seed=8, distribution="erk", masks=current)
    assert not torch.equal(masks["a"], other["a"])


def test_a_layer_draw_does_not_depend_on_the_other_layers():
    a = torch.ones(4, 5)
    with_b = random_masks({"a": a, "b": torch.ones(10)}, 0.5, seed=3)
    alone = random_masks({"a": a}, 0.5, seed=3)
    assert torch.equal(with_b["a"], alone["a"])


def test_random_is_uniform_over_positions():
    # Every position of a 10-weight layer is kept 5 times in 10 on average over many seeds.
    layer = {"a": torch.ones(10)}
    frequency = sum(random_masks(layer, 0.5, seed=s)["a"].double() for s in range(2000)) / 2000
    assert (frequency - 0.5).abs().max() < 0.05


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: random_masks(ERK_LAYERS, 0.5, seed=-1), "seed must be a non-negative int"),
        (lambda: random_masks(ERK_LAYERS, 0.5, seed=1.5), "seed must be a non-negative int"),
        (lambda: kept_counts(ERK_LAYERS, 0.5, "er"), "distribution must be one of uniform, erk"),
        (
            lambda: kept_counts({"a": torch.ones(4)}, 0.2, masks={"a": torch.arange(4) < 2}),
            "already 2 of 4 pruned",
        ),
    ],
)
def test_bad_requests_raise(call, match):
    with pytest.raises(PruningError, match=match):
        call()


@st.composite
def layer_problems(draw):
    shapes = draw(
        st.lists(
            st.tuples(st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 3])),
            min_size=1,
            max_size=4,
        )
    )
    layers = {
        f"l{i}": torch.ones(out, inp) if k == 1 else torch.ones(out, inp, k, k)
        for i, (out, inp, k) in enumerate(shapes)
    }
    current = {
        name: torch.tensor(
            draw(st.lists(st.booleans(), min_size=w.numel(), max_size=w.numel()))
        ).reshape(w.shape)
        for name, w in layers.items()
    }
    total = sum(w.numel() for w in layers.values())
    pruned = sum(int((~m).sum()) for m in current.values())
    return layers, current, draw(st.integers(pruned, total)) / total, total


@settings(max_examples=150, deadline=None)
@given(layer_problems(), st.sampled_from(["uniform", "erk"]))
def test_property_counts_are_exact_and_capped(problem, distribution):
    layers, current, sparsity, total = problem
    counts = kept_counts(layers, sparsity, distribution, current)
    assert sum(counts.values()) == total - round(sparsity * total)
    densities = layer_densities(layers, sparsity, distribution, current)
    for name, count in counts.items():
        cap = int(current[name].sum())
        assert 0 <= count <= cap
        assert abs(count - densities[name] * layers[name].numel()) < 1 + 1e-9
    # Layers below their cap share one factor over their raw density (ERK or uniform).
    raw = {
        name: (sum(w.shape) / w.numel()) if distribution == "erk" else 1.0
        for name, w in layers.items()
    }
    free = [n for n in layers if densities[n] * layers[n].numel() < current[n].sum() - 1e-9]
    if free:
        factor = densities[free[0]] / raw[free[0]]
        assert np.ptp([densities[n] / raw[n] for n in free]) < 1e-9
        # Every capped layer is capped because the shared factor would take it past its cap.
        assert all(raw[n] * factor >= densities[n] - 1e-9 for n in layers if n not in free)
