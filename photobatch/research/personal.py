"""A multi-user hashtag benchmark from shared data only, and the personalizer evaluation.

No real multi-user Instagram export can ship, so users are synthesized: their photos and captions
are real (Flickr8k) and their hashtag habits follow real Instagram co-occurrence (HARRISON).
``generate_users`` is deterministic under a seed; how one user is made:

1. Content tags of a photo: words of its five captions that are HARRISON hashtags (plural "s"
   stripped when the singular is a tag; function words dropped) and that at least two of the
   five captions use, most-agreed first.
2. Interests: two frequent content tags; 60% of the user's photos contain one of them, the rest
   are drawn uniformly. Photos are never shared between users.
3. Signature tags: a HARRISON category folder is drawn; two of the 15 tags most used in that
   category's posts (not the category name, not the user's content tags) become the user's
   signature, used on 90% and 60% of posts regardless of content.
4. Habit tags: for each of the user's six most frequent content tags ``c``, one tag ``h`` drawn
   from the 12 HARRISON tags with the highest P(h | c) (df >= 30); ``h`` is added with
   probability 0.85 whenever ``c`` is among the photo's content tags. Users draw different ranks,
   so their habits differ.
5. Each post keeps each of its first three content tags with probability 0.8 (the first always),
   adds one background tag drawn by HARRISON document frequency with probability 0.4, and lists
   its tags in random order.
6. The post text is one fixed caption slot of the photo per user (their "voice"); the
   non-personalized pipeline sees a different slot's caption (a stand-in for the captioner's).
7. Posts are dated two days apart in random order; the latest 20% are the test posts.

Users ``bench-0`` ... are used for every choice (sizes, weights, epochs); ``holdout`` is built the
same way from its own photos and seed and is only ever reported.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from tqdm import tqdm

from photobatch.library.index import Index
from photobatch.library.index import Post as IndexPost
from photobatch.models.personalizer import (
    HistoryPost,
    Personalizer,
    TrainSettings,
    history_from_index_post,
    train_on_posts,
)

KS = (1, 3, 5, 7, 9)
STOP = frozenset(
    [
        "the",
        "and",
        "with",
        "for",
        "out",
        "look",
        "top",
        "young",
        "little",
        "front",
        "other",
        "some",
        "while",
        "into",
        "near",
        "next",
        "one",
        "two",
        "three",
        "over",
        "are",
        "its",
        "this",
        "that",
    ]
)
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

    def idf(self, tag: str) -> float:
        return math.log((len(self.posts) + 1) / (self.df.get(tag, 0) + 1)) + 1.0

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
        for w in re.findall(r"[a-z]+", caption.lower()):
            if w.endswith("s") and w[:-1] in vocab:
                w = w[:-1]
            if w in vocab and w not in STOP:
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
    shared: Path, n_users: int = 8, posts_per_user: int = 250, seed: int = 0
) -> list[SyntheticUser]:
    """``n_users`` benchmark users and the holdout user, deterministic under ``seed``."""
    harrison = Harrison.read(shared / "data" / "harrison")
    flickr = read_flickr(shared / "data" / "flickr8k")
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


# -- photo embeddings and labels, cached ---------------------------------------------------------


def photo_features(
    images: Path, names: Sequence[str], cache_dir: Path, batch_size: int = 32
) -> tuple[np.ndarray, list[list[str]]]:
    """Pooled EfficientNet-Lite0 embeddings (N, 1280) and top-5 ImageNet labels, cached.

    Computed once with the project's encoder and preprocessing; the cache file is keyed by the
    image list so a different benchmark never reads stale vectors.
    """
    import torch

    from photobatch.library.imaging import load_image, to_tensor
    from photobatch.models.encoder import ImageEncoder

    key = hashlib.sha256(json.dumps([ImageEncoder.name, list(names)]).encode()).hexdigest()[:16]
    path = cache_dir / f"personal-bench-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return data["pooled"].astype(np.float32), json.loads(str(data["labels"]))
    encoder = ImageEncoder("cpu")
    encoder.load()
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


# -- evaluation ----------------------------------------------------------------------------------


def prf(pred: Sequence[str], truth: Sequence[str], k: int | None) -> tuple[float, float, float]:
    """Precision, recall, F1 of one post; ``k`` None compares the sets (CSMN's set F1)."""
    top = list(pred)[:k] if k is not None else list(pred)
    hits = len(set(top) & set(truth))
    p = hits / (k if k is not None else max(len(top), 1))
    r = hits / max(len(truth), 1)
    return p, r, (2 * p * r / (p + r) if hits else 0.0)


@dataclass
class Method:
    """A ranked list per test post, and a natural tag set for the set F1."""

    name: str
    ranked: list[list[str]]
    sets: list[list[str]]


def split_by_time(posts: Sequence[HistoryPost], test_fraction: float = 0.2) -> tuple[list, list]:
    order = sorted(range(len(posts)), key=lambda i: posts[i].taken_at)
    cut = len(order) - max(1, round(test_fraction * len(order)))
    return [posts[i] for i in order[:cut]], [posts[i] for i in order[cut:]]


def nearest_tags(
    train: Sequence[HistoryPost], embedding: np.ndarray
) -> tuple[list[str], list[str]]:
    """1NN-Im: the nearest past post's tags, then the next nearest's (cosine on embeddings)."""
    bank = np.stack([p.embedding for p in train])
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True).clip(1e-8)
    sims = bank @ (embedding / max(float(np.linalg.norm(embedding)), 1e-8))
    order = np.argsort(-sims, kind="stable")
    ranked = list(dict.fromkeys(t for i in order[:10] for t in train[int(i)].hashtags))
    return ranked, list(train[int(order[0])].hashtags)


