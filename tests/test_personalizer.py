"""Personal ranking: planted habits, the floor, off-topic habits, text habits, save/load, the
benchmark's unseen users and a small real run of it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from photobatch.core.records import Analysis, Post, PostMedia
from photobatch.library.index import Index
from photobatch.models.personal_memory import Memory
from photobatch.models.personalizer import (
    FILE_NAME,
    FLOOR,
    PersonalHead,
    Personalizer,
    PersonalizerStatus,
    personalizer_status,
)
from photobatch.research.personal import SHIPPED
from photobatch.research.personal_users import (
    CHOOSE,
    REPORT,
    TOPIC_TAGS,
    Harrison,
    generate_users,
    unseen_photos,
)
from photobatch.training.personalizer import (
    HistoryPost,
    memory_of,
    train_on_posts,
    train_personalizer,
)

PROTOTYPES = np.random.default_rng(7).uniform(0, 2, size=(3, 1280)).astype(np.float32)
CONTENT = ("beach", "city", "food")


def _photo(kind: int, rng: np.random.Generator) -> np.ndarray:
    return PROTOTYPES[kind] + rng.normal(0, 0.3, 1280).astype(np.float32)


def _user(habit_after: str, seed: int, posts: int = 60) -> list[HistoryPost]:
    """Posts of three kinds, each photo's candidate its kind; "surf" always follows
    ``habit_after`` for this user, "mylife" is on every other post."""
    rng = np.random.default_rng(seed)
    history = []
    for i in range(posts):
        kind = CONTENT[i % 3]
        tags = [kind, *(["surf"] if kind == habit_after else []), *(["mylife"] * (i % 2))]
        history.append(
            HistoryPost(
                f"2020-01-{i:03d}", f"a {kind} day", tuple(tags), _photo(i % 3, rng), (kind,)
            )
        )
    return history


def test_a_planted_habit_follows_its_photo_for_one_user_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(99)
    beach, city = _photo(0, rng), _photo(1, rng)
    surfer = train_on_posts(_user("beach", 1))
    other = train_on_posts(_user("city", 2))
    on_beach = surfer.written(beach, ["beach", "sand", "sea"], 10)
    assert list(on_beach)[:2] in (["beach", "surf"], ["surf", "beach"])
    assert "surf" not in other.written(beach, ["beach", "sand", "sea"], 10)
    assert "surf" in other.written(city, ["city"], 10)
    assert "sand" not in on_beach  # a candidate the user never posts has no evidence here
    assert all(s >= FLOOR for s in on_beach.values())
    assert list(on_beach.values()) == sorted(on_beach.values(), reverse=True)
    surfer.save(tmp_path / FILE_NAME)
    blank = Analysis("0" * 64, embedding=beach.astype("<f2").tobytes())  # no grounded candidates
    ranked = PersonalHead(tmp_path / FILE_NAME).personalize(blank, 3)
    assert (ranked.hashtags, ranked.hashtag_scores, ranked.post_text) == ([], {}, None)


def test_a_habit_whose_anchor_the_photo_lacks_is_dropped_not_ranked_last() -> None:
    rng = np.random.default_rng(3)
    surfer = train_on_posts(_user("beach", 4))
    assert surfer.memory.anchors["surf"] == {"beach"}
    ranked = surfer.rank(_photo(0, rng), ["city"])  # a beach-like photo the scan calls a city
    assert "surf" not in ranked and "mylife" in ranked  # the signature has no anchor


def test_save_and_load_with_weights_only_and_older_heads_still_rank(tmp_path: Path) -> None:
    posts = _user("beach", 4)[:30]
    head = train_on_posts(posts)
    head.save(tmp_path / FILE_NAME)
    torch.load(tmp_path / FILE_NAME, weights_only=True)
    loaded = Personalizer.load(tmp_path / FILE_NAME)
    photo = posts[0].embedding
    assert photo is not None
    assert loaded.rank(photo, ["beach"]) == pytest.approx(head.rank(photo, ["beach"]), abs=1e-3)
    assert isinstance(loaded.draft_post(photo), str)
    # a head of format 3 (a CSMN head beside a memory of photos) ranks with its memory
    memory = head.memory.state()
    old = {
        "format": 3,
        "tags": {"config": {}, "weights": {}, "vocab": [], "context": []},
        "memory": {
            "bank": memory["bank"],
            "tags": memory["tags"],
            "texts": memory["texts"],
            "content": memory["shown"],
            "typical": memory["typical"],
        },
        "summary": "old",
    }
    torch.save(old, tmp_path / "old.pt")
    again = Personalizer.load(tmp_path / "old.pt")
    assert list(again.rank(photo, ["beach"])) == list(head.rank(photo, ["beach"]))


def test_user_without_imported_posts_gets_the_plain_pipeline(tmp_path: Path) -> None:
    with Index(tmp_path / "index.db") as index:
        summary = train_personalizer(index, tmp_path / FILE_NAME)
        status = personalizer_status(index, tmp_path / FILE_NAME)
    assert not (tmp_path / FILE_NAME).exists()
    assert "no imported posts" in summary
    assert status == PersonalizerStatus(posts=0, tagged=0, trained=None)
    photo = Analysis(
        sha256="0" * 64,
        candidates=["dog", "beach", "sea"],
        candidate_scores={"dog": 0.9, "beach": 0.6, "sea": 0.5},
        embedding=np.ones(1280, "<f2").tobytes(),
    )
    ranked = PersonalHead(tmp_path / FILE_NAME).personalize(photo, 2)
    assert ranked.hashtags == ["dog", "beach"] and ranked.post_text is None
    assert ranked.personalized_by is None
    # the candidates keep their evidence scores
    assert ranked.hashtag_scores == {"dog": 0.9, "beach": 0.6}


def test_a_photo_unlike_any_of_the_users_gets_the_pipelines_tags_with_evidence(
    tmp_path: Path,
) -> None:
    """The head abstains; the written tags are the pipeline's that reach the floor, never the
    zero-evidence padding (#photooftheday)."""
    train_on_posts(_user("beach", 5)).save(tmp_path / FILE_NAME)
    stranger = np.random.default_rng(0).uniform(-2, 0, 1280).astype("<f2")
    photo = Analysis(
        sha256="1" * 64,
        candidates=["pizza", "pasta", "photooftheday"],
        candidate_scores={"pizza": 0.8, "pasta": 0.6, "photooftheday": 0.0},
        embedding=stranger.tobytes(),
    )
    ranked = PersonalHead(tmp_path / FILE_NAME).personalize(photo, 10)
    assert ranked.hashtags == ["pizza", "pasta"] and ranked.personalized_by is not None


# -- text habits: an export without its media -----------------------------------------------------


def test_an_export_without_media_ranks_by_text_habits() -> None:
    """Captions name what the photos showed; hashtags follow it. No photo, no vote: the
    candidates of a new photo still find the user's tags for them."""
    posts = [
        HistoryPost(f"2020-02-{i:03d}", f"Sunday at the {kind} with friends", tags)
        for i in range(40)
        for kind, tags in [(CONTENT[i % 3], (CONTENT[i % 3], f"{CONTENT[i % 3]}life", "sunday"))]
    ]
    head = train_on_posts(posts)
    assert "ranked by text habits" in head.summary and "0 with photos" in head.summary
    photo = _photo(0, np.random.default_rng(1))
    on_beach = list(head.written(photo, ["beach", "sea"], 10))
    assert set(on_beach[:3]) == {"beach", "beachlife", "sunday"}
    assert "citylife" not in on_beach
    assert head.draft_post(photo) is None  # a draft needs a similar past photo


# -- the benchmark ---------------------------------------------------------------------------------


def test_benchmark_users_post_only_photos_no_model_trained_on(research_data: Path) -> None:
    with (research_data / "flickr8k" / "splits.csv").open(encoding="utf-8") as f:
        trained = {
            f"flickr8k/images/{r['image']}" for r in csv.DictReader(f) if r["split"] != "val"
        }
    pool = {
        p.name: p for p in unseen_photos(research_data, Harrison.read(research_data / "harrison"))
    }
    assert not set(pool) & trained
    assert not any(n.startswith("broad/imagenet/") for n in pool)
    scenes = sorted(n for n in pool if n.startswith("broad/scenes/"))
    assert 480 <= len(scenes) <= 500  # the held-out quarter only
    users = generate_users(research_data, CHOOSE, (1, 1, 1), 60, topic_posts=30, other_photos=20)
    again = generate_users(research_data, CHOOSE, (1, 1, 1), 60, topic_posts=30, other_photos=20)
    report = generate_users(research_data, REPORT, (1, 1, 1), 60)
    assert [u.posts for u in users] == [u.posts for u in again]
    assert [u.recipe for u in users] == ["steady", "namer", "sparse", "topic"]
    for user in users + report:
        images = [p.image for p in (*user.posts, *user.others)]
        assert len(images) == len(set(images)) and set(images) <= set(pool)
        side = {pool[i].side for i in images}
        assert side == {CHOOSE if user in users else REPORT}
    namer, sparse = users[1], users[2]
    named = [bool(set(p.hashtags) & set(namer.habits)) for p in namer.posts]
    assert np.mean(named) < 0.05  # the namer's own words, not the content's
    assert np.mean([len(p.hashtags) for p in sparse.posts]) < 2


def test_the_benchmark_measures_every_written_tag(research_data: Path, tmp_path: Path) -> None:
    """A small real run: one half, one user of each recipe at 30 posts, the single-topic user
    with 40 photos of other subjects."""
    from photobatch.research.personal import run_benchmark

    table = run_benchmark(
        research_data,
        tmp_path,
        steady_users=1,
        histories=(30,),
        sides=(REPORT,),
        csmn=False,
        other_photos=40,
    )
    assert "report-steady-0" in table and "report-namer-0" in table and "report-sparse-0" in table
    written = next(line for line in table.splitlines() if line.startswith("| 30 |"))
    assert written.endswith("| 0 |")  # no written tag under the floor
    flood = table.split("written hashtags of ")[1]
    assert float(flood.split("%")[0]) <= 10.0
    # Knowing what the photos show finds better neighbours than the vector alone: the headroom
    # line says how much better a perfect image model would make the vote.
    headroom = table.split("Headroom: ")[1].split("\n")[0]
    assert float(headroom.split(" posts: ")[1].split("(")[1].split(" over")[0]) > 0.02


@pytest.mark.slow
def test_the_full_benchmark_meets_its_written_tag_targets(
    research_data: Path, tmp_path: Path
) -> None:
    from photobatch.research.personal import run_benchmark

    table = run_benchmark(research_data, tmp_path)
    for side in ("choose", "report"):
        part = table.split(f"**{side} single-topic user**")[1]
        others = float(part.split("written hashtags of ")[1].split("%")[0])
        kept = float(part.split("photos of other subjects; ")[1].split("%")[0])
        assert others <= 5.0 and kept >= 80.0
    rows = [line for line in table.splitlines() if line.startswith(("| 30 |", "| 50 |", "| 160 |"))]
    assert rows and all(line.endswith("| 0 |") for line in rows)


# -- the index -------------------------------------------------------------------------------------


def test_train_and_evaluate_from_the_index(tmp_path: Path) -> None:
    from photobatch.research.personal import evaluate_personalizer

    posts = []
    for i, h in enumerate(_user("beach", 5)[:40]):
        assert h.embedding is not None
        vector = h.embedding.astype("<f2").tobytes()
        media = PostMedia(
            "photo",
            f"m/{i}.jpg",
            sha256=f"{i:064d}",
            embedding=vector,
            candidates=list(h.candidates),
        )
        posts.append(Post(f"p{i}", h.taken_at, h.caption, list(h.hashtags), [media]))
    posts.append(Post("text", "2020-01-000", "a beach day #beach #surf", ["beach", "surf"]))
    with Index(tmp_path / "index.db") as index:
        index.write_posts(posts)
        summary = train_personalizer(index, tmp_path / FILE_NAME)
        assert (tmp_path / FILE_NAME).is_file() and "41 posts (40 with photos)" in summary
        status = personalizer_status(index, tmp_path / FILE_NAME)
        assert status.posts == status.tagged == 41 and "41 posts" in (status.trained or "")
        table = evaluate_personalizer(index)
    assert f"| {SHIPPED} |" in table and "latest 8 with a photo test" in table


def test_evaluation_compares_against_the_tags_before_personalization(tmp_path: Path) -> None:
    """A scanned photo's stored hashtags may already be the head's; the baseline must not be."""
    from photobatch.research.personal import stored_pipeline_tags

    sha = "a" * 64
    scanned = Analysis(
        sha, hashtags=["surf", "beach"], candidates=["beach", "sea"], personalized_by="head-1"
    )
    post = Post(
        "p1", "2020-01-01", "a beach day", ["beach"], [PostMedia("photo", "m/1.jpg", sha256=sha)]
    )
    with Index(tmp_path / "index.db") as index:
        index.write_batch([], [scanned])
        assert stored_pipeline_tags(index, post) == ["beach", "sea"]
        unscanned = Post("p2", None, "", [], [PostMedia("photo", "m/2.jpg", sha256="b" * 64)])
        assert stored_pipeline_tags(index, unscanned) == []
        imported = Post(
            "p3", None, "", [], [PostMedia("photo", "m/3.jpg", sha256=sha, candidates=["sand"])]
        )
        assert stored_pipeline_tags(index, imported) == ["sand"]


# -- real photos: habits follow the photo, the vote, the drafts -----------------------------------


def test_the_vote_of_similar_photos_leads_the_ranking() -> None:
    """A user whose tags follow the photo gets them first on new photos, whatever words the
    pipeline's candidates hold (seven of twelve, at random)."""
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(12)]
    posts = []
    for i in range(60):
        kind = i % 3
        drawn = tuple(str(w) for w in rng.choice(words, 7, replace=False))
        tags = (CONTENT[kind], "surf")
        posts.append(HistoryPost(f"2020-01-{i:03d}", f"day {i}", tags, _photo(kind, rng), drawn))
    head = train_on_posts(posts[:48])
    for post in posts[48:]:
        assert set(list(head.rank(post.embedding, post.candidates))[:2]) == set(post.hashtags)


