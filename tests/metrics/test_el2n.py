import math

import numpy as np
import pytest
import torch

from metrics.el2n import el2n, el2n_from_probs


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


def test_ensemble_is_deterministic_for_a_seed():
    x, y = blobs(0)
    state = torch.get_rng_state()
    a = el2n(x, y, models=3, epochs=2, seed=7)
    b = el2n(x, y, models=3, epochs=2, seed=7)
    c = el2n(x, y, models=3, epochs=2, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert torch.equal(torch.get_rng_state(), state)  # the global torch RNG is untouched
    assert a.dtype == np.float32 and a.shape == (len(x),)


def test_ensemble_is_the_mean_of_its_members():
    x, y = blobs(1)
    members = [el2n(x, y, models=1, epochs=2, seed=s) for s in (3, 4, 5)]
    np.testing.assert_allclose(
        el2n(x, y, models=3, epochs=2, seed=3), np.mean(members, axis=0), rtol=1e-6
    )


@pytest.mark.parametrize("hidden", [0, 32])
def test_mislabelled_points_score_high(hidden):
    x, y = blobs(2, n=600, flip=12)
    scores = el2n(x, y, models=4, epochs=10, hidden=hidden, lr=1e-2, batch_size=64)
    clean, flipped = scores[12:], scores[:12]
    assert np.median(clean) < 0.1
    assert flipped.min() > 1.0
    assert flipped.min() > np.quantile(clean, 0.99)


def test_unlabelled_rows_get_nan_and_are_left_out_of_training():
    x, y = blobs(3, n=300)
    y_partial = y.copy()
    y_partial[::5] = -1
    scores = el2n(x, y_partial, num_classes=3, models=2, epochs=2)
    assert np.isnan(scores[::5]).all()
    labelled = y_partial >= 0
    np.testing.assert_array_equal(
        scores[labelled], el2n(x[labelled], y[labelled], num_classes=3, models=2, epochs=2)
    )
    assert np.isnan(el2n(x, np.full(len(x), -1), models=1, epochs=1)).all()


def test_num_classes_and_label_checks():
    x, y = blobs(4, n=50, classes=2)
    assert el2n(x, y, num_classes=5, models=1, epochs=1).shape == (50,)
    with pytest.raises(ValueError):
        el2n(x, y, num_classes=1, models=1, epochs=1)
    with pytest.raises(ValueError):
        el2n(x, y[:10], models=1, epochs=1)