def evaluate_user(
    posts: Sequence[HistoryPost],
    pipeline: Sequence[Sequence[str]],
    idf: Callable[[str], float],
    settings: TrainSettings | None = None,
) -> tuple[list[Method], list[list[str]]]:
    """Every method's predictions on the latest 20% of ``posts``; ``pipeline`` is aligned with
    ``posts`` and holds the non-personalized tags of each post's photo, best first."""
    settings = replace(settings or TrainSettings(), draft=False)
    order = sorted(range(len(posts)), key=lambda i: posts[i].taken_at)
    cut = len(order) - max(1, round(0.2 * len(order)))
    train = [posts[i] for i in order[:cut]]
    test = [posts[i] for i in order[cut:]]
    test_pipeline = [list(pipeline[i]) for i in order[cut:]]
    truth = [list(p.hashtags) for p in test]
    freq = Counter(t for p in train for t in p.hashtags)
    frequent = sorted(freq, key=lambda t: (-freq[t], t))
    typical = int(np.median([len(p.hashtags) for p in train]))
    methods = [
        Method("pipeline (non-personalized)", test_pipeline, test_pipeline),
        Method(
            "user's most frequent tags", [frequent] * len(test), [frequent[:typical]] * len(test)
        ),
    ]
    nn_ranked, nn_sets = zip(*(nearest_tags(train, p.embedding) for p in test), strict=True)
    methods.append(Method("1NN-Im", list(nn_ranked), list(nn_sets)))
    for label, use_context in (("CSMN w/o user context", False), ("CSMN (personalized)", True)):
        head = train_on_posts(train, idf, replace(settings, use_context=use_context))
        methods += _csmn_methods(head, test, test_pipeline, label)
    return methods, truth


def _csmn_methods(
    head: Personalizer, test: Sequence[HistoryPost], pipeline: Sequence[Sequence[str]], label: str
) -> list[Method]:
    generated, reranked = [], []
    for post, candidates in zip(test, pipeline, strict=True):
        generated.append(head.generate(post.embedding))
        reranked.append(head.rerank(post.embedding, candidates, max(KS)))
    sized = [r[: max(len(g), 1)] for r, g in zip(reranked, generated, strict=True)]
    return [
        Method(f"{label}, generated only", generated, generated),
        Method(f"{label} + rerank", reranked, sized),
    ]


