"""The personalizer evaluation, on the user's own posts or on a multi-user benchmark.

No real multi-user Instagram export can ship, so users are synthesized: their photos and captions
are real (Flickr8k) and their hashtag habits follow real Instagram co-occurrence (HARRISON).
``personal_users.generate_users`` is deterministic under a seed; how one user is made:

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

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from photobatch.core.records import Post as IndexPost
from photobatch.library.index import Index
from photobatch.models.personalizer import Personalizer
from photobatch.research.personal_users import (
    HOLDOUT,
    SyntheticUser,
    generate_users,
    photo_features,
)
from photobatch.training.personalizer import (
    HistoryPost,
    TrainSettings,
    history_from_index_post,
    train_on_posts,
)

KS = (1, 3, 5, 7, 9)


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
    data: Path,
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
    from photobatch.models.prior import default_prior, harrison_idf

    prior = default_prior()
    idf = harrison_idf(prior)  # the background ``train personalizer`` uses
    if pipeline is None:
        from photobatch.models.hashtags import suggest_hashtags

        def pipeline(caption: str, labels: list[str]) -> list[str]:
            return suggest_hashtags(caption, labels, prior)

    users = generate_users(data, n_users, posts_per_user, seed)
    names = sorted({p.image for u in users for p in u.posts})
    pooled, labels = photo_features(data / "flickr8k" / "images", names, cache_dir)
    embeddings = dict(zip(names, pooled, strict=True))
    label_of = dict(zip(names, labels, strict=True))
    tables, holdout, timing = [], None, ""
    for user in tqdm(users, desc="users"):
        posts, captions = bench_posts(user, embeddings)
        if user.name == HOLDOUT:
            timing = train_on_posts(posts, idf, settings).summary
        candidates = [
            pipeline(c, label_of[p.image]) for c, p in zip(captions, user.posts, strict=True)
        ]
        methods, truth = evaluate_user(posts, candidates, idf, settings)
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
    """The non-personalized hashtags a scan stored for the post's first photo ([] if none): its
    ``candidates``, since its ``hashtags`` may already be ranked by a personal head."""
    for media in post.media:
        if media.kind == "photo" and media.sha256:
            analysis = index.analysis(media.sha256)
            return list(analysis.candidates) if analysis else []
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
    from photobatch.models.prior import default_prior, harrison_idf

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