@pytest.fixture(scope="module")
def dog_lover(research_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The benchmark's single-topic user on real unseen photos: 60 dog posts with three or four
    of six dog tags, 10 new dog photos, and 5 ImageNet food photos, each with the candidates a
    scan gives it."""
    from photobatch.core.config import Config
    from photobatch.research.personal import as_history
    from photobatch.research.personal_users import photo_features

    user = generate_users(research_data, REPORT, (0, 0, 0), 10, topic_posts=70, other_photos=0)[0]
    config = Config(index=tmp_path_factory.mktemp("library") / "index.db")
    names = [p.image for p in user.posts]
    pooled, scored = photo_features(research_data, names, tmp_path_factory.mktemp("dogs"), config)
    posts = as_history(
        user.posts, dict(zip(names, pooled, strict=True)), dict(zip(names, scored, strict=True))
    )
    food = [
        f"broad/imagenet/{n}"
        for n in (
            "n07693725.jpg",
            "n07697313.jpg",
            "n07697537.jpg",
            "n07873807.jpg",
            "n07880968.jpg",
        )
    ]
    vectors, tags = photo_features(research_data, food, tmp_path_factory.mktemp("food"), config)
    head = train_on_posts(posts[:60])
    return {"head": head, "dogs": posts[60:], "food": list(zip(vectors, tags, strict=True))}


def test_dog_tags_stay_on_dog_photos_and_off_everything_written_on_food(dog_lover: dict) -> None:
    from photobatch.models.personalizer import to_write

    head, topic = dog_lover["head"], set(TOPIC_TAGS)
    on_dogs = [set(head.written(p.embedding, p.candidates, 10)) & topic for p in dog_lover["dogs"]]
    assert sum(map(bool, on_dogs)) >= 6
    for vector, scored in dog_lover["food"]:
        candidates = [t for t, _ in scored]
        written, _ = to_write(head.rank(vector, candidates), dict(scored), 10)
        assert not set(written) & topic, (candidates, written)
        assert written and all(s >= FLOOR for s in written.values())


def test_drafts_follow_the_photo_keep_emoji_and_may_be_none(dog_lover: dict) -> None:
    head = dog_lover["head"]
    drafts = [head.draft_post(p.embedding, p.candidates) for p in dog_lover["dogs"]]
    written = [d for d in drafts if d]
    assert len(written) >= 5 and max(map(written.count, written)) <= 2
    assert all(d in head.memory.texts for d in written)
    rng = np.random.default_rng(0)
    posts = [
        HistoryPost(f"2020-01-{i:02d}", f"Sunset swim 🌊🐚 #surf @{i}", ("surf",), _photo(0, rng))
        for i in range(12)
    ]
    surfer = train_on_posts(posts)
    assert surfer.draft_post(posts[0].embedding) == "Sunset swim 🌊🐚"
    assert surfer.draft_post(_photo(2, rng)) is None


def test_the_vote_of_similar_photos_beats_the_users_frequent_tags(
    research_data: Path, tmp_path: Path
) -> None:
    """On a benchmark user with 100 past posts of unseen photos, the kNN vote (the bar the
    ranking must clear) beats the user's five most frequent tags on the next 30 posts."""
    from photobatch.core.config import Config
    from photobatch.research.personal import knn_vote, most_frequent, prf
    from photobatch.research.personal_users import photo_features

    user = generate_users(research_data, REPORT, (1, 0, 0), 130)[0]
    names = [p.image for p in user.posts]
    config = Config(index=tmp_path / "index.db")
    pooled, _ = photo_features(research_data, names, tmp_path, config)
    history = [
        HistoryPost(p.taken_at, "", p.hashtags, v) for p, v in zip(user.posts, pooled, strict=True)
    ]
    train, test = history[:100], history[100:]
    frequent = most_frequent(train)[:5]
    vote = np.mean([prf(knn_vote(train, p.embedding), p.hashtags, 5)[2] for p in test])
    freq = np.mean([prf(frequent, p.hashtags, 5)[2] for p in test])
    assert vote > freq + 0.03, (vote, freq)


def test_memory_of_posts_with_and_without_photos() -> None:
    posts = _user("beach", 6, posts=12)
    mixed = [*posts, HistoryPost("2021", "Lunch in town #city", ("city",))]
    memory = memory_of(mixed)
    assert isinstance(memory, Memory) and len(memory.bank) == 12 and len(memory.tags) == 13
    assert memory.photos == list(range(12)) and "lunch" in memory.shown[-1]
