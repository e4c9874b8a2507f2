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
6. The post text is one fixed caption slot of the photo per user (their "voice"). The
   non-personalized pipeline's tags of a photo, which the personal ranking re-ranks, are the
   ``candidates`` the shipped model stack gives it in a scan (``Analyzer.analyze``: grounded
   hashtags, caption tags only when the caption is supported), computed on the CPU and cached
   with the photo's embedding (``personal_users.photo_features``). Most Flickr8k photos are in
   the captioner's and the grounding heads' training split, so these tags are likely better on
   the benchmark's photos than on a library's.
7. Posts are dated two days apart in random order. The latest ``TEST_POSTS`` are the test
   posts; a history of H posts is the H posts before them, so every history size is scored on
   the same photos.

Users ``bench-0`` ... are used for every choice (the kernel, the ranking's weights); ``holdout`` is
built the same way from its own photos and seed and is only ever reported. The single-topic
user (``personal_users.TOPIC_USER``) posts only dog photos with ``#goodboy #dogmom
#biscuitthedog``; the benchmark reports how often those tags reach 40 photos of other subjects
and how often new dog photos keep one of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from photobatch.core.config import Config
from photobatch.core.records import Post as IndexPost
from photobatch.core.text import tokenize
from photobatch.library.index import Index
from photobatch.models.personal_memory import K_NEIGHBOURS, unit
from photobatch.models.personalizer import Personalizer
from photobatch.research.personal_users import (
    HOLDOUT,
    TOPIC_TAGS,
    TOPIC_USER,
    BenchPost,
    SyntheticUser,
    generate_users,
    photo_features,
)
from photobatch.training.personalizer import (
    HistoryPost,
    TrainSettings,
    history_from_index_post,
    prf,
    stored_pipeline_tags,
    train_on_posts,
)

KS = (1, 3, 5, 7, 9)
HISTORIES = (50, 160, 500, 1000)
TEST_POSTS = 40
SHIPPED = "personalized (what scans use)"


# -- evaluation ----------------------------------------------------------------------------------


@dataclass
class Method:
    """A ranked list per test post, and a natural tag set for the set F1."""

    name: str
    ranked: list[list[str]]
    sets: list[list[str]]


def neighbour_order(
    train: Sequence[HistoryPost], embedding: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Past posts by cosine of their photo to ``embedding``, nearest first, and the cosines."""
    sims = unit(np.stack([p.embedding for p in train])) @ unit(embedding)
    order = np.argsort(-sims, kind="stable")
    return order, sims[order]


def nearest_tags(
    train: Sequence[HistoryPost], embedding: np.ndarray
) -> tuple[list[str], list[str]]:
    """1NN-Im: the nearest past post's tags, then the next nearest's (cosine on embeddings)."""
    order, _ = neighbour_order(train, embedding)
    ranked = list(dict.fromkeys(t for i in order[:10] for t in train[int(i)].hashtags))
    return ranked, list(train[int(order[0])].hashtags)


def knn_vote(train: Sequence[HistoryPost], embedding: np.ndarray) -> list[str]:
    """The MACON-style baseline: each of the ``K_NEIGHBOURS`` nearest past photos votes for its
    tags with its cosine; most votes first (ties by name)."""
    order, sims = neighbour_order(train, embedding)
    votes: Counter[str] = Counter()
    for i, s in zip(order[:K_NEIGHBOURS], sims[:K_NEIGHBOURS], strict=True):
        for t in train[int(i)].hashtags:
            votes[t] += float(s)
    return sorted(votes, key=lambda t: (-votes[t], t))


def evaluate_split(
    train: Sequence[HistoryPost],
    test: Sequence[HistoryPost],
    idf: Callable[[str], float],
    settings: TrainSettings | None = None,
) -> tuple[list[Method], Personalizer]:
    """Every method's predictions on ``test`` after training on ``train``; each post's
    ``candidates`` are the non-personalized pipeline's tags of its photo, best first."""
    freq = Counter(t for p in train for t in p.hashtags)
    frequent = sorted(freq, key=lambda t: (-freq[t], t))
    typical = int(np.median([len(p.hashtags) for p in train]))
    pipeline = [list(p.candidates) for p in test]
    habits = [list(dict.fromkeys([*frequent[:2], *c])) for c in pipeline]
    nn_ranked, nn_sets = zip(*(nearest_tags(train, p.embedding) for p in test), strict=True)
    votes = [knn_vote(train, p.embedding) for p in test]
    head = train_on_posts(train, idf, settings)
    generated = [head.generate(p.embedding) for p in test]
    shipped = [head.rerank(p.embedding, p.candidates, max(KS)) for p in test]
    methods = [
        Method("pipeline (non-personalized)", pipeline, pipeline),
        Method(
            "user's most frequent tags", [frequent] * len(test), [frequent[:typical]] * len(test)
        ),
        Method("1NN-Im", list(nn_ranked), list(nn_sets)),
        Method("top-2 habits + pipeline", habits, [h[:typical] for h in habits]),
        Method(
            f"kNN vote (k={K_NEIGHBOURS}, cosine-weighted)", votes, [v[:typical] for v in votes]
        ),
        Method("CSMN head generating alone", generated, generated),
        Method(
            SHIPPED, shipped, [r[: max(len(g), 1)] for r, g in zip(shipped, generated, strict=True)]
        ),
    ]
    return methods, head


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


def format_by_history(title: str, tables: dict[int, dict[str, dict[str, float]]]) -> str:
    """A Markdown table of F1@5: one row per method, one column per history size."""
    sizes = sorted(tables)
    lines = [f"**{title}**", "", "| method | " + " | ".join(f"{h} posts" for h in sizes) + " |"]
    lines.append("|---|" + "---:|" * len(sizes))
    for name in tables[sizes[0]]:
        cells = " | ".join(f"{tables[h][name]['F1@5']:.3f}" for h in sizes)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


@dataclass
class DraftStats:
    """How the post drafts of some photos behave."""

    photos: int = 0
    drafted: int = 0
    mentioning: int = 0  # drafts that name something the photo shows
    drafts: Counter[str] | None = None

    def add(self, draft: str | None, content: Sequence[str]) -> None:
        self.drafts = self.drafts or Counter()
        self.photos += 1
        if draft:
            self.drafted += 1
            self.drafts[draft] += 1
            words = set(tokenize(draft))
            self.mentioning += any(c in words or f"{c}s" in words for c in content)

    def line(self) -> str:
        top = self.drafts.most_common(1)[0][1] if self.drafts else 0
        return (
            f"{self.drafted / self.photos:.0%} of {self.photos} photos get a draft; "
            f"{self.mentioning / max(self.drafted, 1):.0%} of drafts name something in the photo; "
            f"the most common draft is on {top / self.photos:.0%} of photos"
        )


def bench_posts(
    posts: Sequence[BenchPost],
    embeddings: dict[str, np.ndarray],
    candidates: dict[str, list[str]],
) -> list[HistoryPost]:
    """The posts as training and test posts: each photo's embedding and the scan's candidates."""
    return [
        HistoryPost(
            p.taken_at, p.caption, p.hashtags, embeddings[p.image], tuple(candidates[p.image])
        )
        for p in posts
    ]


def topic_user_lines(
    user: SyntheticUser,
    posts: list[HistoryPost],
    others: list[HistoryPost],
    idf: Callable[[str], float],
    settings: TrainSettings | None,
) -> str:
    """How far the single-topic user's tags travel: onto photos of other subjects (should be
    rare) and onto new photos of their topic (should stay)."""
    history, test = posts[:-TEST_POSTS], posts[-TEST_POSTS:]
    head = train_on_posts(history, idf, settings)

    def share(photos: Sequence[HistoryPost]) -> float:
        top = [head.rerank(p.embedding, p.candidates, 5) for p in photos]
        return float(np.mean([bool(set(t) & set(TOPIC_TAGS)) for t in top]))

    tags = " ".join(f"#{t}" for t in TOPIC_TAGS)
    return (
        f"Single-topic user ({len(history)} posts, every one a dog photo with some of {tags}): "
        f"a topic tag in the top 5 of {share(others):.0%} of {len(others)} photos of other "
        f"subjects, and of {share(test):.0%} of {len(test)} new dog photos."
    )


def run_benchmark(
    data: Path,
    cache_dir: Path,
    seed: int = 0,
    n_users: int = 8,
    histories: Sequence[int] = HISTORIES,
    settings: TrainSettings | None = None,
    topic_history: int = 160,
    config: Config | None = None,
) -> str:
    """Generate the users, analyse their photos as a scan on ``config`` would (cached; the
    shipped defaults when None), evaluate every history size; Markdown tables of F1@5, the
    drafts, the single-topic user, and the training time of the largest history (what ``train
    personalizer`` fits, on the holdout user)."""
    from photobatch.models.prior import default_prior, harrison_idf

    idf = harrison_idf(default_prior())  # the background ``train personalizer`` uses
    histories = sorted(histories)
    users = generate_users(
        data, n_users, histories[-1] + TEST_POSTS, seed, topic_posts=topic_history + TEST_POSTS
    )
    names = sorted({p.image for u in users for p in (*u.posts, *u.others)})
    pooled, candidates = photo_features(
        data / "flickr8k" / "images", names, cache_dir, config or Config()
    )
    embeddings = dict(zip(names, pooled, strict=True))
    tags_of = dict(zip(names, candidates, strict=True))
    bench: dict[int, list[dict[str, dict[str, float]]]] = {h: [] for h in histories}
    holdout: dict[int, dict[str, dict[str, float]]] = {}
    drafts = {h: DraftStats() for h in histories}
    lines, timing = [], ""
    for user in tqdm(users, desc="users"):
        posts = bench_posts(sorted(user.posts, key=lambda p: p.taken_at), embeddings, tags_of)
        if user.name == TOPIC_USER:
            lines.append(
                topic_user_lines(
                    user, posts, bench_posts(user.others, embeddings, tags_of), idf, settings
                )
            )
            continue
        test = posts[-TEST_POSTS:]
        truth = [list(p.hashtags) for p in test]
        content = [p.content for p in sorted(user.posts, key=lambda p: p.taken_at)[-TEST_POSTS:]]
        for h in histories:
            methods, head = evaluate_split(
                posts[-TEST_POSTS - h : -TEST_POSTS], test, idf, settings
            )
            table = score(methods, truth)
            for post, shows in zip(test, content, strict=True):
                drafts[h].add(head.draft_post(post.embedding, post.candidates), shows)
            if user.name == HOLDOUT:
                holdout[h] = table
                timing = f"Training time, holdout user, {h} posts: {head.summary}"
            else:
                bench[h].append(table)
    return "\n\n".join(
        [
            format_by_history(
                f"F1@5 by history size: mean of {n_users} synthetic users (seed {seed}), "
                f"latest {TEST_POSTS} posts each",
                {h: average(t) for h, t in bench.items()},
            ),
            format_by_history(
                "F1@5 by history size: holdout user (never used for choices)", holdout
            ),
            "Post drafts (every user, the test photos):\n"
            + "\n".join(f"- {h} posts: {drafts[h].line()}" for h in histories),
            *lines,
            timing,
        ]
    )


def evaluate_personalizer(
    index: Index,
    pipeline: Callable[[IndexPost], list[str]] | None = None,
    settings: TrainSettings | None = None,
) -> str:
    """``photobatch evaluate personalizer``: the imported posts split by time (the latest 20%
    are the test), every method.

    ``pipeline(post)`` gives the non-personalized tags of a post's photo; by default those a scan
    stored for it (pass the analyzer's tags for photos that were never scanned).
    """
    from photobatch.models.prior import default_prior, harrison_idf

    posts = []
    for post in index.posts():
        history = history_from_index_post(index, post)
        if history is not None:
            tags = pipeline(post) if pipeline else stored_pipeline_tags(index, post)
            posts.append(replace(history, candidates=tuple(tags)))
    if len(posts) < 10:
        return f"personalizer evaluation: {len(posts)} imported posts with photos; need 10 or more"
    posts.sort(key=lambda p: p.taken_at)
    cut = len(posts) - max(1, round(0.2 * len(posts)))
    methods, _ = evaluate_split(posts[:cut], posts[cut:], harrison_idf(default_prior()), settings)
    title = f"Imported posts: {cut} train, latest {len(posts) - cut} test"
    return format_table(title, score(methods, [list(p.hashtags) for p in posts[cut:]]))
