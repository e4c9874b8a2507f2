"""RAW files: decoded from the embedded preview through LibRaw, upright, with their EXIF.

There are no camera RAW samples in ../shared and nothing may be downloaded, so the files are
DNGs written by ``tests/dng.py`` around real photos; LibRaw, exiftool and exifread all read them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dng import write_dng
from PIL import Image

from photobatch.library.imaging import ImageError, load_image
from photobatch.library.metadata import read_metadata


def real_photo(research_data: Path) -> Image.Image:
    return Image.open(research_data / "exif-samples" / "jpg" / "gps" / "DSCN0010.jpg")


def test_preview_is_decoded_and_turned_upright(tmp_path: Path, research_data: Path) -> None:
    source = real_photo(research_data).convert("RGB")
    path = tmp_path / "IMG_1234.DNG"
    write_dng(path, source, orientation=6)
    img = load_image(path)
    expected = source.transpose(Image.Transpose.ROTATE_270)
    assert img.size == (source.height // 2, source.width // 2)  # turned, and draft-scaled
    diff = np.abs(
        np.asarray(img.resize((64, 48)), dtype=float)
        - np.asarray(expected.resize((64, 48)), dtype=float)
    )
    assert diff.mean() < 8  # the same photo, turned 90 degrees clockwise as the camera said


@pytest.mark.parametrize("preview", [None, (120, 90)], ids=["no preview", "tiny preview"])
def test_without_a_usable_preview_the_raw_data_is_developed(
    tmp_path: Path, research_data: Path, preview: tuple[int, int] | None
) -> None:
    path = tmp_path / "IMG_1235.dng"
    small = real_photo(research_data).resize(preview) if preview else None
    write_dng(path, small, raw_size=(64, 48))
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (32, 24)  # LibRaw's half-size develop


def test_exif_and_sensor_size_of_a_raw_file(tmp_path: Path, research_data: Path) -> None:
    path = tmp_path / "IMG_1236.DNG"
    write_dng(path, real_photo(research_data), orientation=8, model="EOS R5", raw_size=(96, 64))
    meta = read_metadata(path)
    assert (meta.camera_make, meta.camera_model) == ("Canon", "EOS R5")
    assert meta.taken_at == "2021-05-06T07:08:09"
    assert (meta.orientation, meta.width, meta.height) == (8, 64, 96)


def test_broken_raw_files_are_image_errors_naming_the_file(
    tmp_path: Path, research_data: Path
) -> None:
    good = tmp_path / "good.NEF"
    write_dng(good, real_photo(research_data))
    data = good.read_bytes()
    for name, content in {
        "cut.NEF": data[:3000],
        "empty.CR2": b"",
        "text.ORF": b"hello" * 50,
    }.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ImageError) as info:
            load_image(path)
        assert str(path) in str(info.value)
        assert read_metadata(path).warning  # metadata never raises, it says what went wrong
