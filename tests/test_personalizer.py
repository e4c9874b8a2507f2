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
    personalizer_status,
)
from photobatch.research.personal_users import HOLDOUT, generate_users
from photobatch.training.personalizer import (
    HistoryPost,
    TrainSettings,
    train_on_posts,
    train_personalizer,
)

PROTOTYPES = np.random.default_rng(7).uniform(0, 2, size=(3, 1280)).astype(np.float32)
CONTENT = ("beach", "city", "food")
FAST = TrainSettings(epochs=40, batch_size=16, seed=0, draft=False)


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


def test_user_without_imported_posts_gets_the_plain_pipeline(tmp_path: Path) -> None:
    with Index(tmp_path / "index.db") as index:
        summary = train_personalizer(index, tmp_path / FILE_NAME, progress=False)
        status = personalizer_status(index, tmp_path / FILE_NAME)
    assert not (tmp_path / FILE_NAME).exists()
    assert "no imported posts" in summary
    assert "no imported posts" in status and "not personalized" in status
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
        assert all(p.caption != p.pipeline_caption for p in user.posts)


@pytest.mark.slow
def test_benchmark_table_runs(research_data: Path, tmp_path: Path) -> None:
    from photobatch.research.personal import run_benchmark

    table = run_benchmark(research_data, tmp_path, n_users=1, posts_per_user=60)
    assert "CSMN (personalized) + rerank" in table
    assert "all posts, hashtags and post text: personalizer: 60 posts" in table.splitlines()[-1]


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
        assert "trained" in personalizer_status(index, tmp_path / FILE_NAME)
        table = evaluate_personalizer(index, settings=settings)
    assert "| CSMN (personalized) + rerank |" in table and "latest 8 test" in table


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
