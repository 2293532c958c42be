"""Image (and caption) embedders: open_clip models by name or config file, timm image models.

Loaded once per worker process (`load_embedder` is cached) and shared by every unit it runs.
An image is decoded and resized to uint8 pixels (`decode`, in a decoding thread); a batch is
converted to float and normalised at once on the model's device (`batch`): per image, that
conversion cost more than the JPEG decoding. On a GPU the batch travels as uint8 through
pinned memory, and the model runs in mixed precision (float16 autocast).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import Compose, Normalize, ToTensor

from curation.errors import CurateError
from pipelines.model_names import TIMM_PREFIX

HUB = ("huggingface.co", 443)  # where open_clip and timm download pretrained weights from
HUB_TIMEOUT_S = 3.0
RANDOM_WEIGHTS = "random"  # --pretrained random: seeded untrained weights, for smoke tests
MAX_DECODE_PIXELS = 40_000_000  # about 160 MB as RGBA; web images above this are rare


class ImageTooLarge(ValueError):
    """Decoding the image would take more memory than one sample may use."""


@dataclass
class Embedder:
    """A loaded model with its eval preprocessing, split where the image becomes a tensor:
    `resize` (the PIL steps: resize, crop) runs per image, the normalisation (`mean`, `std`,
    on the device, after the /255 of ToTensor) per batch; outputs are L2-normalised float32.

    Weights and batches are channels-last: convolutions run 1.6-3x faster on CPUs that way
    (measured on EfficientNet-Lite0), with outputs equal to 1e-5."""

    model: torch.nn.Module
    resize: Callable[[Image.Image], Image.Image]
    mean: torch.Tensor  # (1, 3, 1, 1) on the device
    std: torch.Tensor
    image_size: int
    device: str
    tokenizer: Callable | None = None

    def _autocast(self):
        """float16 autocast on a GPU; full precision on the CPU."""
        if torch.device(self.device).type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()

    @torch.no_grad()
    def encode_images(self, batch: torch.Tensor) -> np.ndarray:
        batch = batch.to(self.device).contiguous(memory_format=torch.channels_last)
        with self._autocast():
            if hasattr(self.model, "encode_image"):
                return _normalise(self.model.encode_image(batch))
            return _normalise(self.model(batch))

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if self.tokenizer is None:
            raise CurateError("this model has no text tower: captions need an open_clip model")
        tokens = self.tokenizer(texts).to(self.device)
        with self._autocast():
            return _normalise(self.model.encode_text(tokens))

    def decode(self, data: bytes) -> np.ndarray:
        """The image's pixels at the model's input size (uint8, height x width x RGB), decoded
        at the smallest JPEG scale that still covers that size.

        Memory is bounded: the size in the header (after JPEG draft scaling) is checked
        against MAX_DECODE_PIXELS before any pixel is decoded; Pillow's own
        decompression-bomb guard stays on for what it catches at open."""
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "JPEG":
                image.draft("RGB", (self.image_size, self.image_size))
            width, height = image.size
            if width * height > MAX_DECODE_PIXELS:
                raise ImageTooLarge(
                    f"image too large to decode: {width}x{height} pixels "
                    f"(limit {MAX_DECODE_PIXELS:,})"
                )
            return np.asarray(self.resize(image.convert("RGB")))

    def batch(self, images: list[np.ndarray]) -> torch.Tensor:
        """The model's input for decoded images: stacked as uint8 (through pinned memory to a
        GPU), then on the device converted and normalised as ToTensor and Normalize do per
        image, the same operations in the same order, so the values are the same bits."""
        pixels = torch.from_numpy(np.stack(images))
        if torch.device(self.device).type == "cuda":
            pixels = pixels.pin_memory().to(self.device, non_blocking=True)
        x = pixels.permute(0, 3, 1, 2).to(torch.get_default_dtype())  # channels-last
        return x.div_(255).sub_(self.mean).div_(self.std)


def _normalise(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return features.cpu().numpy()


def _split_preprocess(preprocess, device: str) -> tuple[Callable, torch.Tensor, torch.Tensor]:
    """open_clip's and timm's eval transforms are PIL steps, ToTensor, Normalize: the steps
    before ToTensor (as one transform), and Normalize's mean and std on `device`."""
    steps = list(getattr(preprocess, "transforms", []))
    at = next((i for i, step in enumerate(steps) if isinstance(step, ToTensor)), None)
    if at is None or len(steps) != at + 2 or not isinstance(steps[-1], Normalize):
        raise CurateError(f"unsupported image preprocessing (PIL steps, ToTensor, Normalize "
                          f"expected): {preprocess!r}")  # fmt: skip
    dtype = torch.get_default_dtype()
    mean, std = (torch.as_tensor(v, dtype=dtype, device=device).view(1, -1, 1, 1)
                 for v in (steps[-1].mean, steps[-1].std))  # fmt: skip
    return Compose(steps[:at]), mean, std


def _image_size(preprocess) -> int:
    for transform in getattr(preprocess, "transforms", []):
        size = getattr(transform, "size", None)
        if size is not None:
            return int(size if isinstance(size, int) else max(size))
    return 224


