"""Encoder feature maps for a caption data set, computed once and cached as float16 on disk.

The encoder is frozen while the captioner trains, so every epoch (and every evaluation) would
recompute identical maps; caching them turns an epoch from minutes of convolutions into seconds.
A cache file is keyed by the encoder, the image folder and the list of images, and is written under
a temporary name first so an interrupted run never leaves a half-filled cache behind; it is read
only while it matches the sha256 recorded when it was written, and computed again otherwise.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from photobatch.core.atomic import intact, record_digest

FEATURE_SHAPE = (1280, 7, 7)


class _ImageFiles(Dataset):
    """Decoded, squashed, normalized images, in loader workers."""

    def __init__(self, folder: Path, names: Sequence[str]) -> None:
        self.folder = folder
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> torch.Tensor:
        from photobatch.library.imaging import load_image, to_tensor

        return to_tensor(load_image(self.folder / self.names[i]))


def cache_key(encoder_name: str, images: Path, names: Sequence[str]) -> str:
    """Stable key of what the cache holds (a changed list or folder is a different cache)."""
    digest = hashlib.sha256(json.dumps([encoder_name, str(images.resolve()), list(names)]).encode())
    return digest.hexdigest()[:16]


def encode_images(
    images: Path,
    names: Sequence[str],
    cache_dir: Path,
    device: torch.device,
    batch_size: int = 64,
    workers: int = 2,
) -> np.ndarray:
    """Feature maps ``(len(names), 1280, 7, 7)`` float16 for the named images, from the cache.

    Missing caches are computed with the process's shared encoder; the array is memory-mapped.
    """
    from photobatch.models.encoder import image_encoder

    encoder = image_encoder(str(device))
    path = cache_dir / f"features-{cache_key(encoder.name, images, names)}.npy"
    if intact(path):
        return np.load(path, mmap_mode="r")
    cache_dir.mkdir(parents=True, exist_ok=True)
    encoder.load()
    partial = path.with_name(path.name + ".partial")
    out = np.lib.format.open_memmap(
        partial, mode="w+", dtype=np.float16, shape=(len(names), *FEATURE_SHAPE)
    )
    loader = DataLoader(
        _ImageFiles(images, names), batch_size=batch_size, num_workers=workers, shuffle=False
    )
    done = 0
    with torch.inference_mode():
        for batch in tqdm(loader, desc="encoding images", unit="batch"):
            maps = encoder.encode(batch.to(device)).feature_map
            out[done : done + len(maps)] = maps.to(torch.float16).cpu().numpy()
            done += len(maps)
    out.flush()
    del out
    partial.replace(path)
    record_digest(path)
    return np.load(path, mmap_mode="r")


def classify_features(
    maps: np.ndarray, device: torch.device, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled embeddings ``(N, 1280)`` and ImageNet logits ``(N, 1000)`` of cached feature maps,
    from the encoder's own pooling and classifier (no convolutions run again)."""
    from photobatch.models.encoder import ImageEncoder

    encoder = ImageEncoder(device)
    encoder.load()
    pooled, logits = [], []
    with torch.inference_mode():
        for lo in range(0, len(maps), chunk):
            batch = torch.from_numpy(np.asarray(maps[lo : lo + chunk], dtype=np.float32))
            p, q = encoder.model.classify(batch.to(encoder.device))
            pooled.append(p.float().cpu().numpy())
            logits.append(q.float().cpu().numpy())
    if not pooled:
        return np.zeros((0, FEATURE_SHAPE[0]), np.float32), np.zeros((0, 1000), np.float32)
    return np.concatenate(pooled), np.concatenate(logits)
