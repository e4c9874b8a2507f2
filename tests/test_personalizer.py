"""Personalizer: planted habits, determinism, save/load, and users without imported posts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from photobatch.core.records import Analysis
from photobatch.library.index import Index
from photobatch.models.personalizer import (
    FILE_NAME,
    PersonalHead,
    Personalizer,
    PersonalizerStatus,
    personalizer_status,
)
from photobatch.research.personal import SHIPPED
from photobatch.research.personal_users import HOLDOUT, generate_users
from photobatch.training.personalizer import (
    HistoryPost,
    TrainSettings,
    train_on_posts,
    train_personalizer,
)

PROTOTYPES = np.random.default_rng(7).uniform(0, 2, size=(3, 1280)).astype(np.float32)
CONTENT = ("beach", "city", "food")
FAST = TrainSettings(epochs=40, batch_size=16, seed=0)


def _photo(kind: int, rng: np.random.Generator) -> np.ndarray:
    return PROTOTYPES[kind] + rng.normal(0, 0.3, 1280).astype(np.float32)


def _user(habit_after: str, seed: int) -> list[HistoryPost]:
    """60 posts of three kinds; "surf" always follows ``habit_after`` for this user."""
    rng = np.random.default_rng(seed)
    posts = []
    for i in range(60):
        kind = i % 3
        tags = [CONTENT[kind], *(["surf"] if CONTENT[kind] == habit_after else [])]
        posts.append(
            HistoryPost(
                f"2020-01-{i:03d}", f"a {CONTENT[kind]} day", tuple(tags), _photo(kind, rng)
            )
        )
    return posts


def _idf(term: str) -> float:
    return 1.0


def test_head_learns_a_planted_habit_for_one_user_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(99)
    beach, city = _photo(0, rng), _photo(1, rng)
    surfer = train_on_posts(_user("beach", 1), _idf, FAST)
    other = train_on_posts(_user("city", 2), _idf, FAST)
    assert "surf" in surfer.generate(beach)
    assert "surf" not in other.generate(beach)
    assert "surf" in other.generate(city)
    assert surfer.rerank(beach, ["beach", "sand", "sea"], 2) == ["beach", "surf"]
    assert "surf" not in other.rerank(beach, ["beach", "sand", "sea"], 3)
    scores = surfer.rerank_scored(beach, ["beach", "sand", "sea"], 2)
    assert list(scores) == ["beach", "surf"] and scores["beach"] == 1.0 > scores["surf"] > 0
    surfer.save(tmp_path / FILE_NAME)
    blank = Analysis("0" * 64, embedding=beach.astype("<f2").tobytes())  # no grounded candidates
    ranked = PersonalHead(tmp_path / FILE_NAME).personalize(blank, 3)
    assert (ranked.hashtags, ranked.hashtag_scores, ranked.post_text) == ([], {}, None)


def test_training_is_deterministic_under_a_seed() -> None:
    posts = _user("beach", 3)[:30]
    settings = TrainSettings(epochs=2, batch_size=8, seed=5)
    a = train_on_posts(posts, _idf, settings).tags.model.state_dict()
    b = train_on_posts(posts, _idf, settings).tags.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_save_and_load_with_weights_only(tmp_path: Path) -> None:
    posts = _user("beach", 4)[:30]
    head = train_on_posts(posts, _idf, TrainSettings(epochs=2, batch_size=8))
    head.save(tmp_path / FILE_NAME)
    torch.load(tmp_path / FILE_NAME, weights_only=True)
    loaded = Personalizer.load(tmp_path / FILE_NAME)
    photo = posts[0].embedding
    assert loaded.rerank(photo, ["beach"], 3) == head.rerank(photo, ["beach"], 3)
    assert isinstance(loaded.draft_post(photo), str)
    # a head of format 2 (with the weights of a mix fitted per user) ranks as it is
    state = torch.load(tmp_path / FILE_NAME, weights_only=True)
    torch.save({**state, "format": 2, "weights": [3.5, 3.7, 7.9, 1.4, -4.9]}, tmp_path / "old.pt")
    old = Personalizer.load(tmp_path / "old.pt")
    assert old.rerank(photo, ["beach"], 3) == head.rerank(photo, ["beach"], 3)


def test_user_without_imported_posts_gets_the_plain_pipeline(tmp_path: Path) -> None:
    with Index(tmp_path / "index.db") as index:
        summary = train_personalizer(index, tmp_path / FILE_NAME, progress=False)
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


def test_benchmark_users_are_deterministic_and_disjoint(research_data: Path) -> None:
    users = generate_users(research_data, n_users=2, posts_per_user=40, seed=0)
    again = generate_users(research_data, n_users=2, posts_per_user=40, seed=0)
    assert [u.posts for u in users] == [u.posts for u in again]
    assert [u.name for u in users] == ["bench-0", "bench-1", HOLDOUT]
    photos = [{p.image for p in u.posts} for u in users]
    assert not (photos[0] & photos[1]) and not (photos[2] & (photos[0] | photos[1]))
    for user in users:
        signature_share = np.mean([user.signature[0] in p.hashtags for p in user.posts])
        assert signature_share > 0.7


@pytest.mark.slow
def test_benchmark_table_runs(research_data: Path, tmp_path: Path) -> None:
    from photobatch.research.personal import run_benchmark

    table = run_benchmark(research_data, tmp_path, n_users=1, histories=(40,), topic_history=40)
    assert SHIPPED in table and "kNN vote" in table and "Single-topic user (40 posts" in table
    assert "Training time, holdout user, 40 posts: personalizer: 40 posts" in table.splitlines()[-1]


def test_train_and_evaluate_from_the_index(tmp_path: Path) -> None:
    from photobatch.core.records import Post, PostMedia
    from photobatch.research.personal import evaluate_personalizer

    posts = []
    for i, h in enumerate(_user("beach", 5)[:40]):
        media = PostMedia(
            "photo", f"m/{i}.jpg", sha256=f"{i:064d}", embedding=h.embedding.astype("<f2").tobytes()
        )
        posts.append(Post(f"p{i}", h.taken_at, h.caption, list(h.hashtags), [media]))
    settings = TrainSettings(epochs=3, batch_size=16)
    with Index(tmp_path / "index.db") as index:
        index.write_posts(posts)
        summary = train_personalizer(index, tmp_path / FILE_NAME, settings, progress=False)
        assert (tmp_path / FILE_NAME).is_file() and "40 posts" in summary
        status = personalizer_status(index, tmp_path / FILE_NAME)
        assert status.posts == status.tagged == 40 and "40 posts" in (status.trained or "")
        table = evaluate_personalizer(index, settings=settings)
    assert f"| {SHIPPED} |" in table and "latest 8 test" in table


def test_evaluation_compares_against_the_tags_before_personalization(tmp_path: Path) -> None:
    """A scanned photo's stored hashtags may already be the head's; the baseline must not be."""
    from photobatch.core.records import Analysis, Post, PostMedia
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


def test_training_progress_bars_stay_out_of_a_log(capfd: pytest.CaptureFixture[str]) -> None:
    """stderr captured here is a file, as under cron: no bar may end up in it."""
    train_on_posts(_user("beach", 1), _idf, TrainSettings(epochs=2, batch_size=8), progress=True)
    assert "personalizer:" not in capfd.readouterr().err


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
    head = train_on_posts(posts[:48], _idf, TrainSettings(epochs=3, batch_size=16))
    for post in posts[48:]:
        assert set(head.rerank(post.embedding, post.candidates, 2)) == set(post.hashtags)


@pytest.fixture(scope="module")
def dog_lover(research_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The benchmark's single-topic user on real photos: 60 dog posts with #goodboy..., 10 new
    dog photos, and 5 ImageNet food photos, each with the candidates a scan gives it."""
    from photobatch.core.config import Config
    from photobatch.research.personal import bench_posts
    from photobatch.research.personal_users import TOPIC_USER, photo_features

    user = next(
        u
        for u in generate_users(research_data, 0, 10, seed=0, topic_posts=70)
        if u.name == TOPIC_USER
    )
    names = [p.image for p in user.posts]
    config = Config(index=tmp_path_factory.mktemp("library") / "index.db")
    images = research_data / "flickr8k" / "images"
    pooled, candidates = photo_features(images, names, tmp_path_factory.mktemp("dogs"), config)
    posts = bench_posts(
        user.posts, dict(zip(names, pooled, strict=True)), dict(zip(names, candidates, strict=True))
    )
    food_dir = research_data / "broad" / "imagenet"
    files = ["n07693725.jpg", "n07697313.jpg", "n07697537.jpg", "n07873807.jpg", "n07880968.jpg"]
    vectors, tags = photo_features(food_dir, files, tmp_path_factory.mktemp("food"), config)
    food = list(zip(vectors, tags, strict=True))
    head = train_on_posts(posts[:60], _idf, TrainSettings(epochs=10, batch_size=16))
    return {"head": head, "dogs": posts[60:], "food": food}