def _pretrained_error(model: str, pretrained: str, exc: Exception) -> CurateError:
    return CurateError(
        f"could not load pretrained weights {pretrained!r} for model {model!r} "
        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
        "without network access, pass a local checkpoint file: --pretrained /path/to/weights"
    )


def default_pretrained(model: str) -> str:
    """open_clip's first listed tag for a model name; a model-config file or a timm model has
    no default (its weights must be named)."""
    if model.endswith(".json") or model.startswith(TIMM_PREFIX):
        raise CurateError(
            f"--pretrained is required with --model {model}: a local checkpoint file, a tag, "
            "or 'random' (untrained weights)"
        )
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(model)
    if not tags:
        raise CurateError(f"open_clip lists no pretrained weights for {model!r}: pass --pretrained")
    return tags[0]


def check_device(device: str) -> None:
    """A device torch knows and this machine has."""
    try:
        found = torch.device(device)
    except (RuntimeError, TypeError):
        raise CurateError(f"--device {device!r} is not a device: use cpu, cuda or cuda:N") from None
    if found.type == "cuda":
        if not torch.cuda.is_available():
            raise CurateError(f"--device {device}: no CUDA GPU is available on this machine")
        if found.index is not None and found.index >= torch.cuda.device_count():
            raise CurateError(f"--device {device}: this machine has "
                              f"{torch.cuda.device_count()} CUDA devices")  # fmt: skip
    elif found.type not in ("cpu", "mps"):
        raise CurateError(f"--device {device}: curate runs on cpu or cuda")


def _hub_reachable() -> bool:
    try:
        socket.create_connection(HUB, timeout=HUB_TIMEOUT_S).close()
    except OSError:
        return False
    return True


@contextmanager
def _quiet(asked: bool) -> Iterator[None]:
    """No "model initialized randomly" warning when untrained weights were asked for."""
    if asked:
        logging.disable(logging.WARNING)
    try:
        yield
    finally:
        if asked:
            logging.disable(logging.NOTSET)


@contextmanager
def _offline_unless_hub_reachable() -> Iterator[None]:
    """Weights by tag: when the hub cannot be reached, look only in the local cache, so a
    missing file fails at once instead of after a minute of retries."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or _hub_reachable():
        yield
        return
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = False


def _open_clip_name(model: str) -> str:
    """A model name, or the stem of a model-config JSON registered with open_clip."""
    import open_clip

    if not model.endswith(".json"):
        if model not in open_clip.list_models():
            raise CurateError(
                f"unknown model {model!r}: give an open_clip model name (see "
                "open_clip.list_models()), a model-config JSON file, or timm:NAME"
            )
        return model
    path = Path(model)
    if not path.is_file():
        raise CurateError(f"model config file not found: {model}")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CurateError(f"model config {model} is not valid JSON: {exc}") from exc
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in config]
    if missing:
        raise CurateError(f"model config {model} lacks {', '.join(missing)}")
    open_clip.add_model_config(path)
    return path.stem


def _load_open_clip(model: str, pretrained: str, device: str) -> Embedder:
    import open_clip

    name = _open_clip_name(model)
    weights = None if pretrained == RANDOM_WEIGHTS else pretrained
    try:
        with _offline_unless_hub_reachable(), _quiet(weights is None):
            clip, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=weights, device=device
            )
    except Exception as exc:
        raise _pretrained_error(model, pretrained, exc) from exc
    clip.eval().to(memory_format=torch.channels_last)
    return Embedder(clip, *_split_preprocess(preprocess, device), _image_size(preprocess),
                    device, open_clip.get_tokenizer(name))  # fmt: skip


def _load_timm(model: str, pretrained: str, device: str) -> Embedder:
    import timm
    from timm.data import create_transform, resolve_model_data_config

    name = model[len(TIMM_PREFIX) :]
    if name not in timm.list_models():
        raise CurateError(f"unknown timm model {name!r}")
    kwargs: dict = {"num_classes": 0}
    if pretrained == RANDOM_WEIGHTS:
        kwargs["pretrained"] = False
    elif os.path.isfile(pretrained):
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": pretrained})
    else:
        name, kwargs["pretrained"] = f"{name}.{pretrained}", True
    try:
        with _offline_unless_hub_reachable():
            net = timm.create_model(name, **kwargs)
    except Exception as exc:
        raise _pretrained_error(model, pretrained, exc) from exc
    net.eval().to(device, memory_format=torch.channels_last)
    config = resolve_model_data_config(net)
    preprocess = create_transform(**config, is_training=False)
    return Embedder(net, *_split_preprocess(preprocess, device),
                    int(max(config["input_size"][1:])), device)  # fmt: skip


@functools.lru_cache(maxsize=2)
def load_embedder(model: str, pretrained: str, device: str = "cpu", seed: int = 0) -> Embedder:
    """`model`: open_clip name, open_clip model-config JSON path, or `timm:NAME`;
    `pretrained`: a tag, a local checkpoint file, or `random` (untrained weights drawn from
    `seed`, so every worker process builds the same model)."""
    if _looks_like_path(pretrained) and not os.path.isfile(pretrained):
        raise CurateError(f"checkpoint file not found: {pretrained}")
    check_device(device)
    load = _load_timm if model.startswith(TIMM_PREFIX) else _load_open_clip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return load(model, pretrained, device)


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors", ".th"))
