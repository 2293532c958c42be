from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.lamp import lamp, lamp_scores
from metrics.magnitude import global_magnitude
from metrics.prunable import PruningError

# Layer a sorted by |w|: 1, 8, 9, 10; squares 1, 64, 81, 100; tail sums 246, 245, 181, 100.
# Layer b: 2, 3; squares 4, 9; tail sums 13, 9.
WEIGHTS = {"a": torch.tensor([[8.0, -1.0], [10.0, 9.0]]), "b": torch.tensor([[3.0, -2.0]])}


def kept(masks):
    return {name: mask.reshape(-1).tolist() for name, mask in masks.items()}


def test_scores_by_hand_from_the_definition():
    scores = lamp_scores(WEIGHTS)
    assert scores["a"].dtype == torch.float64
    assert scores["a"].tolist() == [[64 / 245, 1 / 246], [1.0, 81 / 181]]
    assert scores["b"].tolist() == [[1.0, 4 / 13]]


def test_prunes_the_globally_smallest_scores():
    # Scores ascending: a1 1/246, a0 64/245 = 0.261, b1 4/13 = 0.308, a3 81/181 = 0.448, then
    # the two 1s. Magnitude would prune a's 1 and b's 2; LAMP prunes a's 1 and 8.
    assert kept(lamp(WEIGHTS, 2 / 6)) == {"a": [False, False, True, True], "b": [True, True]}
    assert kept(global_magnitude(WEIGHTS, 2 / 6)) == {
        "a": [True, False, True, True],
        "b": [True, False],
    }
    assert kept(lamp(WEIGHTS, 3 / 6)) == {"a": [False, False, True, True], "b": [True, False]}
    assert kept(lamp(WEIGHTS, 4 / 6)) == {"a": [False, False, True, False], "b": [True, False]}


def test_never_empties_a_layer():
    with pytest.raises(PruningError, match=r"would empty a layer.*at most 4 more of 6"):
        lamp(WEIGHTS, 5 / 6)
    small = {"big": torch.arange(1.0, 9.0), "tiny": torch.tensor([0.01, 0.02])}
    # Global magnitude at 3/10 empties "tiny"; LAMP keeps its largest.
    assert not global_magnitude(small, 0.3)["tiny"].any()
    assert lamp(small, 0.8)["tiny"].tolist() == [False, True]


def test_equal_magnitudes_sort_by_index():
    # The earlier of two equal weights sorts first: 1 / (1 + 1) = 0.5, then 1.
    assert lamp_scores({"a": torch.tensor([1.0, -1.0])})["a"].tolist() == [0.5, 1.0]
    assert kept(lamp({"a": torch.tensor([1.0, -1.0])}, 0.5)) == {"a": [False, True]}


def test_zero_weights_score_zero_and_the_largest_one():
    assert lamp_scores({"a": torch.tensor([0.0, 0.0, 5.0])})["a"].tolist() == [0.0, 0.0, 1.0]
    assert lamp_scores({"a": torch.zeros(3)})["a"].tolist() == [0.0, 0.0, 1.0]


def test_scores_over_the_unpruned_weights_only():
    # Without a's 10: 1, 8, 9 have squares 1, 64, 81 and tail sums 146, 145, 81.
    current = {"a": torch.tensor([[True, True], [False, True]]), "b": torch.ones(1, 2).bool()}
    scores = lamp_scores(WEIGHTS, current)
    assert scores["a"].tolist() == [[64 / 145, 1 / 146], [0.0, 1.0]]
    # 1 + 2 pruned of 6: the two smallest scores, a's 1 (1/146) and b's 2 (4/13).
    assert kept(lamp(WEIGHTS, 0.5, masks=current)) == {
        "a": [True, False, False, True],
        "b": [True, False],
    }


def test_a_layer_already_empty_does_not_block_the_others():
    current = {"a": torch.zeros(2, 2, dtype=torch.bool), "b": torch.ones(1, 2, dtype=torch.bool)}
    assert kept(lamp(WEIGHTS, 5 / 6, masks=current)) == {"a": [False] * 4, "b": [True, False]}


def reference_scores(values):
    """Exact LAMP scores of one layer, from the definition with Fractions."""
    order = sorted(range(len(values)), key=lambda i: (abs(values[i]), i))
    squares = [Fraction(values[i]) ** 2 for i in order]
    scores = [0] * len(values)
    for rank, i in enumerate(order):
        tail = sum(squares[rank:])
        scores[i] = 1 if rank == len(order) - 1 else (squares[rank] / tail if tail else 0)
    return scores


@st.composite
def layers(draw):
    return {
        f"l{i}": torch.tensor(values, dtype=torch.float32)
        for i, values in enumerate(
            draw(
                st.lists(
                    st.lists(st.integers(-5, 5), min_size=1, max_size=8), max_size=3, min_size=1
                )
            )
        )
    }


@settings(max_examples=150, deadline=None)
@given(layers(), st.floats(0, 1))
def test_property_against_exact_reference(weights, fraction):
    total = sum(w.numel() for w in weights.values())
    count = round(fraction * (total - len(weights)))
    masks = lamp(weights, count / total)
    exact = {name: reference_scores(w.tolist()) for name, w in weights.items()}
    entries = sorted(
        (score, layer, index, name)
        for layer, (name, scores) in enumerate(exact.items())
        for index, score in enumerate(scores)
    )
    expected = {name: [True] * w.numel() for name, w in weights.items()}
    for *_, index, name in entries[:count]:
        expected[name][index] = False
    assert kept(masks) == expected
    assert all(mask.any() for mask in masks.values())
    for name, scores in lamp_scores(weights).items():
        assert scores.tolist() == [float(s) for s in exact[name]]
