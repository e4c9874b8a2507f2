"""Decoding for the encoder: orientation on real samples, odd pixel modes, broken files, draft."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photobatch.library.imaging import ImageError, load_image, to_tensor


def _exif_samples(research_data: Path) -> Path:
    return research_data / "exif-samples"


def _thumb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB").resize((48, 48)), dtype=np.float32)


@pytest.mark.parametrize("kind", ["landscape", "portrait"])
def test_all_eight_orientations_decode_upright(research_data: Path, kind: str) -> None:
    folder = _exif_samples(research_data) / "jpg" / "orientation"
    upright = load_image(folder / f"{kind}_1.jpg")
    reference = _thumb(upright)
    for n in range(2, 9):
        img = load_image(folder / f"{kind}_{n}.jpg")
        assert img.size == upright.size, n
        # The samples differ only in the printed digit (~14 levels); any wrong flip or turn
        # of the upright photo costs more than 30.
        assert np.abs(_thumb(img) - reference).mean() < 20, n
        for wrong in Image.Transpose:
            assert np.abs(_thumb(img.transpose(wrong)) - reference).mean() > 30, (n, wrong)


def test_heic_decodes_upright(research_data: Path) -> None:
    folder = _exif_samples(research_data) / "heic"
    small = load_image(folder / "samplefilehub.heif")
    assert (small.mode, small.size) == ("RGB", (640, 426))
    # Stored landscape with EXIF orientation 6: libheif turns it, and it must not turn twice.
    phone = load_image(folder / "mobile" / "iphone_13_pro_max.HEIC")
    assert (phone.mode, phone.size) == ("RGB", (3024, 4032))


def test_every_sample_decodes_or_raises_image_error(research_data: Path) -> None:
    decoded = failed = 0
    for path in sorted(_exif_samples(research_data).rglob("*")):
        if not path.is_file():
            continue
        try:
            img = load_image(path)
        except ImageError as exc:
            assert str(path) in str(exc)
            failed += 1
        else:
            assert img.mode == "RGB" and min(img.size) > 0
            decoded += 1
    assert decoded >= 90  # every photo; the READMEs are the failures
    assert failed >= 1


def test_draft_mode_shrinks_a_large_jpeg_but_not_below_target(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    path = tmp_path / "big.jpg"
    Image.fromarray(noise).resize((4000, 3000)).save(path, quality=85)
    assert load_image(path).size == (500, 375)  # 1/8: libjpeg scaled while decoding
    assert load_image(path, target=400).size == (1000, 750)  # 1/4: 1/8 would give 375 < 400
    tall = tmp_path / "tall.jpg"
    Image.fromarray(noise).resize((4000, 1000)).save(tall)
    assert min(load_image(tall).size) >= 224


def test_draft_respects_orientation(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (2000, 1000), (0, 128, 255)).save(path, exif=exif)
    assert load_image(path).size == (250, 500)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("L", (300, 300), 77), (77, 77, 77)),
        (Image.new("1", (300, 300), 1), (255, 255, 255)),
        (Image.new("CMYK", (300, 300), (0, 0, 0, 0)), (255, 255, 255)),
        (Image.new("RGBA", (300, 300), (10, 20, 30, 0)), (255, 255, 255)),  # transparent: white
        (Image.new("RGBA", (300, 300), (10, 20, 30, 255)), (10, 20, 30)),
        (Image.new("LA", (300, 300), (0, 0)), (255, 255, 255)),
        (Image.new("I;16", (300, 300), 32896), (128, 128, 128)),  # scaled, not clipped to 255
        (Image.new("F", (300, 300), 0.5), (128, 128, 128)),
    ],
    ids=["L", "1", "CMYK", "RGBA-clear", "RGBA-opaque", "LA", "I16", "F"],
)
def test_pixel_modes_become_rgb(tmp_path: Path, image: Image.Image, expected: tuple) -> None:
    path = tmp_path / "img.tiff"
    image.save(path)
    img = load_image(path)
    assert img.mode == "RGB"
    assert img.getpixel((150, 150)) == expected


def test_palette_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("P", (300, 300), 1)
    img.putpalette([0, 0, 0, 200, 0, 0])
    path = tmp_path / "pal.png"
    img.save(path, transparency=1)
    assert load_image(path).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (400, 400), (0, 255, 255, 0)).save(path)
    r, g, b = load_image(path).getpixel((200, 200))
    assert r > 200 and g < 60 and b < 60  # red


def _broken_files(tmp_path: Path, research_data: Path) -> dict[str, Path]:
    good = (_exif_samples(research_data) / "jpg" / "gps" / "DSCN0010.jpg").read_bytes()
    files = {
        "truncated": good[: len(good) // 3],
        "not an image": b"just some text, not pixels\n" * 10,
        "empty": b"",
        "header only": good[:2000],
    }
    for name, data in files.items():
        (tmp_path / f"{name}.jpg").write_bytes(data)
    return {name: tmp_path / f"{name}.jpg" for name in files}


def test_broken_files_raise_image_error_naming_the_file(
    tmp_path: Path, research_data: Path
) -> None:
    for name, path in _broken_files(tmp_path, research_data).items():
        with pytest.raises(ImageError) as info:
            load_image(path)
        assert info.value.path == path, name
        assert str(path) in str(info.value), name
    with pytest.raises(ImageError, match="truncated"):
        load_image(tmp_path / "truncated.jpg")
    with pytest.raises(ImageError, match="not an image"):
        load_image(tmp_path / "not an image.jpg")
    with pytest.raises(ImageError, match="cannot read file"):
        load_image(tmp_path / "missing.jpg")


def test_decompression_bomb_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (1000, 1000)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bomb") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_to_tensor_squashes_without_cropping_and_normalises() -> None:
    img = Image.new("RGB", (600, 200), (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, 60, 200))  # a black band on the left tenth
    x = to_tensor(img)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    # Squashed, the band still covers the left tenth; a centre crop would have lost it.
    assert torch.allclose(x[:, :, :18], torch.tensor(-127 / 128), atol=1e-3)
    assert torch.allclose(x[:, :, 30:], torch.tensor(1.0), atol=1e-3)
