"""The local engine: a scan's heavy work in this process.

Hashing, EXIF and decoding run in a thread pool (Pillow, hashlib and file reads release the GIL),
the models once per batch. When the models run on CUDA, the pool only reads JPEGs and the GPU
decodes them (``photobatch.library.gpu_decoding``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

from photobatch.core.config import Config
from photobatch.core.records import Analysis, PhotoMetadata
from photobatch.scan.summary import ScanError
from photobatch.scan.work import (
    JPEG_SUFFIXES,
    Item,
    Pick,
    Processed,
    decode,
    identify,
    read_for_gpu,
)

if TYPE_CHECKING:
    from photobatch.library.gpu_decoding import GpuJpegDecoder
    from photobatch.models.stack import Analyzer

# Batches decoded ahead while the models load (32 photos of 224x224 float32 are 19 MB).
LOAD_AHEAD = 4


@dataclass
class Batch:
    """A batch whose photos are being decoded in the pool while the previous one is analysed."""

    items: list[Item]
    to_decode: list[Item]
    decoding: list[Future[None]]


class LocalEngine:
    """Identifies, decodes and analyses batches in this process, one batch ahead of the models."""

    def __init__(self, config: Config, analyzer: Callable[[], Analyzer]) -> None:
        self.config = config
        self._analyzer = analyzer
        self._warm_up: threading.Thread | None = None
        self._on_gpu = False  # set once the models are loaded on CUDA
        self._gpu_jpeg: GpuJpegDecoder | None = None

    def process(self, todo: list[Item], pick: Pick) -> Iterator[Processed]:
        """Every item of ``todo``, in batches: identified, and analysed where ``pick`` says."""
        with ThreadPoolExecutor(self.config.workers) as pool:
            # The pool decodes ahead while the models work: one batch ahead once they run, up
            # to LOAD_AHEAD batches while they are still loading, so the seconds of importing
            # torch and loading weights are spent decoding instead of waiting.
            pending: deque[Batch] = deque()
            for items in self._batches(todo):
                pending.append(self._prepare(items, pool, pick))
                ahead = 1 if self._models_ready() else LOAD_AHEAD
                while len(pending) > ahead:
                    yield self._finish(pending.popleft())
            while pending:
                yield self._finish(pending.popleft())

    def close(self) -> None:
        """Nothing to release: the pool lives for one ``process`` call."""

    def load_models(self) -> None:
        """Load the models; on CUDA, also the GPU JPEG decoder (when torchvision can decode)."""
        analyzer = self._analyzer()
        try:
            analyzer.load()
        except Exception:
            # Not reported from this thread: the batch's own call to the models loads again and
            # raises the same error where the scan reports it.
            return
        if analyzer.device.type == "cuda":
            from photobatch.library.gpu_decoding import gpu_jpeg_decoder

            self._gpu_jpeg = gpu_jpeg_decoder(analyzer.device)
            self._on_gpu = True

    def _start_warm_up(self) -> None:
        """Import torch and load the models in the background, once a batch needs them.

        Imports and model loading take about 3 s on a laptop CPU; started while the pool decodes
        the first batch, they are ready when that batch is, instead of adding to the scan.
        """
        if self._warm_up is None:
            self._warm_up = threading.Thread(target=self.load_models, name="photobatch-model-load")
            self._warm_up.start()

    def _models_ready(self) -> bool:
        return self._warm_up is None or not self._warm_up.is_alive()

    def _batches(self, todo: list[Item]) -> Iterator[list[Item]]:
        """``todo`` in batches: the CPU's size until the models are loaded on a GPU, then its."""
        rest = iter(todo)
        while True:
            size = self.config.gpu_batch_size if self._on_gpu else self.config.batch_size
            batch = list(islice(rest, size))
            if not batch:
                return
            yield batch

    def _prepare(self, items: list[Item], pool: ThreadPoolExecutor, pick: Pick) -> Batch:
        """Hash and read EXIF (waiting for it), then start decoding what ``pick`` chose."""
        list(pool.map(identify, items))
        to_decode = pick(items)
        if to_decode:
            self._start_warm_up()
        # JPEGs go to the GPU decoder once the models run there; until then (and for every
        # other format) the pool decodes with Pillow.
        gpu = self._gpu_jpeg is not None and self._models_ready()

        def step(item: Item) -> Callable[[Item], None]:
            on_gpu = gpu and item.found.path.suffix.lower() in JPEG_SUFFIXES
            return read_for_gpu if on_gpu else decode

        return Batch(items, to_decode, [pool.submit(step(item), item) for item in to_decode])

    def _finish(self, pending: Batch) -> Processed:
        """Run the models on a prepared batch."""
        for future in pending.decoding:
            future.result()
        to_decode = pending.to_decode
        self._decode_on_gpu([item for item in to_decode if item.jpeg is not None])
        decoded = [item for item in to_decode if item.image is not None]
        analyses: list[Analysis] = []
        if decoded:
            from photobatch.models.captioner import CheckpointError

            try:
                analyses = self._analyzer().analyze(
                    [item.sha256 for item in decoded],  # type: ignore[misc]
                    [item.image for item in decoded],  # type: ignore[misc]
                )
            except CheckpointError as exc:  # the models cannot run: no photo can be analysed
                raise ScanError(str(exc)) from exc
        for item in pending.items:
            item.image = None
        return Processed(pending.items, to_decode, analyses)

    def _decode_on_gpu(self, items: list[Item]) -> None:
        """Decode JPEGs read for the GPU there; what nvJPEG cannot decode goes through Pillow."""
        if not items:
            return
        assert self._gpu_jpeg is not None
        orientations = [(item.metadata or PhotoMetadata()).orientation for item in items]
        blobs = [item.jpeg for item in items if item.jpeg is not None]
        images = self._gpu_jpeg.decode(blobs, orientations)
        for item, image in zip(items, images, strict=True):
            item.jpeg = None
            if image is None:
                decode(item)
            else:
                item.image = image
