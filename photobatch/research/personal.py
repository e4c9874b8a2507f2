"""The personalizer evaluation, on the user's own posts or on a multi-user benchmark.

No real multi-user Instagram export can ship, so users are synthesized
(``personal_users.generate_users``, deterministic under a seed). Their photos are real and **no
shipped model trained on them**: Flickr8k ``val``, ``broad/coco-dev`` and the held-out quarter of
``broad/scenes`` (``personal_users.unseen_photos`` says why each is unseen, and why
``broad/imagenet`` is not). Those 1,542 photos are split in two halves by a hash of their name:
users on the **choose** half decide every setting of the ranking (its weights are fitted on
them, its floor swept on them), users on the **report** half are only ever reported. A user never
posts a photo twice; two users of a half may post the same photo, since their rankings never
meet. How a user is made:

1. What a photo shows (its content tags): words of its five captions that are HARRISON hashtags
   (plural "s" stripped when the singular is a tag, function words dropped) and that at least two
   captions use, most-agreed first; a scene photo shows its scene ("kitchen", "artgallery").
2. Interests: two content tags shown by at least 30% of a history's worth of the half's photos;
   60% of the user's photos show one of them, the rest are drawn uniformly.
3. Signature tags: a HARRISON category folder is drawn; two of the 15 tags most used in that
   category's posts (not the user's content tags) become the user's signature.
4. Habit tags: for each of the user's six most frequent content tags ``c``, one tag drawn from
   the 12 HARRISON tags with the highest P(h | c) (df >= 30, no function word).
5. Recipes (``personal_users.RECIPES``), per post:
   - **steady** (the recipe of issue 13): the first content tag, each further one with p 0.8, the
     habit of each content tag with p 0.85, the signatures with p 0.9 and 0.6, one background tag
     drawn by HARRISON document frequency with p 0.4;
   - **namer**: names what a photo shows with a word of their own (the HARRISON tag most specific
     to the content, #pet or #dogstagram for a dog, never the content word the captions and mostly
     the pipeline use), with p 0.85; signatures as steady; background p 0.2;
   - **sparse** (tags little): the first content tag with p 0.5, its habit with p 0.4, one
     signature with p 0.3, background p 0.1: about 1.4 tags a post, a sixth of posts untagged.
6. The post text is one fixed caption of the photo per user (their "voice"); a scene photo's
   text names the scene. These texts describe the photo better than most real captions do.
7. Posts are dated two days apart in random order. The latest ``TEST_POSTS`` are the test posts;
   a history of H posts is the H posts before them, so every history size is scored on the same
   photos. Test posts without tags are not scored (no tag to find); tags written on them are
   counted.
8. The non-personalized pipeline's tags of a photo (the generic row, and the candidates the
   ranking ranks) are the ``candidates`` the shipped model stack gives it (``Analyzer.describe``:
   grounded hashtags), computed on the CPU and cached with its embedding under the models'
   versions string; the import computes the same for a user's past photos. A new generic
   pipeline is measured by rerunning the command.

The single-topic user of each half posts ``TOPIC_HISTORY`` dog photos with three or four of six
dog tags each; the benchmark counts how many of 200 photos of the half that show no dog get one
of those tags anywhere in the written hashtags, and how many of 40 new dog photos keep one.

The **headroom** of each half is the kNN vote with neighbours found by what the photos truly show
(their content tags joined to the vector): what a perfect image model would give the vote, so how
much any ranking that reads the photo could still gain.

The 1,542 photos allow histories up to about 160 posts per user with the recipes' interests: a
500-post user would need two thirds of a half, and 60% of their photos to show two contents
(no content is shown by that many).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from photobatch.core.config import Config, HashtagConfig
from photobatch.core.records import Post as IndexPost
from photobatch.core.text import tokenize
from photobatch.library.index import Index
from photobatch.models.personal_memory import K_NEIGHBOURS, unit
from photobatch.models.personalizer import (
    FEATURES,
    FLOOR,
    PHOTO_WEIGHTS,
    TEXT_WEIGHTS,
    Personalizer,
    to_write,
)
from photobatch.research.personal_users import (
    CHOOSE,
    REPORT,
    SIDES,
    TOPIC_TAGS,
    BenchPost,
    Scored,
    SyntheticUser,
    generate_users,
    photo_features,
)
from photobatch.training.personalizer import (
    HistoryPost,
    history_from_index_post,
    prf,
    stored_pipeline_tags,
    train_on_posts,
)

KS = (1, 3, 5, 7, 9)
HISTORIES = (30, 50, 160)
TEST_POSTS = 40
TOPIC_HISTORY = 60
SHIPPED = "personalized (what scans write)"
VOTE = f"kNN vote (k={K_NEIGHBOURS}, cosine-weighted)"
FREQUENT = "user's most frequent tags"
GENERIC = "pipeline (non-personalized)"
HEADROOM = "kNN vote, neighbours by what the photos truly show"
MAX_TAGS = HashtagConfig().max_tags
FLOORS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
# The columns of ``FEATURES`` each mode's logistic model uses.
PHOTO_COLUMNS = (0, 1, 3)
TEXT_COLUMNS = (1, 2, 3)
# The penalty on the squared weights, per row of the mean loss: with ~100,000 rows of a few
# features, only enough to keep the fit finite (the grounding heads' 1e-3 shrank the vote's
# weight by half and ranked the choose users 0.004 lower at 160 posts).
WEIGHT_PENALTY = 1e-5


# -- the baselines ---------------------------------------------------------------------------------


def neighbour_order(
    train: Sequence[HistoryPost], embedding: np.ndarray
) -> tuple[list[HistoryPost], np.ndarray]:
    """Past posts with a photo by cosine of their photo to ``embedding``, nearest first, and the
    cosines."""
    photos = [p for p in train if p.embedding is not None]
    if not photos:
        return [], np.zeros(0)
    sims = unit(np.stack([p.embedding for p in photos])) @ unit(embedding)  # type: ignore[misc]
    order = np.argsort(-sims, kind="stable")
    return [photos[int(i)] for i in order], sims[order]


def knn_vote(train: Sequence[HistoryPost], embedding: np.ndarray) -> list[str]:
    """The MACON-style baseline: each of the ``K_NEIGHBOURS`` nearest past photos votes for its
    tags with its cosine; most votes first (ties by name)."""
    posts, sims = neighbour_order(train, embedding)
    votes: Counter[str] = Counter()
    for post, s in zip(posts[:K_NEIGHBOURS], sims[:K_NEIGHBOURS], strict=True):
        for t in post.hashtags:
            votes[t] += float(s)
    return sorted(votes, key=lambda t: (-votes[t], t))


def most_frequent(train: Sequence[HistoryPost]) -> list[str]:
    freq = Counter(t for p in train for t in p.hashtags)
    return sorted(freq, key=lambda t: (-freq[t], t))


@dataclass
class Method:
    """A ranked list per test post (scored at K), and the tags it would write (the set F1)."""

    name: str
    ranked: list[list[str]]
    sets: list[list[str]]


def baselines(train: Sequence[HistoryPost], test: Sequence[HistoryPost]) -> list[Method]:
    """The generic pipeline, the user's most frequent tags, 1NN-Im and the kNN vote; sets of the
    user's typical length (the pipeline's: all its tags)."""
    typical = int(np.median([len(p.hashtags) for p in train if p.hashtags] or [0]))
    frequent = most_frequent(train)
    pipeline = [list(p.candidates) for p in test]
    votes = [knn_vote(train, p.embedding) for p in test]  # type: ignore[arg-type]
    nearest = [neighbour_order(train, p.embedding)[0] for p in test]  # type: ignore[arg-type]
    nn = [list(dict.fromkeys(t for q in n[:K_NEIGHBOURS] for t in q.hashtags)) for n in nearest]
    return [
        Method(GENERIC, pipeline, pipeline),
        Method(FREQUENT, [frequent] * len(test), [frequent[:typical]] * len(test)),
        Method("1NN-Im", nn, [list(n[0].hashtags) if n else [] for n in nearest]),
        Method(VOTE, votes, [v[:typical] for v in votes]),
    ]


def knowing_content(posts: Sequence[HistoryPost], shown: Sequence[BenchPost]) -> list[HistoryPost]:
    """The posts with each photo's vector joined by what it truly shows (its content tags, as
    much weight as the vector): the kNN vote over them is the vote a perfect image model would
    give, the headroom of any ranking that reads the photo."""
    vocab = {c: i for i, c in enumerate(sorted({c for b in shown for c in b.content}))}
    known = []
    for post, bench in zip(posts, shown, strict=True):
        content = np.zeros(len(vocab), np.float32)
        content[[vocab[c] for c in bench.content]] = 1.0
        vector = np.concatenate([unit(content), unit(post.embedding)])  # type: ignore[arg-type]
        known.append(replace(post, embedding=vector))
    return known


def headroom(train: Sequence[HistoryPost], test: Sequence[HistoryPost]) -> Method:
    """The kNN vote over posts from ``knowing_content``."""
    votes = [knn_vote(train, p.embedding) for p in test]  # type: ignore[arg-type]
    return Method(HEADROOM, votes, votes)


def shipped(head: Personalizer, test: Sequence[HistoryPost]) -> Method:
    """The ranking as scans use it: its order, and the tags it writes."""
    ranked, written = [], []
    for p in test:
        ranked.append(list(head.rank(p.embedding, p.candidates)))
        written.append(list(head.written(p.embedding, p.candidates, MAX_TAGS)))
    return Method(SHIPPED, ranked, written)


def score(methods: Sequence[Method], truth: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """Per-post averages of P/R/F1@K (MACON) and the set F1 (CSMN), per method, over the posts
    that have tags."""
    tagged = [i for i, t in enumerate(truth) if t]
    table = {}
    for m in methods:
        row = {}
        for k in KS:
            vals = np.array([prf(m.ranked[i], truth[i], k) for i in tagged])
            row[f"P@{k}"], row[f"R@{k}"], row[f"F1@{k}"] = vals.mean(axis=0).tolist()
        row["set F1"] = float(np.mean([prf(m.sets[i], truth[i], None)[2] for i in tagged]))
        table[m.name] = row
    return table


def format_table(title: str, table: dict[str, dict[str, float]]) -> str:
    """A Markdown table: F1@K for every K, P@5, R@5, set F1."""
    cols = [*(f"F1@{k}" for k in KS), "P@5", "R@5", "set F1"]
    lines = [f"**{title}**", "", "| method | " + " | ".join(cols) + " |"]
    lines.append("|---|" + "---:|" * len(cols))
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
    return "\n".join(lines)


# -- the benchmark ---------------------------------------------------------------------------------


@dataclass
class Written:
    """What a ranking wrote on some photos: every tag that reaches the sidecar counts."""

    photos: int = 0
    tags: int = 0
    hits: int = 0  # written tags the user posted
    truth: int = 0  # tags the user posted on the photos
    abstained: int = 0  # photos where no tag reached the floor (the pipeline's tags are written)
    below_floor: int = 0

    def add(
        self, written: dict[str, float], truth: Sequence[str], abstained: bool, floor: float
    ) -> None:
        self.photos += 1
        self.tags += len(written)
        self.hits += len(set(written) & set(truth))
        self.truth += len(truth)
        self.abstained += abstained
        self.below_floor += sum(s < floor for s in written.values())

    def __add__(self, other: Written) -> Written:
        return Written(
            *(
                getattr(self, f) + getattr(other, f)
                for f in ("photos", "tags", "hits", "truth", "abstained", "below_floor")
            )
        )

    @property
    def f1(self) -> float:
        precision, recall = self.hits / max(self.tags, 1), self.hits / max(self.truth, 1)
        return 2 * precision * recall / (precision + recall) if self.hits else 0.0

    def cells(self) -> str:
        """Tags per photo, precision, recall and F1 of the written tags, abstentions, tags
        under the floor."""
        return (
            f"{self.tags / max(self.photos, 1):.1f} | {self.hits / max(self.tags, 1):.3f} | "
            f"{self.hits / max(self.truth, 1):.3f} | {self.f1:.3f} | "
            f"{self.abstained / max(self.photos, 1):.0%} | {self.below_floor}"
        )


def write_at_floors(
    head: Personalizer, posts: Sequence[HistoryPost], evidence: Sequence[dict[str, float]]
) -> dict[float, list[tuple[dict[str, float], bool]]]:
    """For each floor of ``FLOORS`` and the shipped ``FLOOR``, what a scan writes on each photo
    (``PersonalHead.personalize``) and whether the head abstained."""
    ranked = [head.rank(p.embedding, p.candidates) for p in posts]
    return {
        floor: [to_write(r, e, MAX_TAGS, floor) for r, e in zip(ranked, evidence, strict=True)]
        for floor in sorted({*FLOORS, FLOOR})
    }


@dataclass
class Drafts:
    """How the post drafts of some photos behave."""

    photos: int = 0
    drafted: int = 0
    naming: int = 0  # drafts that name something the photo shows
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, draft: str | None, content: Sequence[str]) -> None:
        self.photos += 1
        if draft:
            self.drafted += 1
            self.counts[draft] += 1
            words = set(tokenize(draft))
            self.naming += any(c in words or f"{c}s" in words for c in content)

    def __add__(self, other: Drafts) -> Drafts:
        return Drafts(
            self.photos + other.photos,
            self.drafted + other.drafted,
            self.naming + other.naming,
            self.counts + other.counts,
        )

    def line(self) -> str:
        top = self.counts.most_common(1)[0][1] if self.counts else 0
        return (
            f"{self.drafted / max(self.photos, 1):.0%} of {self.photos} photos get a draft; "
            f"{self.naming / max(self.drafted, 1):.0%} of drafts name something in the photo; "
            f"the most common draft is on {top / max(self.photos, 1):.0%} of photos"
        )


@dataclass
class Case:
    """One user at one history size: what each method scored, what the ranking wrote, and the
    ranking's feature rows (to fit its weights on)."""

    user: str
    recipe: str
    history: int
    f1: dict[str, float]
    written: dict[float, Written]  # by floor
    rows: list[tuple[np.ndarray, np.ndarray]]
    text_f1: float  # the ranking without the photos of the history (text habits only)
    text_rows: list[tuple[np.ndarray, np.ndarray]]
    drafts: Drafts
    summary: str


