"""Synthetic Instagram users for the personalization benchmark, on photos no model trained on.

Their photos are real and unseen by every shipped model; their hashtag habits follow real
Instagram co-occurrence (HARRISON). The recipes are in the docstring of
``photobatch.research.personal``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
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

# The unseen photos are split in two halves by a hash of their name: users on the "choose" half
# decide every setting of the ranking, users on the "report" half are only ever reported.
CHOOSE, REPORT = "choose", "report"
SIDES = (CHOOSE, REPORT)

# A scene photo has no human caption; its post text names the scene, in the user's voice.
SCENE_VOICES = (
    "{} day",
    "At the {} again",
    "Views of the {}",
    "Another afternoon at the {}",
    "Lovely {} today",
)


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

    def names_for(self, tag: str, k: int, min_df: int = 30) -> list[str]:
        """The ``k`` tags most specific to ``tag``: highest co-occurrence squared over both
        document frequencies (what people call it, #pupper for a dog, rather than what they add)."""
        counts = Counter(h for p in self.posts if tag in p for h in p if h != tag)
        ok = [h for h in counts if self.df[h] >= min_df]
        return sorted(ok, key=lambda h: (-(counts[h] ** 2) / self.df[h], h))[:k]

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
class PoolPhoto:
    """One photo no model trained on, with what it shows."""

    name: str  # its path under the research data folder
    texts: tuple[str, ...]  # five human captions; for a scene photo, its voices
    content: tuple[str, ...]  # content tags, most agreed first
    side: str  # CHOOSE or REPORT

    @property
    def scene(self) -> bool:
        return self.name.startswith("broad/scenes/")


def side_of(name: str) -> str:
    """The half a photo belongs to, fixed by its name."""
    return (CHOOSE, REPORT)[hashlib.sha256(name.encode()).digest()[0] % 2]


def _captions(path: Path) -> dict[str, list[str]]:
    captions: dict[str, list[str]] = defaultdict(list)
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            captions[row["image"]].append(row["caption"].strip())
    return dict(sorted(captions.items()))


def unseen_photos(data: Path, harrison: Harrison) -> list[PoolPhoto]:
    """The photos none of the shipped models trained on, each with its content tags.

    - Flickr8k ``val`` (the captioner and the grounding heads trained on ``train``; ``val`` chose
      the captioner's epoch and, with coco-dev, the grounding thresholds);
    - ``broad/coco-dev`` (used only to choose the grounding thresholds);
    - the held-out quarter of ``broad/scenes`` (the scene head trained on the other three; the
      rule is the one ``train grounding`` uses).

    ``broad/imagenet`` is left out: the grounding heads trained on every photo of it. Photos
    without a content tag two captions agree on are left out too.
    """
    from photobatch.training.grounding import scene_set

    pool = []
    splits = {}
    with (data / "flickr8k" / "splits.csv").open(encoding="utf-8") as f:
        splits = {row["image"]: row["split"] for row in csv.DictReader(f)}
    sources = [
        ("flickr8k/images", _captions(data / "flickr8k" / "captions.csv"), {"val"}),
        ("broad/coco-dev", _captions(data / "broad" / "coco-dev" / "captions.csv"), None),
    ]
    for folder, captions, keep in sources:
        for image, texts in captions.items():
            if keep is not None and splits.get(image) not in keep:
                continue
            tags = content_tags(texts, harrison.df)
            if tags and len(texts) >= 5:
                name = f"{folder}/{image}"
                pool.append(PoolPhoto(name, tuple(texts[:5]), tuple(tags), side_of(name)))
    names, labels, held_out = scene_set(data / "broad" / "scenes")
    for image, label, held in zip(names, labels, held_out, strict=True):
        if held:
            name = f"broad/scenes/{image}"
            texts = tuple(voice.format(label) for voice in SCENE_VOICES)
            pool.append(PoolPhoto(name, texts, (label.replace(" ", ""),), side_of(name)))
    return pool


@dataclass(frozen=True)
class BenchPost:
    """A synthetic post: the real photo and text, and generated tags."""

    image: str
    taken_at: str
    caption: str
    hashtags: tuple[str, ...]
    content: tuple[str, ...]  # what the photo shows: its content tags


@dataclass(frozen=True)
class Recipe:
    """How a kind of user tags (see ``photobatch.research.personal``)."""

    name: str
    keep_content: float  # each of a post's content tags after the first (the first: see below)
    first_content: float  # the first content tag
    habit: float  # a habit tag when its content tag is on the post
    signature: tuple[float, float]  # the two signature tags
    noise: float  # one background tag drawn by HARRISON document frequency
    own_words: bool = False  # content named by the user's own word instead of the content tag


STEADY = Recipe("steady", 0.8, 1.0, 0.85, (0.9, 0.6), 0.4)
# Names what the photo shows with a word of their own (#seaside for the ocean), never the word
# the captions (and mostly the pipeline) use.
NAMER = Recipe("namer", 0.0, 0.0, 0.85, (0.9, 0.6), 0.2, own_words=True)
# Tags little: one tag or two, often none.
SPARSE = Recipe("sparse", 0.0, 0.5, 0.4, (0.3, 0.0), 0.1)
RECIPES = (STEADY, NAMER, SPARSE)


@dataclass(frozen=True)
class SyntheticUser:
    name: str
    recipe: str
    signature: tuple[str, ...]
    habits: dict[str, str]  # content tag -> habit tag (own word for a namer)
    posts: list[BenchPost]
    others: tuple[BenchPost, ...] = field(default=())  # a topic user's photos of other subjects


TOPIC = "dog"
# The single-topic user's six tags; each post carries three or four of them.
TOPIC_TAGS = ("goodboy", "dogmom", "biscuitthedog", "puppylove", "rescuedog", "dogsofinstagram")
TOPIC_USER = "topic-dog"


def generate_users(
    data: Path,
    side: str,
    per_recipe: Sequence[int] = (3, 1, 1),
    posts_per_user: int = 200,
    seed: int = 0,
    topic_posts: int = 0,
    other_photos: int = 200,
) -> list[SyntheticUser]:
    """Users on one ``side`` of the unseen photos, deterministic under ``seed``: ``per_recipe[i]``
    users of ``RECIPES[i]``, each with ``posts_per_user`` posts; with ``topic_posts``, then a
    single-topic user: that many dog photos with ``TOPIC_TAGS``, and up to ``other_photos``
    photos of the same side that show no dog. A user never posts a photo twice; two users may
    post the same photo (the pool is small, and their rankings never meet)."""
    harrison = Harrison.read(data / "harrison")
    photos = [p for p in unseen_photos(data, harrison) if p.side == side]
    by_tag: dict[str, list[PoolPhoto]] = defaultdict(list)
    for p in photos:
        for t in p.content:
            by_tag[t].append(p)
    # Interests: content shown by enough of the side's photos to fill 60% of a history.
    frequent = sorted(t for t, ps in by_tag.items() if len(ps) >= 0.3 * posts_per_user)
    users = []
    base = (seed * 1000) + (0 if side == CHOOSE else 500)
    for r, (recipe, count) in enumerate(zip(RECIPES, per_recipe, strict=True)):
        for number in range(count):
            rng = random.Random(base + 50 * r + number)
            name = f"{side}-{recipe.name}-{number}"
            users.append(_user(name, recipe, photos, frequent, posts_per_user, rng, harrison))
    if topic_posts:
        rng = random.Random(base + 400)
        dogs = [p for p in photos if p.content[0] == TOPIC and not p.scene]
        others = [p for p in photos if not any(_shows_dog(t) for t in p.texts)]
        posts = []
        for day, photo in enumerate(rng.sample(dogs, min(topic_posts, len(dogs)))):
            tags = rng.sample(TOPIC_TAGS, rng.choice((3, 4)))
            posts.append(_post(photo, day, tags, rng, 0))
        strangers = tuple(
            _post(p, len(posts) + day, list(p.content[:3]), rng, 0)
            for day, p in enumerate(rng.sample(others, min(other_photos, len(others))))
        )
        users.append(SyntheticUser(f"{side}-{TOPIC_USER}", "topic", (), {}, posts, strangers))
    return users


def _shows_dog(text: str) -> bool:
    return bool({"dog", "dogs", "puppy", "puppies"} & set(tokenize(text)))


def _user(
    name: str,
    recipe: Recipe,
    photos: list[PoolPhoto],
    frequent: list[str],
    n_posts: int,
    rng: random.Random,
    harrison: Harrison,
) -> SyntheticUser:
    interests = rng.sample(frequent, 2)
    themed = [p for p in photos if set(p.content) & set(interests)]
    chosen = rng.sample(themed, min(int(0.6 * n_posts), len(themed)))
    taken = {p.name for p in chosen}
    chosen += rng.sample([p for p in photos if p.name not in taken], n_posts - len(chosen))
    rng.shuffle(chosen)
    freq = Counter(t for p in chosen for t in p.content[:3])
    top_content = [t for t, _ in freq.most_common(6)]
    category = rng.choice(sorted(set(harrison.categories)))
    pool = [t for t in harrison.category_tags(category, 30) if t != category and t not in freq]
    signature = tuple(rng.sample(pool[:15], 2))
    habits: dict[str, str] = {}
    for c in top_content:
        related = harrison.names_for(c, 6) if recipe.own_words else harrison.following(c, 12)
        options = [
            h
            for h in related
            if h not in signature
            and h not in habits.values()
            and h not in freq
            and h not in NOT_CONTENT
        ]
        if options:
            habits[c] = rng.choice(options)
    popular = sorted(harrison.df)
    weights = [harrison.df[t] for t in popular]
    voice = rng.randrange(5)
    posts = []
    for day, photo in enumerate(chosen):
        content = photo.content[:3]
        tags = []
        named = recipe.own_words and content[0] in habits
        if not named and rng.random() < recipe.first_content:
            tags.append(content[0])
        tags += [t for t in content[1:] if rng.random() < recipe.keep_content]
        tags += [habits[c] for c in content if c in habits and rng.random() < recipe.habit]
        for tag, share in zip(signature, recipe.signature, strict=True):
            if rng.random() < share:
                tags.append(tag)
        if rng.random() < recipe.noise:
            tags.append(rng.choices(popular, weights)[0])
        posts.append(_post(photo, day, tags, rng, voice))
    return SyntheticUser(name, recipe.name, signature, habits, posts)


def _post(photo: PoolPhoto, day: int, tags: list[str], rng: random.Random, voice: int) -> BenchPost:
    """A post of ``photo`` on the ``day``-th posting day (two days apart), tags in random order;
    the text is the photo's text in slot ``voice``."""
    tags = list(dict.fromkeys(tags))
    rng.shuffle(tags)
    return BenchPost(
        image=photo.name,
        taken_at=(date(2019, 1, 1) + timedelta(days=2 * day)).isoformat(),
        caption=photo.texts[voice],
        hashtags=tuple(tags),
        content=photo.content[:3],
    )


Scored = list[tuple[str, float]]  # the scan's candidates, best first, with their evidence


def photo_features(
    data: Path, names: Sequence[str], cache_dir: Path, config: Config, batch_size: int = 32
) -> tuple[np.ndarray, list[Scored]]:
    """Pooled EfficientNet-Lite0 embeddings (N, 1280) and the scan's candidates with their
    evidence scores of the photos ``names`` (paths under ``data``), cached.

    Computed once per photo by the model stack a scan runs on ``config`` (on the CPU), so the
    benchmark's non-personalized tags are a scan's: grounded hashtags, best first. The cache holds
    every photo any benchmark asked for, by name, so benchmarks of other sizes only analyse the
    photos they add; it is named after the stack's versions string, so new weights or settings
    (a new generic pipeline) never read stale results; and only while it is intact (its
    recorded sha256).
    """
    from photobatch.library.imaging import load_image, to_tensor
    from photobatch.models.stack import model_set

    analyzer = model_set(config, "cpu")
    path = cache_dir / f"personal-bench-v2-{analyzer.models}.npz"
    known: dict[str, tuple[np.ndarray, Scored]] = {}
    if intact(path):
        with np.load(path, allow_pickle=False) as stored:
            cached = zip(
                json.loads(str(stored["names"])),
                stored["pooled"],
                json.loads(str(stored["candidates"])),
                strict=True,
            )
            known = {n: (v, [(t, s) for t, s in tags]) for n, v, tags in cached}
    todo = [n for n in dict.fromkeys(names) if n not in known]
    if todo:
        for start in tqdm(range(0, len(todo), batch_size), desc="analysing photos"):
            chunk = todo[start : start + batch_size]
            images = [to_tensor(load_image(data / n)) for n in chunk]
            analyses = analyzer.describe(chunk, images)
            for n, a in zip(chunk, analyses, strict=True):
                scored = [(t, a.candidate_scores.get(t, 0.0)) for t in a.candidates]
                known[n] = (np.frombuffer(a.embedding or b"", "<f2"), scored)
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
