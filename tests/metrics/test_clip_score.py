import math

import numpy as np
import pytest

from metrics.clip_score import clip_score


def test_basic_values():
    image = np.array([[1, 0], [2, 0], [1, 0], [1, 1], [3, 4]], dtype=np.float32)
    text = np.array([[0, 1], [5, 0], [-1, 0], [1, 0], [3, 4]], dtype=np.float32)
    np.testing.assert_allclose(clip_score(image, text), [0, 1, -1, math.sqrt(0.5), 1], atol=1e-6)


def test_float16_input_and_dtype():
    rng = np.random.default_rng(0)
    image, text = rng.standard_normal((2, 10, 16))
    expected = (
        np.sum(image * text, 1) / np.linalg.norm(image, axis=1) / np.linalg.norm(text, axis=1)
    )
    scores = clip_score(image.astype(np.float16), text.astype(np.float16))
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, atol=3e-3)


def test_zero_row_is_nan():
    scores = clip_score(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert np.isnan(scores[0]) and scores[1] == 1


def test_shape_mismatch():
    with pytest.raises(ValueError):
        clip_score(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError):
        clip_score(np.zeros((3, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError):
        clip_score(np.zeros(4), np.zeros(4))