def as_history(
    posts: Sequence[BenchPost], embeddings: dict[str, np.ndarray], candidates: dict[str, Scored]
) -> list[HistoryPost]:
    """The posts as the ranking sees them: each photo's embedding and the scan's candidates."""
    return [
        HistoryPost(
            p.taken_at,
            p.caption,
            p.hashtags,
            embeddings[p.image],
            tuple(t for t, _ in candidates[p.image]),
        )
        for p in posts
    ]


def without_media(posts: Sequence[HistoryPost]) -> list[HistoryPost]:
    """The posts of an export that has only its JSON: captions and hashtags."""
    return [replace(p, embedding=None, candidates=()) for p in posts]


def labelled_rows(
    head: Personalizer, test: Sequence[HistoryPost]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``FEATURES`` rows of the tags in play on each tagged test photo (off-topic habits left
    out, as the ranking drops them) and whether the user posted each."""
    rows = []
    for p in test:
        if p.hashtags:
            tags, x, off = head.features(p.embedding, p.candidates)
            posted = np.array([t in p.hashtags for t in tags])
            rows.append((x[~off], posted[~off]))
    return rows


def run_case(
    user: SyntheticUser,
    history: int,
    posts: list[HistoryPost],
    known: list[HistoryPost],
    candidates: dict[str, Scored],
) -> Case:
    """Build the ranking on the user's ``history`` posts before the test posts, and score it,
    with the photos and without them, and against the vote over ``known`` (``knowing_content``
    of ``posts``)."""
    train, test = posts[-TEST_POSTS - history : -TEST_POSTS], posts[-TEST_POSTS:]
    evidence = [dict(candidates[p.image]) for p in user.posts[-TEST_POSTS:]]
    truth = [list(p.hashtags) for p in test]
    head = train_on_posts(train)
    ceiling = headroom(known[-TEST_POSTS - history : -TEST_POSTS], known[-TEST_POSTS:])
    table = score([*baselines(train, test), shipped(head, test), ceiling], truth)
    written = {}
    for floor, lists in write_at_floors(head, test, evidence).items():
        written[floor] = Written()
        for (tags, abstained), p in zip(lists, test, strict=True):
            written[floor].add(tags, p.hashtags, abstained, floor)
    text_head = train_on_posts(without_media(train))
    drafts = Drafts()
    for p, shown in zip(test, user.posts[-TEST_POSTS:], strict=True):
        assert p.embedding is not None
        drafts.add(head.draft_post(p.embedding, p.candidates), shown.content)
    return Case(
        user.name,
        user.recipe,
        history,
        {name: row["F1@5"] for name, row in table.items()},
        written,
        labelled_rows(head, test),
        score([shipped(text_head, test)], truth)[SHIPPED]["F1@5"],
        labelled_rows(text_head, test),
        drafts,
        head.summary,
    )


def fit_weights(
    rows: Sequence[tuple[np.ndarray, np.ndarray]], columns: Sequence[int]
) -> tuple[float, ...]:
    """The logistic model of ``FEATURES`` (those in ``columns``; the others weigh 0) that best
    predicts which tags the users posted: its weights then its bias, rounded as shipped."""
    from photobatch.training.grounding import fit_logistic

    x = np.concatenate([r for r, _ in rows])[:, list(columns)]
    y = np.concatenate([labels for _, labels in rows]).astype(np.int64)
    w, b = fit_logistic(x, y, 1, l2=WEIGHT_PENALTY)
    weights = [0.0] * len(FEATURES)
    for column, value in zip(columns, w[0], strict=True):
        weights[column] = round(float(value), 2)
    return (*weights, round(float(b[0]), 2))


@dataclass
class TopicResult:
    """By floor: the share of other-subject photos with a topic tag anywhere in the written
    hashtags, and of new topic photos that keep one."""

    others: dict[float, float]
    kept: dict[float, float]
    n_others: int
    n_topic: int


def run_topic(
    user: SyntheticUser, embeddings: dict[str, np.ndarray], candidates: dict[str, Scored]
) -> TopicResult:
    """The single-topic user: ``TOPIC_HISTORY`` posts, then every hashtag a scan would write on
    their new dog photos and on the photos of other subjects."""
    posts = as_history(user.posts, embeddings, candidates)
    others = as_history(user.others, embeddings, candidates)
    head = train_on_posts(posts[:TOPIC_HISTORY])
    topic = set(TOPIC_TAGS)

    def shares(photos: list[HistoryPost], shown: Sequence[BenchPost]) -> dict[float, float]:
        evidence = [dict(candidates[p.image]) for p in shown]
        by_floor = write_at_floors(head, photos, evidence)
        return {
            floor: float(np.mean([bool(set(tags) & topic) for tags, _ in lists]))
            for floor, lists in by_floor.items()
        }

    new = posts[TOPIC_HISTORY:]
    return TopicResult(
        shares(others, user.others),
        shares(new, user.posts[TOPIC_HISTORY:]),
        len(others),
        len(new),
    )


def run_benchmark(
    data: Path,
    cache_dir: Path,
    seed: int = 0,
    steady_users: int = 3,
    histories: Sequence[int] = HISTORIES,
    config: Config | None = None,
    sides: Sequence[str] = SIDES,
    csmn: bool = True,
    other_photos: int = 200,
) -> str:
    """Generate the users of each half, analyse their photos as a scan on ``config`` would
    (cached; the shipped defaults when None), evaluate every history size; Markdown tables."""
    histories = sorted(histories)
    started = time.monotonic()
    recipes = (steady_users, 1, 1)
    users = {
        side: generate_users(
            data,
            side,
            recipes,
            histories[-1] + TEST_POSTS,
            seed,
            TOPIC_HISTORY + TEST_POSTS,
            other_photos,
        )
        for side in sides
    }
    names = sorted({p.image for us in users.values() for u in us for p in (*u.posts, *u.others)})
    pooled, scored = photo_features(data, names, cache_dir, config or Config())
    embeddings = dict(zip(names, pooled, strict=True))
    candidates = dict(zip(names, scored, strict=True))
    cases: dict[str, list[Case]] = {side: [] for side in sides}
    topics: dict[str, TopicResult] = {}
    every = [(side, u) for side in sides for u in users[side]]
    for side, user in tqdm(every, desc="users"):
        if user.recipe == "topic":
            topics[side] = run_topic(user, embeddings, candidates)
            continue
        posts = as_history(user.posts, embeddings, candidates)
        known = knowing_content(posts, user.posts)
        cases[side] += [run_case(user, h, posts, known, candidates) for h in histories]
    parts = [pool_line(names, users)]
    if CHOOSE in cases:
        parts.append(choices(cases[CHOOSE], topics.get(CHOOSE)))
    for side in sides:
        parts.append(side_tables(side, cases[side], topics.get(side), histories))
    if csmn:
        parts.append(csmn_lines(users, embeddings, candidates, histories[-1]))
    largest = [c for c in cases.get(REPORT, []) if c.history == histories[-1]]
    if largest:
        parts.append(f"Largest history, {largest[0].user}: {largest[0].summary}")
    parts.append(f"Benchmark ran in {time.monotonic() - started:.0f} s.")
    return "\n\n".join(parts)


def pool_line(names: Sequence[str], users: dict[str, list[SyntheticUser]]) -> str:
    sources = Counter(n.rsplit("/", 1)[0] for n in names)
    where = ", ".join(f"{n} from {folder}" for folder, n in sorted(sources.items()))
    who = "; ".join(f"{side}: {', '.join(u.name for u in us)}" for side, us in users.items())
    return (
        f"{len(names)} photos no shipped model trained on, as the users posted them ({where}). "
        f"Users: {who}."
    )


def choices(cases: Sequence[Case], topic: TopicResult | None) -> str:
    """What the choose users decide: the logistic weights, and the floor (a sweep)."""
    photo = fit_weights([r for c in cases for r in c.rows], PHOTO_COLUMNS)
    text = fit_weights([r for c in cases for r in c.text_rows], TEXT_COLUMNS)
    lines = [
        f"**Chosen on the choose users** (every user and history; weights of "
        f"{', '.join(FEATURES)}, then the bias):",
        "",
        f"- with photos: fitted {photo}, shipped {PHOTO_WEIGHTS}",
        f"- text habits only (an export without media): fitted {text}, shipped {TEXT_WEIGHTS}",
        "",
        "| floor | tags written per photo | F1 of the written tags | topic tags on other "
        "subjects | new topic photos keeping one |",
        "|---:|---:|---:|---:|---:|",
    ]
    for floor in sorted({*FLOORS, FLOOR}):
        written = sum((c.written[floor] for c in cases), Written())
        flood = f"{topic.others[floor]:.1%}" if topic else "-"
        kept = f"{topic.kept[floor]:.0%}" if topic else "-"
        mark = " (shipped)" if floor == FLOOR else ""
        lines.append(
            f"| {floor}{mark} | {written.tags / max(written.photos, 1):.1f} | "
            f"{written.f1:.3f} | {flood} | {kept} |"
        )
    return "\n".join(lines)


def side_tables(
    side: str, cases: Sequence[Case], topic: TopicResult | None, histories: Sequence[int]
) -> str:
    """Per user and history: F1@5 of the shipped ranking / the kNN vote / the user's top-5 tags /
    the generic pipeline; the written tags; the media-withheld ranking; the topic user."""
    users = list(dict.fromkeys(c.user for c in cases))
    by = {(c.user, c.history): c for c in cases}
    methods = (SHIPPED, VOTE, FREQUENT, GENERIC)
    head = " | ".join(f"{h} posts" for h in histories)
    lines = [
        f"**{side} users: F1@5, shipped / kNN vote / top-5 tags / generic** "
        f"(latest {TEST_POSTS} posts each)",
        "",
        f"| user | {head} |",
        "|---|" + "---:|" * len(histories),
    ]

    def cell(rows: Sequence[Case]) -> str:
        return " / ".join(f"{np.mean([c.f1[m] for c in rows]):.3f}" for m in methods)

    for user in users:
        lines.append(f"| {user} | " + " | ".join(cell([by[user, h]]) for h in histories) + " |")
    mean = [cell([c for c in cases if c.history == h]) for h in histories]
    lines.append("| **mean** | " + " | ".join(mean) + " |")
    margins, ceilings = [], []
    for h in histories:
        at = [c for c in cases if c.history == h]
        vote = np.mean([c.f1[SHIPPED] - c.f1[VOTE] for c in at])
        top = np.mean([c.f1[SHIPPED] - c.f1[FREQUENT] for c in at])
        margins.append(f"{h} posts: {vote:+.3f} over the vote, {top:+.3f} over the top-5 tags")
        ceiling = np.mean([c.f1[HEADROOM] for c in at])
        gain = np.mean([c.f1[HEADROOM] - c.f1[VOTE] for c in at])
        ceilings.append(f"{h} posts: {ceiling:.3f} ({gain:+.3f} over the vote)")
    lines += ["", "Shipped minus baselines (mean): " + "; ".join(margins) + "."]
    lines += [
        "",
        "Headroom: the kNN vote with neighbours found by what the photos truly show (their "
        "content tags joined to the vector), what a perfect image model would give the vote: "
        + "; ".join(ceilings)
        + ".",
    ]
    lines += [
        "",
        f"**{side} users: every hashtag written** (floor {FLOOR}; all test photos)",
        "",
        "| history | tags per photo | precision | recall | F1 | head abstained | under the floor |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for h in histories:
        written = sum((c.written[FLOOR] for c in cases if c.history == h), Written())
        lines.append(f"| {h} | {written.cells()} |")
    lines += [
        "",
        f"**{side} users, export without media** (text habits only: captions and hashtags; F1@5"
        " of the ranking / generic pipeline, and their ratio)",
        "",
        f"| user | {head} |",
        "|---|" + "---:|" * len(histories),
    ]
    for user in users:
        cells = []
        for h in histories:
            c = by[user, h]
            ratio = c.text_f1 / max(c.f1[GENERIC], 1e-9)
            cells.append(f"{c.text_f1:.3f} / {c.f1[GENERIC]:.3f} ({ratio:.1f}x)")
        lines.append(f"| {user} | " + " | ".join(cells) + " |")
    means = []
    for h in histories:
        text = np.mean([c.text_f1 for c in cases if c.history == h])
        generic = np.mean([c.f1[GENERIC] for c in cases if c.history == h])
        means.append(f"{text:.3f} / {generic:.3f} ({text / max(generic, 1e-9):.1f}x)")
    lines.append("| **mean** | " + " | ".join(means) + " |")
    lines += ["", f"**{side} users: post drafts** (the test photos)", ""]
    for h in histories:
        drafts = sum((c.drafts for c in cases if c.history == h), Drafts())
        lines.append(f"- {h} posts: {drafts.line()}")
    if topic:
        lines += [
            "",
            f"**{side} single-topic user** ({TOPIC_HISTORY} posts, each a dog photo with three or"
            f" four of {' '.join('#' + t for t in TOPIC_TAGS)}): a topic tag anywhere in the "
            f"written hashtags of {topic.others[FLOOR]:.1%} of {topic.n_others} photos of other "
            f"subjects; {topic.kept[FLOOR]:.0%} of {topic.n_topic} new dog photos keep one.",
        ]
    return "\n".join(lines)


def csmn_lines(
    users: dict[str, list[SyntheticUser]],
    embeddings: dict[str, np.ndarray],
    candidates: dict[str, Scored],
    history: int,
) -> str:
    """What the CSMN head adds, at the largest history: generating alone, and as a fifth score
    whose weight the choose users fit (the report users' F1@5 with it)."""
    from photobatch.models.prior import default_prior, harrison_idf
    from photobatch.training.csmn_head import fit_csmn_head

    idf = harrison_idf(default_prior())
    alone: dict[str, list[float]] = {}
    rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    tests: dict[str, list[tuple[list[str], np.ndarray, list[str]]]] = {}
    for side, people in users.items():
        for user in people:
            if user.recipe == "topic":
                continue
            posts = as_history(user.posts, embeddings, candidates)
            train, test = posts[-TEST_POSTS - history : -TEST_POSTS], posts[-TEST_POSTS:]
            head = train_on_posts(train)
            csmn = fit_csmn_head([(p.caption, p.hashtags, p.embedding) for p in train], idf)
            for p in test:
                if not p.hashtags:
                    continue
                assert p.embedding is not None
                alone.setdefault(side, []).append(prf(csmn.generate(p.embedding), p.hashtags, 5)[2])
                tags, x, off = head.features(p.embedding, p.candidates)
                generated = csmn.tag_scores(p.embedding)
                x = np.column_stack([x, [generated.get(t, 0.0) for t in tags]])[~off]
                kept = [t for t, o in zip(tags, off, strict=True) if not o]
                rows.setdefault(side, []).append((x, np.array([t in p.hashtags for t in kept])))
                tests.setdefault(side, []).append((kept, x, list(p.hashtags)))
    lines = [f"**The CSMN head** ({history} posts; F1@5, mean over the tagged test posts):", ""]
    for side in users:
        lines.append(f"- {side}: generating alone {np.mean(alone[side]):.3f}")
    if CHOOSE in rows and REPORT in tests:
        from photobatch.training.grounding import fit_logistic

        columns = [*PHOTO_COLUMNS, len(FEATURES)]
        x = np.concatenate([r for r, _ in rows[CHOOSE]])[:, columns]
        y = np.concatenate([labels for _, labels in rows[CHOOSE]]).astype(np.int64)
        w, b = fit_logistic(x, y, 1, l2=WEIGHT_PENALTY)
        with_head, without = [], []
        for tags, x, truth in tests[REPORT]:
            z = x[:, columns] @ w[0] + b[0]
            with_head.append(prf([tags[i] for i in np.argsort(-z, kind="stable")], truth, 5)[2])
            base = x[:, :-1] @ np.asarray(PHOTO_WEIGHTS[:-1]) + PHOTO_WEIGHTS[-1]
            without.append(prf([tags[i] for i in np.argsort(-base, kind="stable")], truth, 5)[2])
        lines.append(
            f"- report, the shipped scores plus the head's (weights fitted on the choose users: "
            f"{', '.join(f'{v:.2f}' for v in w[0])}): {np.mean(with_head):.3f} against "
            f"{np.mean(without):.3f} without it"
        )
    return "\n".join(lines)


# -- the user's own posts --------------------------------------------------------------------------


def evaluate_personalizer(
    index: Index, pipeline: Callable[[IndexPost], list[str]] | None = None
) -> str:
    """``photobatch evaluate personalizer``: the imported posts with a photo split by time (the
    latest 20% are the test), every method; the history keeps the posts without a photo.

    ``pipeline(post)`` gives the non-personalized tags of a post's photo; by default those the
    import or a scan stored for it.
    """
    posts = []
    for post in index.posts():
        history = history_from_index_post(index, post)
        tags = pipeline(post) if pipeline else stored_pipeline_tags(index, post)
        posts.append(replace(history, candidates=tuple(tags)))
    photos = [p for p in posts if p.embedding is not None]
    if len(photos) < 10:
        return f"personalizer evaluation: {len(photos)} imported posts with photos; need 10 or more"
    posts.sort(key=lambda p: p.taken_at)
    photos.sort(key=lambda p: p.taken_at)
    test = photos[len(photos) - max(1, round(0.2 * len(photos))) :]
    train = [p for p in posts if p.taken_at < test[0].taken_at]
    methods = [*baselines(train, test), shipped(train_on_posts(train), test)]
    title = f"Imported posts: {len(train)} train, latest {len(test)} with a photo test"
    return format_table(title, score(methods, [list(p.hashtags) for p in test]))
