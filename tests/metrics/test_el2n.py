import math

import numpy as np
import pytest
import torch

from metrics.el2n import accuracy, el2n_from_probs, el2n_scores, probabilities, train_probes


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The caller sets the thread count (el2n does not); one keeps these small runs quick."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_el2n_from_probs_known_values():
    probs = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [0.2, 0.8], [0.3, 0.7]])
    labels = np.array([0, 0, 0, 1, -1])
    scores = el2n_from_probs(probs, labels)
    np.testing.assert_allclose(scores[:4], [math.sqrt(0.5), 0.0, math.sqrt(2), math.sqrt(0.08)])
    assert np.isnan(scores[4])
    assert scores.dtype == np.float64


def test_el2n_from_probs_keeps_float32():
    scores = el2n_from_probs(np.array([[0.5, 0.25, 0.25]], np.float32), np.array([2]))
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, [math.sqrt(0.25 + 0.0625 + 0.5625)], rtol=1e-6)


def test_el2n_from_probs_rejects_bad_labels():
    with pytest.raises(ValueError):
        el2n_from_probs(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError):
        el2n_from_probs(np.array([[0.5, 0.5]]), np.array([0, 1]))


def blobs(seed: int, n: int = 400, d: int = 8, classes: int = 3, flip: int = 0):
    """Well separated Gaussian classes; the first ``flip`` rows get a wrong label."""
    rng = np.random.default_rng(seed)
    centres = 4 * np.eye(classes, d)
    labels = rng.integers(0, classes, n)
    x = (centres[labels] + 0.5 * rng.standard_normal((n, d))).astype(np.float32)
    labels[:flip] = (labels[:flip] + 1) % classes
    return x, labels


def el2n(x, y, num_classes=None, **options):
    """Train on the labelled rows and score every row, as the el2n stages do."""
    probes = train_probes(x, y, num_classes, **options)
    return el2n_scores(probes, x, y)


def test_ensemble_is_deterministic_for_a_seed():
    x, y = blobs(0)
    state = torch.get_rng_state()
    a = el2n(x, y, models=3, steps=10, seed=7)
    b = el2n(x, y, models=3, steps=10, seed=7)
    c = el2n(x, y, models=3, steps=10, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert torch.equal(torch.get_rng_state(), state)  # the global torch RNG is untouched
    assert a.dtype == np.float32 and a.shape == (len(x),)


def test_ensemble_is_the_mean_of_its_members():
    x, y = blobs(1)
    members = [el2n(x, y, models=1, steps=10, seed=s) for s in (3, 4, 5)]
    np.testing.assert_allclose(
        el2n(x, y, models=3, steps=10, seed=3), np.mean(members, axis=0), rtol=1e-6
    )


def test_steps_are_counted_across_permutations():
    """More steps than one permutation of the rows holds: training goes on, and stops there."""
    x, y = blobs(5, n=40)
    one = train_probes(x, y, models=1, steps=1, batch_size=256)[0]
    many = train_probes(x, y, models=1, steps=30, batch_size=256)[0]
    untrained = train_probes(x, y, models=1, steps=0)[0]
    assert not np.array_equal(one["0.weight"], untrained["0.weight"])
    assert not np.array_equal(one["0.weight"], many["0.weight"])
    with torch.random.fork_rng():
        torch.manual_seed(0)
        np.testing.assert_array_equal(untrained["0.weight"], torch.nn.Linear(8, 3).weight.detach())


@pytest.mark.parametrize("hidden", [0, 32])
def test_mislabelled_points_score_high(hidden):
    x, y = blobs(2, n=600, flip=12)
    scores = el2n(x, y, models=4, steps=100, hidden=hidden, batch_size=64)
    clean, flipped = scores[12:], scores[:12]
    assert np.median(clean) < 0.1
    assert flipped.min() > 1.0
    assert flipped.min() > np.quantile(clean, 0.99)


def test_the_defaults_learn_on_unit_norm_embeddings():
    """Unit-norm embeddings of overlapping classes (as CLIP's are): the 0.1.0 defaults (80 Adam
    steps at 1e-3) stay near chance in probability; the defaults give confident probes."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10, 64))
    y = rng.integers(0, 10, 2000)
    x = centres[y] / 8 + rng.standard_normal((2000, 64)) / 8
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    old = accuracy(train_probes(x, y, models=1, steps=80, lr=1e-3), x, y)
    new = accuracy(train_probes(x, y, models=1), x, y)
    assert old["true_probability"] < 0.2 < 0.6 < new["true_probability"]
    assert new["accuracy"] > 0.9


def test_unlabelled_rows_get_nan_and_are_left_out_of_training():
    x, y = blobs(3, n=300)
    y_partial = y.copy()
    y_partial[::5] = -1
    scores = el2n(x, y_partial, num_classes=3, models=2, steps=10)
    assert np.isnan(scores[::5]).all()
    labelled = y_partial >= 0
    np.testing.assert_array_equal(
        scores[labelled], el2n(x[labelled], y[labelled], num_classes=3, models=2, steps=10)
    )
    with pytest.raises(ValueError, match="no labelled row"):
        train_probes(x, np.full(len(x), -1), num_classes=3, models=1)


def test_probes_score_other_rows_and_measure_accuracy():
    x, y = blobs(6, n=400)
    probes = train_probes(x[:300], y[:300], 3, models=2, steps=100)
    assert [sorted(p) for p in probes] == [["0.bias", "0.weight"]] * 2
    held = accuracy(probes, x[300:], y[300:])
    assert held["accuracy"] > 0.95 and 0.5 < held["true_probability"] <= 1
    assert accuracy(probes, x[:0], y[:0]) == {"accuracy": None, "true_probability": None}
    scores = el2n_scores(probes, x[300:], y[300:])
    assert scores.shape == (100,) and np.median(scores) < 0.5
    mlp = train_probes(x, y, 3, models=1, steps=5, hidden=16)[0]
    assert probabilities(mlp, x).shape == (400, 3)


def test_num_classes_and_label_checks():
    x, y = blobs(4, n=50, classes=2)
    assert el2n(x, y, num_classes=5, models=1, steps=1).shape == (50,)
    with pytest.raises(ValueError):
        train_probes(x, y, num_classes=1, models=1, steps=1)
    with pytest.raises(ValueError):
        train_probes(x, y[:10], models=1, steps=1)
