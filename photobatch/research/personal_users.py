"""Synthetic Instagram users for the personalization benchmark, built from shared data only.

Their photos and captions are real (Flickr8k); their hashtag habits follow real Instagram
co-occurrence (HARRISON). The recipe is in the docstring of ``photobatch.research.personal``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from tqdm import tqdm

from photobatch.core.text import FUNCTION_WORDS, tokenize

# Caption words that are HARRISON tags but not what a photo shows: function words, and where or
# how a thing is ("front", "top") or who ("young", "little").
NOT_CONTENT = FUNCTION_WORDS | frozenset(["front", "little", "look", "next", "top", "young"])


HOLDOUT = "holdout"


@dataclass(frozen=True)
class Harrison:
    """Real Instagram hashtag statistics: per-post tag sets and category folders."""

    posts: list[frozenset[str]]
    categories: list[str]
    df: Counter[str]

    @classmethod
    def read(cls, folder: Path) -> Harrison:
        tags = (folder / "tag_list.txt").read_text(encoding="utf-8").splitlines()
        paths = (folder / "data_list.txt").read_text(encoding="utf-8").splitlines()
        posts = [frozenset(line.split()) for line in tags]
        cats = [p.split("/")[1] for p in paths]
        return cls(posts, cats, Counter(t for p in posts for t in p))

    def following(self, tag: str, k: int, min_df: int = 30) -> list[str]:
        """The ``k`` tags with the highest P(h | tag) (ties by name)."""
        counts = Counter(h for p in self.posts if tag in p for h in p if h != tag)
        ok = [h for h in counts if self.df[h] >= min_df]
        return sorted(ok, key=lambda h: (-counts[h], h))[:k]

    def category_tags(self, category: str, k: int) -> list[str]:
        pairs = zip(self.posts, self.categories, strict=True)
        counts = Counter(t for post, c in pairs if c == category for t in post)
        return sorted(counts, key=lambda t: (-counts[t], t))[:k]


def content_tags(captions: Sequence[str], vocab: Counter[str]) -> list[str]:
    """HARRISON tags that at least two of a photo's captions mention, most-agreed first."""
    votes: Counter[str] = Counter()
    for caption in captions:
        found = set()
        for w in tokenize(caption):
            if w.endswith("s") and w[:-1] in vocab:
                w = w[:-1]
            if w in vocab and w not in NOT_CONTENT:
                found.add(w)
        votes.update(found)
    return sorted((t for t, n in votes.items() if n >= 2), key=lambda t: (-votes[t], -vocab[t], t))


@dataclass(frozen=True)
class BenchPost:
    """A synthetic post: the real photo and caption, generated tags, and the pipeline's input."""

    image: str
    taken_at: str
    caption: str
    hashtags: tuple[str, ...]
    pipeline_caption: str


@dataclass(frozen=True)
class SyntheticUser:
    name: str
    signature: tuple[str, ...]
    habits: dict[str, str]  # content tag -> habit tag
    posts: list[BenchPost]


