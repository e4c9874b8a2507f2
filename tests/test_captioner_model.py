"""The SAT model, caption data handling, checkpoints, and training on real shared photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from photobatch.core.config import CaptionerConfig
from photobatch.core.text import tokenize
from photobatch.models.captioner import Captioner, load_checkpoint, save_checkpoint
from photobatch.models.captions import Vocabulary, read_captions, read_splits
from photobatch.models.nn.decoding import DecodeOptions, greedy
from photobatch.models.nn.sat import SATConfig, ShowAttendTell, attention_penalty, regions

TINY = SATConfig(vocab_size=30, encoder_dim=16, embed_dim=8, hidden_dim=12, attention_dim=10)


def test_regions_are_the_49_cells_row_major() -> None:
    fmap = torch.arange(2 * 3 * 49, dtype=torch.float32).view(2, 3, 7, 7)
    r = regions(fmap)
    assert r.shape == (2, 49, 3)
    assert torch.equal(r[1, 7 * 2 + 5], fmap[1, :, 2, 5])


def test_forward_shapes_and_attention_is_a_distribution() -> None:
    torch.manual_seed(0)
    model = ShowAttendTell(TINY)
    logits, alphas = model(torch.randn(4, 16, 7, 7), torch.randint(0, 30, (4, 9)))
    assert logits.shape == (4, 8, 30)
    assert alphas.shape == (4, 8, 49)
    torch.testing.assert_close(alphas.sum(dim=2), torch.ones(4, 8))


def test_initial_state_depends_only_on_the_mean_feature() -> None:
    model = ShowAttendTell(TINY)
    fmap = torch.randn(1, 16, 7, 7)
    shuffled = fmap.flatten(2)[:, :, torch.randperm(49)].view(1, 16, 7, 7)
    torch.testing.assert_close(model.start(fmap).h, model.start(shuffled).h)


def test_attention_penalty() -> None:
    # Attending each region exactly once over 49 steps is the penalty's minimum: zero.
    once = torch.eye(49).unsqueeze(0)
    assert attention_penalty(once, torch.ones(1, 49)).item() == pytest.approx(0.0)
    # Looking at one region all the time: that region is over-covered, the others never seen.
    stuck = torch.zeros(1, 3, 49)
    stuck[:, :, 0] = 1
    assert attention_penalty(stuck, torch.ones(1, 3)).item() == pytest.approx(4 + 48)
    # Padded steps add nothing.
    assert attention_penalty(stuck, torch.tensor([[1.0, 0, 0]])).item() == pytest.approx(48)


def test_tokenize_and_vocabulary_round_trip() -> None:
    assert tokenize("A black-and-white dog's ball .") == [
        "a",
        "black",
        "and",
        "white",
        "dog",
        "s",
        "ball",
    ]
    vocab = Vocabulary.build([["a", "dog"], ["a", "cat"], ["a", "dog"]], min_count=2)
    assert vocab.to_list() == ["<pad>", "<start>", "<end>", "<unk>", "a", "dog"]
    ids = vocab.encode(["a", "dog", "cat"])
    assert ids == [vocab.start, 4, 5, vocab.unk, vocab.end]
    assert vocab.decode(ids) == ["a", "dog"]
    assert Vocabulary(vocab.to_list()).index == vocab.index
    with pytest.raises(ValueError):
        Vocabulary(["a", "dog"])


def test_caption_readers(tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text('image,caption\n1.jpg,"A dog, running ."\n1.jpg,A dog\n2.jpg,A cat\n')
    data = read_captions(csv_path)
    assert data.captions == {"1.jpg": ["A dog, running .", "A dog"], "2.jpg": ["A cat"]}
    splits = tmp_path / "s.csv"
    splits.write_text("image,split\n1.jpg,train\n2.jpg,val\n")
    assert read_splits(splits) == {"1.jpg": "train", "2.jpg": "val"}

    coco = tmp_path / "captions_val2017.json"
    coco.write_text(
        json.dumps(
            {
                "images": [{"id": 7, "file_name": "000007.jpg"}],
                "annotations": [
                    {"id": 1, "image_id": 7, "caption": "A bus."},
                    {"id": 2, "image_id": 7, "caption": "A red bus."},
                ],
            }
        )
    )
    assert read_captions(coco).captions == {"000007.jpg": ["A bus.", "A red bus."]}

    karpathy = tmp_path / "dataset_flickr30k.json"
    karpathy.write_text(
        json.dumps(
            {
                "images": [
                    {"filename": "1.jpg", "split": "restval", "sentences": [{"raw": "A man."}]},
                    {"filename": "2.jpg", "split": "val", "sentences": [{"raw": "A boy."}]},
                ]
            }
        )
    )
    data = read_captions(karpathy)
    assert data.images("train") == ["1.jpg"]
    assert data.images("val") == ["2.jpg"]
    with pytest.raises(ValueError):
        read_captions(splits)  # not image,caption


def test_checkpoint_loads_weights_only_and_captions_identically(tmp_path: Path) -> None:
    torch.manual_seed(0)
    words = ["<pad>", "<start>", "<end>", "<unk>", *(f"w{i}" for i in range(26))]
    model = ShowAttendTell(TINY).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, Vocabulary(words), {"note": "test"})
    payload = torch.load(path, weights_only=True)
    assert payload["vocab"] == words
    assert payload["meta"] == {"note": "test"}
    _, vocab, _ = load_checkpoint(path)
    fmap = torch.randn(3, 16, 7, 7)
    options = DecodeOptions(beam_size=1, max_length=8, min_length=2)
    # float16 storage rounds the weights: compare with the rounded originals.
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    expected = greedy(model, fmap, vocab.start, vocab.end, options)
    captioner = Captioner(
        "cpu", CaptionerConfig(model=path, beam_size=1, max_length=8, min_length=2)
    )
    results = captioner.caption(fmap)
    assert captioner.tag == f"sat@{captioner.version}"  # identity is content, not the file name
    assert captioner.tag != Captioner("cpu", CaptionerConfig(beam_size=1, max_length=8)).tag
    for result, hyp in zip(results, expected, strict=True):
        assert result.tokens == vocab.decode(hyp.tokens)
        assert result.attention.shape == (len(result.tokens), 49)
        assert result.text.endswith(".") and result.text[0].isupper()
    assert captioner.caption(torch.zeros(0, 16, 7, 7)) == []


# --- real photos (shared Flickr8k) and the real encoder --------------------------------------


def _flickr(research_data: Path) -> Path:
    return research_data / "flickr8k"


def _first_train_photos(research_data: Path, n: int) -> tuple[list[str], dict[str, list[str]]]:
    root = _flickr(research_data)
    splits = read_splits(root / "splits.csv")
    data = read_captions(root / "captions.csv")
    names = [name for name in data.images() if splits.get(name) == "train"][:n]
    return names, {name: data.captions[name] for name in names}


def test_tiny_model_overfits_a_few_photos_and_reproduces_their_captions(
    research_data: Path, tmp_path: Path
) -> None:
    from photobatch.training.captioner import TrainConfig, train_epoch
    from photobatch.training.features import encode_images

    names, captions = _first_train_photos(research_data, 8)
    targets = {name: captions[name][0] for name in names}  # one caption each, to memorize
    feats = torch.from_numpy(
        encode_images(
            _flickr(research_data) / "images", names, tmp_path, torch.device("cpu")
        ).copy()
    )
    vocab = Vocabulary.build((tokenize(t) for t in targets.values()), min_count=1)
    seqs = [vocab.encode(tokenize(targets[n])) for n in names]
    ids = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
    for i, seq in enumerate(seqs):
        ids[i, : len(seq)] = torch.tensor(seq)
    torch.manual_seed(0)
    model = ShowAttendTell(
        SATConfig(len(vocab), embed_dim=64, hidden_dim=128, attention_dim=64, dropout=0.0)
    )
    cfg = TrainConfig(batch_size=8, lr=1e-2, attention_reg=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=vocab.pad)
    shuffler = torch.Generator().manual_seed(0)
    for _ in range(400):
        loss = train_epoch(model, optimizer, loss_fn, feats, (torch.arange(8), ids), cfg, shuffler)
        if loss < 0.001:
            break
    assert loss < 0.002

    path = tmp_path / "overfit.pt"
    save_checkpoint(path, model, vocab, {})
    captioner = Captioner("cpu", CaptionerConfig(model=path, min_length=1, max_length=30))
    results = captioner.caption(feats.float())
    for name, result in zip(names, results, strict=True):
        assert result.tokens == tokenize(targets[name])


def test_train_captioner_end_to_end_and_resume(research_data: Path, tmp_path: Path) -> None:
    from photobatch.training.captioner import TrainConfig, train_captioner

    root = _flickr(research_data)
    names, captions = _first_train_photos(research_data, 12)
    csv_path = tmp_path / "captions.csv"
    lines = ["image,caption"] + [f'{n},"{c}"' for n in names for c in captions[n]]
    csv_path.write_text("\n".join(lines) + "\n")
    splits = tmp_path / "splits.csv"
    splits.write_text(
        "image,split\n"
        + "".join(f"{n},{'val' if i < 3 else 'train'}\n" for i, n in enumerate(names))
    )
    cfg = TrainConfig(
        embed_dim=16, hidden_dim=32, attention_dim=16, batch_size=16, max_epochs=2, min_count=1
    )
    out = tmp_path / "model" / "captioner.pt"
    kwargs = {"device": "cpu", "cache_dir": tmp_path / "cache", "workers": 0}
    first = train_captioner(csv_path, root / "images", splits, out, config=cfg, **kwargs)
    assert first.epochs_run == 2 and (first.train_images, first.val_images) == (9, 3)
    assert set(first.val_scores) >= {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"}
    payload = torch.load(out, weights_only=True)
    assert payload["meta"]["train_config"]["hidden_dim"] == 32

    longer = TrainConfig(**{**cfg.__dict__, "max_epochs": 3})
    with pytest.raises(ValueError, match="different run"):
        train_captioner(csv_path, root / "images", splits, out, config=longer, **kwargs)
    state = torch.load(out.with_name(out.name + ".train-state.pt"), weights_only=True)
    assert state["progress"]["epoch"] == 2
    assert len(list((tmp_path / "cache").glob("features-*.npy"))) == 1
