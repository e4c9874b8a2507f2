"""The GPU decoding path: what runs on any machine here, and nvJPEG itself where there is CUDA."""

from __future__ import annotations

import io
import logging
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from photobatch.core.config import load_config
from photobatch.core.records import Analysis
from photobatch.library import gpu_decoding
from photobatch.library.gpu_decoding import gpu_jpeg_decoder, read_jpeg, squash, upright
from photobatch.library.imaging import load_image, to_tensor
from photobatch.library.index import Index
from photobatch.scan.pipeline import Scanner

ORIENTATION_TAG = 0x0112


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_like_pillow(orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 3, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(buffer)))
    turned = upright(torch.from_numpy(pixels).permute(2, 0, 1), orientation)
    assert np.array_equal(turned.permute(1, 2, 0).numpy(), expected)


def test_squash_gives_the_encoders_input() -> None:
    gray = torch.full((3, 3000, 4000), 127, dtype=torch.uint8)
    out = squash(gray)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    assert float(out.abs().max()) < 1e-5  # 127 is the normalisation's zero


def test_squash_agrees_with_the_cpu_path_on_a_real_photo(research_data: Path) -> None:
    photo = next((research_data / "flickr8k" / "images").glob("*.jpg"))
    with Image.open(photo) as im:
        pixels = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
    gap = (squash(pixels) - to_tensor(load_image(photo))).abs().mean()
    assert float(gap) < 0.02  # resampling noise only: about 2.5 of 255 levels


def test_read_jpeg_takes_plain_jpegs_and_leaves_the_rest_to_pillow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rgb = tmp_path / "rgb.jpg"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(rgb)
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (64, 48), (0, 90, 90, 10)).save(cmyk)
    png = tmp_path / "really-a-png.jpg"
    Image.new("RGB", (64, 48)).save(png, format="PNG")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff not a jpeg at all")

    assert read_jpeg(rgb) == rgb.read_bytes()
    for other in (cmyk, png, garbage, tmp_path / "vanished.jpg"):
        assert read_jpeg(other) is None, other
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64x48 is now a "bomb"
    assert read_jpeg(rgb) is None


def test_no_gpu_decoder_off_cuda() -> None:
    assert gpu_jpeg_decoder(torch.device("cpu")) is None


def test_cuda_without_torchvision_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class NotInstalled:
        """Finds no torchvision, as Python does where it was never installed."""

        def find_spec(self, name: str, *args: object) -> None:
            if name == "torchvision":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [NotInstalled(), *sys.meta_path])
    with caplog.at_level(logging.WARNING):
        assert gpu_jpeg_decoder(torch.device("cuda")) is None  # the scan decodes with Pillow
    assert [r.getMessage() for r in caplog.records] == [
        "JPEGs are decoded on the CPU, not on cuda: torchvision is not installed "
        "(pip install 'photobatch[gpu]')"
    ]


class CudaStandIn:
    """Models that claim CUDA, so the scan takes the GPU path; results are fixed."""

    device = torch.device("cuda")
    models = "stand-in"
    personal = SimpleNamespace(id=None)  # no personal head

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def load(self) -> None:
        """Nothing to load."""

    def describe(self, hashes: list[str], images: list[torch.Tensor]) -> list[Analysis]:
        assert all(image.shape == (3, 224, 224) for image in images)
        self.batch_sizes.append(len(images))
        tags = ["dog", "pets", "cute"]
        return [Analysis(h, ["dog"], "a dog", tags, models=self.models) for h in hashes]

    def repersonalize(self, analyses: list[Analysis]) -> list[Analysis]:
        return analyses  # no personal head


class RecordingDecoder:
    """Decodes on the CPU like the GPU decoder would, and fails the files it is told to."""

    def __init__(self, fail: set[bytes]) -> None:
        self.fail = fail
        self.seen: list[bytes] = []

    def decode(self, blobs: list[bytes], orientations: list[int]) -> list[torch.Tensor | None]:
        self.seen.extend(blobs)
        out: list[torch.Tensor | None] = []
        for blob, orientation in zip(blobs, orientations, strict=True):
            if blob in self.fail:
                out.append(None)
                continue
            with Image.open(io.BytesIO(blob)) as im:
                pixels = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
            out.append(squash(upright(pixels, orientation)))
        return out


def test_scan_on_cuda_sends_jpegs_to_the_gpu_decoder_in_large_batches(
    research_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = tmp_path / "library"
    library.mkdir()
    photos = sorted((research_data / "flickr8k" / "images").glob("*.jpg"))[:7]
    for photo in photos:
        shutil.copyfile(photo, library / photo.name)
    Image.new("RGB", (300, 200), (0, 128, 0)).save(library / "drawing.png")
    Image.new("CMYK", (300, 200), (0, 90, 90, 10)).save(library / "print.jpg")
    failing = photos[0].read_bytes()  # nvJPEG "fails" this one: Pillow must step in
    decoder = RecordingDecoder({failing})
    monkeypatch.setattr(gpu_decoding, "gpu_jpeg_decoder", lambda device: decoder)

    config = load_config(None, index=tmp_path / "index.db")
    config = replace(config, batch_size=2, gpu_batch_size=4)
    index = Index(config.index)
    models = CudaStandIn()
    scanner = Scanner(
        config, index, sidecars=False, progress=False, analyzer_factory=lambda: models
    )
    scanner.engine.load_models()  # as the warm-up thread would, before the scan starts deciding
    summary = scanner.scan([library])

    assert (summary.found, summary.analyzed, summary.errors) == (9, 9, 0)
    assert sorted(decoder.seen) == sorted(p.read_bytes() for p in photos)  # no PNG, no CMYK
    assert models.batch_sizes == [4, 4, 1]  # the GPU's batch size, not the CPU's 2
    index.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="nvJPEG needs a CUDA device")
def test_nvjpeg_decodes_like_pillow_and_reports_what_it_cannot(
    research_data: Path, tmp_path: Path
) -> None:
    from photobatch.library.metadata import read_metadata

    decoder = gpu_jpeg_decoder(torch.device("cuda"))
    assert decoder is not None, "torchvision cannot decode JPEGs on this CUDA device"
    photos = sorted((research_data / "flickr8k" / "images").glob("*.jpg"))[:4]
    photos += sorted((research_data / "exif-samples" / "jpg" / "orientation").glob("*.jpg"))
    photos = [p for p in photos if read_jpeg(p) is not None]
    broken = tmp_path / "truncated.jpg"
    broken.write_bytes(photos[0].read_bytes()[:200])
    blobs = [p.read_bytes() for p in photos] + [broken.read_bytes()]
    orientations = [read_metadata(p).orientation for p in photos] + [1]
    decoded = decoder.decode(blobs, orientations)
    assert decoded[-1] is None
    for photo, image in zip(photos, decoded, strict=False):
        assert image is not None, photo
        gap = (image.cpu() - to_tensor(load_image(photo))).abs().mean()
        assert float(gap) < 0.03, photo  # upright and squashed the same way as on the CPU