def read_flickr(folder: Path) -> dict[str, list[str]]:
    captions: dict[str, list[str]] = defaultdict(list)
    with (folder / "captions.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            captions[row["image"]].append(row["caption"].strip())
    return dict(sorted(captions.items()))


def generate_users(
    data: Path, n_users: int = 8, posts_per_user: int = 250, seed: int = 0
) -> list[SyntheticUser]:
    """``n_users`` benchmark users and the holdout user, deterministic under ``seed``.

    ``data`` is the research data folder (``photobatch.research.data``).
    """
    harrison = Harrison.read(data / "harrison")
    flickr = read_flickr(data / "flickr8k")
    tags_of = {im: content_tags(caps, harrison.df) for im, caps in flickr.items()}
    photos = [im for im, tags in tags_of.items() if tags and len(flickr[im]) == 5]
    by_tag: dict[str, list[str]] = defaultdict(list)
    for im in photos:
        for t in tags_of[im]:
            by_tag[t].append(im)
    frequent = sorted(t for t, ims in by_tag.items() if len(ims) >= 200)
    used: set[str] = set()
    users = []
    names = [*(f"bench-{i}" for i in range(n_users)), HOLDOUT]
    for number, name in enumerate(names):
        user_seed = seed * 1000 + (10_000 if name == HOLDOUT else number)
        rng = random.Random(user_seed)
        interests = rng.sample(frequent, 2)
        themed = [im for im in photos if im not in used and set(tags_of[im]) & set(interests)]
        n_themed = min(int(0.6 * posts_per_user), len(themed))
        chosen = rng.sample(themed, n_themed)
        rest = [im for im in photos if im not in used and im not in set(chosen)]
        chosen += rng.sample(rest, posts_per_user - n_themed)
        used.update(chosen)
        freq = Counter(t for im in chosen for t in tags_of[im][:3])
        top_content = [t for t, _ in freq.most_common(6)]
        category = rng.choice(sorted(set(harrison.categories)))
        pool = [t for t in harrison.category_tags(category, 30) if t != category and t not in freq][
            :15
        ]
        signature = tuple(rng.sample(pool, 2))
        habits: dict[str, str] = {}
        for c in top_content:
            options = [
                h
                for h in harrison.following(c, 12)
                if h not in signature and h not in habits.values() and h not in top_content
            ]
            if options:
                habits[c] = rng.choice(options)
        popular = sorted(harrison.df)
        weights = [harrison.df[t] for t in popular]
        voice = number % 5
        start = date(2019, 1, 1)
        posts = []
        for day, im in enumerate(chosen):
            content = tags_of[im][:3]
            tags = [content[0], *(t for t in content[1:] if rng.random() < 0.8)]
            tags += [habits[c] for c in content if c in habits and rng.random() < 0.85]
            if rng.random() < 0.9:
                tags.append(signature[0])
            if rng.random() < 0.6:
                tags.append(signature[1])
            if rng.random() < 0.4:
                tags.append(rng.choices(popular, weights)[0])
            tags = list(dict.fromkeys(tags))
            rng.shuffle(tags)
            posts.append(
                BenchPost(
                    image=im,
                    taken_at=(start + timedelta(days=2 * day)).isoformat(),
                    caption=flickr[im][voice],
                    hashtags=tuple(tags),
                    pipeline_caption=flickr[im][(voice + 1) % 5],
                )
            )
        users.append(SyntheticUser(name, signature, habits, posts))
    return users


def photo_features(
    images: Path, names: Sequence[str], cache_dir: Path, batch_size: int = 32
) -> tuple[np.ndarray, list[list[str]]]:
    """Pooled EfficientNet-Lite0 embeddings (N, 1280) and top-5 ImageNet labels, cached.

    Computed once with the project's encoder and preprocessing; the cache file is keyed by the
    image list so a different benchmark never reads stale vectors.
    """
    import torch

    from photobatch.library.imaging import load_image, to_tensor
    from photobatch.models.encoder import ImageEncoder, image_encoder

    key = hashlib.sha256(json.dumps([ImageEncoder.name, list(names)]).encode()).hexdigest()[:16]
    path = cache_dir / f"personal-bench-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return data["pooled"].astype(np.float32), json.loads(str(data["labels"]))
    encoder = image_encoder("cpu")
    pooled, labels = [], []
    for start in tqdm(range(0, len(names), batch_size), desc="embedding photos"):
        chunk = names[start : start + batch_size]
        batch = torch.stack([to_tensor(load_image(images / n)) for n in chunk])
        out = encoder.encode(batch)
        pooled.append(out.pooled.numpy())
        labels += encoder.labels(out.logits, 5)
    array = np.concatenate(pooled).astype(np.float16)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, pooled=array, labels=np.array(json.dumps(labels)))
    tmp.replace(path)
    return array.astype(np.float32), labels