def score(methods: Sequence[Method], truth: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """Per-post averages of P/R/F1@K (MACON) and the set F1 (CSMN), per method."""
    table = {}
    for m in methods:
        row = {}
        for k in KS:
            vals = np.array([prf(pred, t, k) for pred, t in zip(m.ranked, truth, strict=True)])
            row[f"P@{k}"], row[f"R@{k}"], row[f"F1@{k}"] = vals.mean(axis=0).tolist()
        sets = [prf(s, t, None)[2] for s, t in zip(m.sets, truth, strict=True)]
        row["set F1"] = float(np.mean(sets))
        table[m.name] = row
    return table


def average(tables: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        name: {col: float(np.mean([t[name][col] for t in tables])) for col in tables[0][name]}
        for name in tables[0]
    }


def format_table(title: str, table: dict[str, dict[str, float]]) -> str:
    """A Markdown table: F1@K for every K, P@5, R@5, set F1."""
    cols = [*(f"F1@{k}" for k in KS), "P@5", "R@5", "set F1"]
    lines = [f"**{title}**", "", "| method | " + " | ".join(cols) + " |"]
    lines.append("|---|" + "---:|" * len(cols))
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
    return "\n".join(lines)


def bench_posts(
    user: SyntheticUser, embeddings: dict[str, np.ndarray]
) -> tuple[list[HistoryPost], list[str]]:
    posts = [
        HistoryPost(p.taken_at, p.caption, p.hashtags, embeddings[p.image]) for p in user.posts
    ]
    return posts, [p.pipeline_caption for p in user.posts]


def run_benchmark(
    shared: Path,
    cache_dir: Path,
    seed: int = 0,
    n_users: int = 8,
    posts_per_user: int = 250,
    settings: TrainSettings | None = None,
    pipeline: Callable[[str, list[str]], list[str]] | None = None,
) -> str:
    """Generate the users, embed their photos (cached), evaluate; Markdown tables, then how long
    a full personal head (what ``train personalizer`` fits) takes on all the holdout user's posts.

    ``pipeline(caption, labels) -> tags`` is the non-personalized hashtagger; by default the
    project's ``suggest_hashtags`` with the shipped prior, fed the other caption slot and the
    photo's ImageNet labels.
    """
    if pipeline is None:
        from photobatch.models.hashtags import suggest_hashtags
        from photobatch.models.prior import default_prior

        prior = default_prior()

        def pipeline(caption: str, labels: list[str]) -> list[str]:
            return suggest_hashtags(caption, labels, prior)

    harrison = Harrison.read(shared / "data" / "harrison")
    users = generate_users(shared, n_users, posts_per_user, seed)
    names = sorted({p.image for u in users for p in u.posts})
    pooled, labels = photo_features(shared / "data" / "flickr8k" / "images", names, cache_dir)
    embeddings = dict(zip(names, pooled, strict=True))
    label_of = dict(zip(names, labels, strict=True))
    tables, holdout, timing = [], None, ""
    for user in tqdm(users, desc="users"):
        posts, captions = bench_posts(user, embeddings)
        if user.name == HOLDOUT:
            timing = train_on_posts(posts, harrison.idf, settings).summary
        candidates = [
            pipeline(c, label_of[p.image]) for c, p in zip(captions, user.posts, strict=True)
        ]
        methods, truth = evaluate_user(posts, candidates, harrison.idf, settings)
        table = score(methods, truth)
        if user.name == HOLDOUT:
            holdout = table
        else:
            tables.append(table)
    return "\n\n".join(
        [
            format_table(
                f"Benchmark: mean of {n_users} synthetic users (seed {seed})", average(tables)
            ),
            format_table("Holdout user (never used for choices)", holdout or {}),
            f"Training time, holdout user, all posts, hashtags and post text: {timing}",
        ]
    )


def stored_pipeline_tags(index: Index, post: IndexPost) -> list[str]:
    """The non-personalized hashtags a scan stored for the post's first photo ([] if none)."""
    for media in post.media:
        if media.kind == "photo" and media.sha256:
            analysis = index.analysis(media.sha256)
            return list(analysis.hashtags) if analysis else []
    return []


def evaluate_personalizer(
    index: Index,
    pipeline: Callable[[IndexPost], list[str]] | None = None,
    settings: TrainSettings | None = None,
) -> str:
    """``photobatch evaluate personalizer``: the imported posts split by time, every method.

    ``pipeline(post)`` gives the non-personalized tags of a post's photo; by default those a scan
    stored for it (pass the analyzer's tags for photos that were never scanned).
    """
    from photobatch.instagram.export import harrison_idf
    from photobatch.models.prior import default_prior

    posts, candidates = [], []
    for post in index.posts():
        history = history_from_index_post(post)
        if history is not None:
            posts.append(history)
            candidates.append(pipeline(post) if pipeline else stored_pipeline_tags(index, post))
    if len(posts) < 10:
        return f"personalizer evaluation: {len(posts)} imported posts with photos; need 10 or more"
    methods, truth = evaluate_user(posts, candidates, harrison_idf(default_prior()), settings)
    n_test = len(truth)
    title = f"Imported posts: {len(posts) - n_test} train, latest {n_test} test"
    return format_table(title, score(methods, truth))
