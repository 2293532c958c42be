import io

import numpy as np
import open_clip
import pytest
import timm
import torch
from PIL import Image

from curation.errors import CurateError
from pipelines.embedders import load_embedder


def _jpeg(colour=(200, 30, 30), size=(300, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


def test_open_clip_checkpoint_file_is_loaded(tiny_clip, tmp_path):
    torch.manual_seed(1)
    reference, _, _ = open_clip.create_model_and_transforms(_register(tiny_clip))
    checkpoint = tmp_path / "tiny.pt"
    torch.save({"state_dict": reference.state_dict()}, checkpoint)
    embedder = load_embedder(tiny_clip, str(checkpoint))
    for name, tensor in reference.state_dict().items():
        assert torch.equal(embedder.model.state_dict()[name], tensor), name
    vectors = embedder.encode_images(embedder.batch([embedder.decode(_jpeg())]))
    assert vectors.shape == (1, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    texts = embedder.encode_texts(["a red square"])
    assert np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


def _register(config_path: str) -> str:
    open_clip.add_model_config(config_path)
    return config_path.rsplit("/", 1)[-1].removesuffix(".json")


def test_timm_checkpoint_file_is_loaded(tmp_path):
    torch.manual_seed(2)
    reference = timm.create_model("test_resnet", num_classes=0)
    checkpoint = tmp_path / "resnet.pth"
    torch.save(reference.state_dict(), checkpoint)
    embedder = load_embedder("timm:test_resnet", str(checkpoint))
    for name, tensor in reference.state_dict().items():
        assert torch.equal(embedder.model.state_dict()[name], tensor), name
    vectors = embedder.encode_images(embedder.batch([embedder.decode(_jpeg())]))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_jpeg_draft_decodes_at_model_scale(tiny_clip):
    embedder = load_embedder(tiny_clip, "random")
    pixels = embedder.decode(_jpeg(size=(1600, 1200)))
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8


@pytest.mark.parametrize(
    ("model", "pretrained", "message"),
    [
        ("no-such-model", "random", "unknown model"),
        ("timm:no_such_model", "random", "unknown timm model"),
        ("ViT-B-32", "/nonexistent/weights.pt", "checkpoint file not found"),
        ("/nonexistent/config.json", "random", "model config file not found"),
    ],
)
def test_bad_model_arguments_are_clear(model, pretrained, message):
    with pytest.raises(CurateError, match=message):
        load_embedder(model, pretrained)


@pytest.mark.parametrize(
    ("model", "tag"), [("ViT-B-32", "laion2b_s34b_b79k"), ("timm:resnet18", "a1_in1k")]
)
def test_pretrained_tag_without_network_says_to_pass_a_file(model, tag, monkeypatch):
    """The real download path runs; offline mode only skips the hub's retries."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CurateError, match="pass a local checkpoint file"):
        load_embedder.__wrapped__(model, tag)


def test_untrained_weights_follow_the_seed(tiny_clip):
    def first_weight(seed: int) -> torch.Tensor:
        embedder = load_embedder(tiny_clip, "random", seed=seed)
        return next(embedder.model.parameters()).detach().clone()

    assert torch.equal(first_weight(3), first_weight(3))
    assert not torch.equal(first_weight(3), first_weight(4))
