"""The local engine: where stages 3 to 5 (``scan.stages``) run for a scan in this process.

Hashing, EXIF and decoding run in a thread pool (Pillow, hashlib and file reads release the GIL,
so a few threads keep the models fed), the models once per batch in this process. When the models
run on CUDA, the pool only reads JPEGs and the GPU decodes them
(``photobatch.library.gpu_decoding``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING

from photobatch.core.config import Config
from photobatch.core.records import PhotoMetadata
from photobatch.scan.stages import Batch, Item, analyse, decode, identify

if TYPE_CHECKING:
    from photobatch.library.gpu_decoding import GpuJpegDecoder
    from photobatch.models.stack import Analyzer

# Batches decoded ahead while the models load (32 photos of 224x224 float32 are 19 MB).
LOAD_AHEAD = 4
# Files the GPU decoder may take (it checks their headers); the names are matched like discovery.
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})


class LocalEngine:
    """Runs stages 3 to 5 in this process: the pool hashes a batch once the driver is ready to
    pick from it and decodes one batch ahead of the models (``LOAD_AHEAD`` while they load), and
    the models run in the driver's thread."""

    identify_ahead = 0  # the pool's threads decode ahead instead

    def __init__(self, config: Config, analyzer: Callable[[], Analyzer]) -> None:
        self.config = config
        self._analyzer = analyzer
        self._pool: ThreadPoolExecutor | None = None
        self._warm_up: threading.Thread | None = None
        self._on_gpu = False  # set once the models are loaded on CUDA
        self._gpu_jpeg: GpuJpegDecoder | None = None

    @contextmanager
    def running(self) -> Iterator[None]:
        """The thread pool, for one pass through the stages."""
        with ThreadPoolExecutor(self.config.workers) as pool:
            self._pool = pool
            try:
                yield
            finally:
                self._pool = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        assert self._pool is not None, "the local engine runs stages only while running()"
        return self._pool

    def close(self) -> None:
        """Nothing to release: the pool lives for one pass."""

    def batches(self, todo: list[Item]) -> Iterator[list[Item]]:
        """``todo`` in batches: the CPU's size until the models are loaded on a GPU, then its."""
        rest = iter(todo)
        while True:
            size = self.config.gpu_batch_size if self._on_gpu else self.config.batch_size
            batch = list(islice(rest, size))
            if not batch:
                return
            yield batch

    def identify_batch(self, items: list[Item]) -> Callable[[], None]:
        """Hash a batch and read its EXIF in the pool."""
        hashing = [self.pool.submit(identify, item) for item in items]
        return partial(_wait, hashing)

    def analyse_batch(self, items: list[Item], picked: list[Item]) -> Callable[[], Batch]:
        """Start decoding ``picked`` in the pool (and loading the models, the first time); the
        models run when the batch is waited for."""
        if picked:
            self._start_warm_up()
        # JPEGs go to the GPU decoder once the models run there; until then (and for every
        # other format) the pool decodes with Pillow.
        gpu = self._gpu_jpeg is not None and self._models_ready()

        def step(item: Item) -> Callable[[Item], None]:
            on_gpu = gpu and item.found.path.suffix.lower() in JPEG_SUFFIXES
            return read_for_gpu if on_gpu else decode

        decoding = [self.pool.submit(step(item), item) for item in picked]
        return partial(self._finish, items, picked, decoding)

    def analyse_ahead(self) -> int:
        """One batch decodes while the models work; more while they are still loading, so the
        seconds of importing torch and loading weights are spent decoding instead of waiting."""
        return 1 if self._models_ready() else LOAD_AHEAD

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

    def _finish(self, items: list[Item], picked: list[Item], decoding: list[Future[None]]) -> Batch:
        """Run the models on a batch once it is decoded."""
        _wait(decoding)
        self._decode_on_gpu([item for item in picked if item.jpeg is not None])
        decoded = [item for item in picked if item.image is not None]
        if decoded:
            analyse(self._analyzer(), decoded)
        return Batch(items, picked)

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


def read_for_gpu(item: Item) -> None:
    """Stage 4's share of the pool when the GPU decodes: read a JPEG for it; odd ones are decoded
    by Pillow."""
    from photobatch.library.gpu_decoding import read_jpeg

    item.jpeg = read_jpeg(item.found.path)
    if item.jpeg is None:
        decode(item)


def _wait(futures: list[Future[None]]) -> None:
    for future in futures:
        future.result()