def test_a_dog_habit_stays_on_dog_photos(dog_lover: dict) -> None:
    head, topic = dog_lover["head"], {"goodboy", "dogmom", "biscuitthedog"}
    on_dogs = [set(head.rerank(p.embedding, p.candidates, 5)) & topic for p in dog_lover["dogs"]]
    assert sum(map(bool, on_dogs)) >= 7
    for vector, candidates in dog_lover["food"]:
        ranked = head.rerank(vector, candidates, 5)
        assert not set(ranked) & topic, (candidates, ranked)
        assert set(candidates[:2]) <= set(ranked[:3]), (candidates, ranked)


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
    surfer = train_on_posts(posts, _idf, TrainSettings(epochs=1))
    assert surfer.draft_post(posts[0].embedding) == "Sunset swim 🌊🐚"
    assert surfer.draft_post(_photo(2, rng)) is None


def test_the_vote_of_similar_photos_beats_the_users_frequent_tags(
    research_data: Path, tmp_path: Path
) -> None:
    """On a benchmark user with 100 past posts, the kNN vote (the bar the ranking must clear)
    beats the user's five most frequent tags on the next 30 posts."""
    from collections import Counter

    from photobatch.core.config import Config
    from photobatch.research.personal import knn_vote, prf
    from photobatch.research.personal_users import photo_features

    user = generate_users(research_data, 1, 130, seed=0)[0]
    posts = sorted(user.posts, key=lambda p: p.taken_at)
    names = [p.image for p in posts]
    config = Config(index=tmp_path / "index.db")
    pooled, _ = photo_features(research_data / "flickr8k" / "images", names, tmp_path, config)
    history = [
        HistoryPost(p.taken_at, "", p.hashtags, v) for p, v in zip(posts, pooled, strict=True)
    ]
    train, test = history[:100], history[100:]
    counts = Counter(t for p in train for t in p.hashtags)
    frequent = sorted(counts, key=lambda t: (-counts[t], t))[:5]
    vote = np.mean([prf(knn_vote(train, p.embedding), p.hashtags, 5)[2] for p in test])
    freq = np.mean([prf(frequent, p.hashtags, 5)[2] for p in test])
    assert vote > freq + 0.03, (vote, freq)
