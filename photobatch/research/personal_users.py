"""Synthetic Instagram users for the personalization benchmark, built from shared data only.

Their photos and captions are real (Flickr8k); their hashtag habits follow real Instagram
co-occurrence (HARRISON). The recipe is in the docstring of ``photobatch.research.personal``.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from tqdm import tqdm

from photobatch.core.atomic import intact, record_digest
from photobatch.core.config import Config
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
    """A synthetic post: the real photo and caption, and generated tags."""

    image: str
    taken_at: str
    caption: str
    hashtags: tuple[str, ...]
    content: tuple[str, ...]  # what the photo shows: its content tags


@dataclass(frozen=True)
class SyntheticUser:
    name: str
    signature: tuple[str, ...]
    habits: dict[str, str]  # content tag -> habit tag
    posts: list[BenchPost]
    others: tuple[BenchPost, ...] = ()  # a single-topic user's photos of other subjects


def read_flickr(folder: Path) -> dict[str, list[str]]:
    captions: dict[str, list[str]] = defaultdict(list)
    with (folder / "captions.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            captions[row["image"]].append(row["caption"].strip())
    return dict(sorted(captions.items()))


TOPIC = "dog"
# The single-topic user's own tags and how often each is on a post (a dog lover's).
TOPIC_TAGS = {"goodboy": 0.9, "dogmom": 0.8, "biscuitthedog": 0.5}
TOPIC_USER = "topic-dog"


def generate_users(
    data: Path,
    n_users: int = 8,
    posts_per_user: int = 250,
    seed: int = 0,
    topic_posts: int = 0,
    other_photos: int = 40,
) -> list[SyntheticUser]:
    """``n_users`` benchmark users and the holdout user, deterministic under ``seed``; with
    ``topic_posts``, then a single-topic user: that many posts, each a photo of a dog with
    ``TOPIC_TAGS``, and ``other_photos`` photos in which no caption mentions a dog. ``data`` is
    the research data folder (``photobatch.research.data``)."""
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
            posts.append(_post(im, day, tags, rng, flickr, tags_of, voice))
        users.append(SyntheticUser(name, signature, habits, posts))
    if topic_posts:
        rng = random.Random(seed * 1000 + 20_000)
        dogs = [im for im in photos if im not in used and tags_of[im][0] == TOPIC]
        others = [
            im
            for im in photos
            if im not in used and not any(TOPIC in tokenize(c) for c in flickr[im])
        ]
        posts = []
        for day, im in enumerate(rng.sample(dogs, topic_posts)):
            content = tags_of[im][:3]
            tags = [content[0], *(t for t in content[1:] if rng.random() < 0.8)]
            tags += [t for t, share in TOPIC_TAGS.items() if rng.random() < share]
            posts.append(_post(im, day, tags, rng, flickr, tags_of, 0))
        strangers = [
            _post(im, topic_posts + day, tags_of[im][:3], rng, flickr, tags_of, 0)
            for day, im in enumerate(rng.sample(others, other_photos))
        ]
        users.append(SyntheticUser(TOPIC_USER, (), {}, posts, tuple(strangers)))
    return users


def _post(
    image: str,
    day: int,
    tags: list[str],
    rng: random.Random,
    flickr: dict[str, list[str]],
    tags_of: dict[str, list[str]],
    voice: int,
) -> BenchPost:
    """A post of ``image`` on the ``day``-th posting day (two days apart), tags in random order;
    the text is caption slot ``voice``."""
    tags = list(dict.fromkeys(tags))
    rng.shuffle(tags)
    return BenchPost(
        image=image,
        taken_at=(date(2019, 1, 1) + timedelta(days=2 * day)).isoformat(),
        caption=flickr[image][voice],
        hashtags=tuple(tags),
        content=tuple(tags_of[image][:3]),
    )


def photo_features(
    images: Path, names: Sequence[str], cache_dir: Path, config: Config, batch_size: int = 32
) -> tuple[np.ndarray, list[list[str]]]:
    """Pooled EfficientNet-Lite0 embeddings (N, 1280) and the scan's candidates, cached.

    Computed once per photo by the model stack a scan runs on ``config`` (on the CPU), so the
    benchmark's non-personalized tags are a scan's: grounded hashtags, best first. The cache holds
    every photo any benchmark asked for, by name, so benchmarks of other sizes only analyse the
    photos they add; it is named after the stack's versions string, so new weights or settings
    never read stale results; and only while it is intact (its recorded sha256).
    """
    from photobatch.library.imaging import load_image, to_tensor
    from photobatch.models.stack import model_set

    analyzer = model_set(config, "cpu")
    path = cache_dir / f"personal-bench-{analyzer.models}.npz"
    known: dict[str, tuple[np.ndarray, list[str]]] = {}
    if intact(path):
        with np.load(path, allow_pickle=False) as data:
            cached = zip(
                json.loads(str(data["names"])),
                data["pooled"],
                json.loads(str(data["candidates"])),
                strict=True,
            )
            known = {n: (v, tags) for n, v, tags in cached}
    todo = [n for n in dict.fromkeys(names) if n not in known]
    if todo:
        for start in tqdm(range(0, len(todo), batch_size), desc="analysing photos"):
            chunk = todo[start : start + batch_size]
            analyses = analyzer.analyze(chunk, [to_tensor(load_image(images / n)) for n in chunk])
            known.update(
                (n, (np.frombuffer(a.embedding, "<f2"), a.candidates))
                for n, a in zip(chunk, analyses, strict=True)
            )
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        every = sorted(known)
        np.savez_compressed(
            tmp,
            names=np.array(json.dumps(every)),
            pooled=np.stack([known[n][0] for n in every]),
            candidates=np.array(json.dumps([known[n][1] for n in every])),
        )
        tmp.replace(path)
        record_digest(path)
    pooled = np.stack([known[n][0] for n in names]).astype(np.float32)
    return pooled, [known[n][1] for n in names]
