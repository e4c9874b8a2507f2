"""``photobatch train grounding``: fit the grounding heads on the encoder's pooled embeddings.

Linear heads on the standardised 1280-d embedding (``photobatch.models.grounding``):

- person: Flickr8k train photos whose 5 references all name a person (positive) or none does
  (negative), ImageNet classes that show a person wearing or holding the object (positive),
  ImageNet animals, food, scenery and everyday objects that rarely show one (negative), and the
  scene classes that are empty of people (negative);
- dog: the same Flickr8k rule for dogs, ImageNet's 118 dog classes against its other classes,
  and the empty scenes;
- scene: 25 classes of ``broad/scenes``; every 4th photo of each class is held out;
- objects: one head for each of COCO's other object classes, which also reads the log-odds of
  ImageNet's probability for the object's counterpart classes where it has some. A Flickr8k train
  photo is a positive when any of its references names the object (CHAIR's synonyms, read from
  the data folder), an ImageNet photo when its class is a counterpart; every other photo of the
  two is a negative. Positives weigh sqrt(negatives / positives) each, halfway between the data's
  own odds and balanced classes (chosen on Flickr8k val: see GROUNDING.md).

Then the captions' confidence is calibrated (``photobatch.training.calibration``) on photos the
heads never saw. Full-batch L-BFGS from zero weights, L2 1e-3: the same data gives the same file,
byte for byte. Features come from the shared encoder and feature cache.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from photobatch.core.errors import UserError
from photobatch.core.text import letter_words
from photobatch.models.concepts import (
    CONCEPTS,
    DOG_NOUNS,
    HEAD_OBJECTS,
    OBJECT_IMAGENET,
    PERSON_NOUNS,
    object_membership,
)
from photobatch.models.grounding import CaptionerLike, Decision, Evidence, Grounding, logit
from photobatch.training.calibration import calibrate, captioned_set
from photobatch.training.chair import ChairVocabulary

L2 = 1e-3
SEED = 0
# Scenes with (almost) never a person or dog as the subject: negatives for both heads.
EMPTY_SCENES = frozenset(
    {
        "desert", "mountain", "ocean", "waterfall", "sky", "landscape", "bamboo forest",
        "rainforest", "windmill", "highway", "garden", "bedroom", "kitchen", "laundromat",
        "library", "computer room", "art gallery",
    }
)  # fmt: skip
# ImageNet classes whose photos show a person wearing or being the object: person positives.
PERSON_CLASSES = (
    981, 982, 983, 399, 400, 445, 578, 608, 610, 614, 617, 638, 639, 652, 655, 834, 841, 842,
    869, 697, 474, 601, 689, 775, 887,
)  # fmt: skip
DOG_CLASSES = range(151, 269)
# Concepts that often show a person (a rider, a player, a caller): never person negatives.
_WITH_PEOPLE = {"ball_sport", "racket", "ski", "bicycle", "motorcycle", "phone", "umbrella"}


def person_negative_classes() -> list[int]:
    """Animals, food, scenery and plants, plus everyday objects that rarely show a person."""
    classes = set(range(0, 398)) | set(range(923, 981)) | set(range(984, 1000))
    for concept in CONCEPTS:
        kind = concept.kind in ("vehicle", "room", "object", "street", "food", "drink")
        if kind and concept.name not in _WITH_PEOPLE:
            classes |= {i for i in concept.indices if 398 <= i < 923}
    return sorted(classes)


@dataclass
class Embedded:
    """Pooled embeddings and ImageNet logits of one photo set, in ``names`` order, and the
    feature maps they come from (what the captioner reads)."""

    names: list[str]
    pooled: np.ndarray
    logits: np.ndarray
    maps: np.ndarray


Embed = Callable[[Path, list[str]], Embedded]


def presence_labels(references: list[list[str]], nouns: frozenset[str]) -> np.ndarray:
    """1 when all of a photo's references name one of ``nouns``, 0 when none does, -1 else."""
    out = []
    for refs in references:
        k = sum(bool(letter_words(r) & nouns) for r in refs)
        out.append(1 if k == len(refs) else 0 if k == 0 else -1)
    return np.array(out)


def _read_csv(path: Path, columns: set[str]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not columns <= set(reader.fieldnames):
                raise UserError(f"{path}: expected a CSV with columns {','.join(sorted(columns))}")
            return list(reader)
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def imagenet_set(folder: Path) -> tuple[list[str], np.ndarray]:
    """``broad/imagenet``: photo names and their class indices (synsets in sorted order)."""
    rows = _read_csv(folder / "labels.csv", {"image", "synset"})
    synsets = sorted({r["synset"] for r in rows})
    if len(synsets) != 1000:
        raise UserError(f"{folder / 'labels.csv'}: expected the 1000 ImageNet-1k synsets")
    return [r["image"] for r in rows], np.array([synsets.index(r["synset"]) for r in rows])


def scene_set(folder: Path) -> tuple[list[str], list[str], np.ndarray]:
    """``broad/scenes``: names, labels, and the held-out mask (every 4th photo of a class)."""
    rows = _read_csv(folder / "labels.csv", {"image", "scene"})
    seen: dict[str, int] = {}
    held_out = []
    for r in rows:
        held_out.append(seen.get(r["scene"], 0) % 4 == 3)
        seen[r["scene"]] = seen.get(r["scene"], 0) + 1
    return [r["image"] for r in rows], [r["scene"] for r in rows], np.array(held_out)


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    classes: int,
    weights: np.ndarray | None = None,
    l2: float = L2,
) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression (binary when ``classes == 1``, else softmax) by full-batch L-BFGS,
    with ``l2`` times the squared weights added to the mean loss."""
    torch.manual_seed(SEED)
    X = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    Y = torch.from_numpy(y)
    w = torch.ones(len(y)) if weights is None else torch.from_numpy(weights.astype(np.float32))
    W = torch.zeros(classes, x.shape[1], requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS(
        [W, b], lr=1, max_iter=300, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        out = X @ W.T + b
        if classes == 1:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                out[:, 0], Y.float(), reduction="none"
            )
        else:
            loss = torch.nn.functional.cross_entropy(out, Y.long(), reduction="none")
        loss = (loss * w).sum() / w.sum() + l2 * (W**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach().numpy(), b.detach().numpy()


def balanced(y: np.ndarray) -> np.ndarray:
    """Sample weights that give every class the same total weight."""
    w = np.ones(len(y))
    values = np.unique(y)
    for c in values:
        w[y == c] = len(y) / (len(values) * (y == c).sum())
    return w


def _fit_presence(
    z: Callable[[np.ndarray], np.ndarray], parts: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([p for p, _ in parts])
    y = np.concatenate([labels for _, labels in parts])
    return fit_logistic(z(x), y, 1, balanced(y))


def object_labels(vocab: ChairVocabulary, references: list[list[str]]) -> np.ndarray:
    """``(photos, HEAD_OBJECTS)`` 1 where any of a photo's references names the object."""
    y = np.zeros((len(references), len(HEAD_OBJECTS)), np.float32)
    column = {name: j for j, name in enumerate(HEAD_OBJECTS)}
    for i, refs in enumerate(references):
        for name in vocab.mentioned(refs) & column.keys():
            y[i, column[name]] = 1
    return y


def imagenet_object_labels(classes: np.ndarray) -> np.ndarray:
    """``(photos, HEAD_OBJECTS)`` 1 where an ImageNet photo's class is the object's counterpart."""
    return np.stack(
        [np.isin(classes, OBJECT_IMAGENET.get(name, ())) for name in HEAD_OBJECTS], axis=1
    ).astype(np.float32)


def imagenet_object_probability(logits: np.ndarray) -> np.ndarray:
    """ImageNet's probability of each object's counterpart classes (0 where it has none)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)) @ object_membership()


def fit_objects(
    z: np.ndarray, imagenet_p: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One logistic head per object on the standardised embedding ``z`` plus a weight on the
    log-odds of ``imagenet_p`` (objects without ImageNet counterparts: none); positives weigh
    sqrt(negatives / positives). Returns ``W (K, D)``, ``b (K,)`` and ``v (K,)``."""
    torch.manual_seed(SEED)
    X = torch.from_numpy(np.ascontiguousarray(z, np.float32))
    Y = torch.from_numpy(y)
    L = torch.from_numpy(logit(imagenet_p).astype(np.float32))
    has = torch.tensor([bool(OBJECT_IMAGENET.get(n)) for n in HEAD_OBJECTS], dtype=torch.float32)
    positives = Y.sum(0)
    weight_pos = ((len(Y) - positives) / positives.clamp(min=1)).sqrt()
    W = torch.zeros(Y.shape[1], X.shape[1], requires_grad=True)
    b = torch.zeros(Y.shape[1], requires_grad=True)
    v = torch.zeros(Y.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS(
        [W, b, v], lr=1, max_iter=400, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        out = X @ W.T + b + v * has * L
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out, Y, reduction="none")
        weights = Y * weight_pos + (1 - Y)
        total = (loss * weights).mean() + L2 * (W**2).sum()
        total.backward()
        return total

    opt.step(closure)
    return W.detach().numpy(), b.detach().numpy(), (v * has).detach().numpy()


def fit_heads(
    flickr: Embedded,
    flickr_refs: list[list[str]],
    imagenet: Embedded,
    imagenet_classes: np.ndarray,
    scenes: Embedded,
    scene_labels: list[str],
    held_out: np.ndarray,
    vocab: ChairVocabulary,
) -> tuple[dict[str, np.ndarray], float]:
    """The heads' arrays (as ``Grounding`` reads them) and the scene head's held-out accuracy."""
    classes = sorted(set(scene_labels))
    sy = np.array([classes.index(s) for s in scene_labels])
    train_scenes = scenes.pooled[~held_out]
    pooled = np.concatenate([flickr.pooled, imagenet.pooled, train_scenes])
    mu, sd = pooled.mean(0), pooled.std(0) + 1e-6

    def z(a: np.ndarray) -> np.ndarray:
        return (a - mu) / sd

    empty = scenes.pooled[np.array([s in EMPTY_SCENES for s in scene_labels]) & ~held_out]
    no = np.zeros(len(empty), int)
    by_class = np.argsort(imagenet_classes)  # row of each class's photo
    yp = presence_labels(flickr_refs, PERSON_NOUNS)
    negatives = by_class[person_negative_classes()]
    person = _fit_presence(
        z,
        [
            (flickr.pooled[yp >= 0], yp[yp >= 0]),
            (imagenet.pooled[by_class[list(PERSON_CLASSES)]], np.ones(len(PERSON_CLASSES), int)),
            (imagenet.pooled[negatives], np.zeros(len(negatives), int)),
            (empty, no),
        ],
    )
    yd = presence_labels(flickr_refs, DOG_NOUNS)
    is_dog = np.isin(imagenet_classes, list(DOG_CLASSES)).astype(int)
    dog = _fit_presence(
        z, [(flickr.pooled[yd >= 0], yd[yd >= 0]), (imagenet.pooled, is_dog), (empty, no)]
    )
    objects = fit_objects(
        z(np.concatenate([flickr.pooled, imagenet.pooled])),
        imagenet_object_probability(np.concatenate([flickr.logits, imagenet.logits])),
        np.concatenate(
            [object_labels(vocab, flickr_refs), imagenet_object_labels(imagenet_classes)]
        ),
    )
    scene_W, scene_b = fit_logistic(z(train_scenes), sy[~held_out], len(classes))
    accuracy = float(
        ((z(scenes.pooled[held_out]) @ scene_W.T + scene_b).argmax(1) == sy[held_out]).mean()
    )
    heads = {
        "mu": mu.astype(np.float32),
        "sd": sd.astype(np.float32),
        "person_W": person[0],
        "person_b": person[1],
        "dog_W": dog[0],
        "dog_b": dog[1],
        "scene_W": scene_W,
        "scene_b": scene_b,
        "scene_classes": np.array(classes),
        "object_W": objects[0],
        "object_b": objects[1],
        "object_v": objects[2],
        "object_classes": np.array(HEAD_OBJECTS),
    }
    return heads, accuracy


def save_heads(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` with fixed zip timestamps, so equal weights make an equal file (and version)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            data = io.BytesIO()
            np.lib.format.write_array(data, np.asarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0)), data.getvalue())
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)


def train_grounding(
    data: Path,
    output: Path,
    embed: Embed,
    captioner: CaptionerLike,
    log: Callable[[str], None] = lambda _: None,
) -> str:
    """Fit the heads on ``data`` (laid out like the shared data folder), calibrate the captions'
    confidence with ``captioner`` on Flickr8k val and coco-dev, and save both to ``output``;
    returns a short report. ``embed(folder, names)`` gives maps, pooled and logits."""
    from photobatch.models.captions import read_captions, read_splits

    flickr_dir, coco_dir = data / "flickr8k", data / "broad" / "coco-dev"
    for required in (
        flickr_dir / "captions.csv",
        flickr_dir / "splits.csv",
        data / "broad" / "imagenet" / "labels.csv",
        data / "broad" / "scenes" / "labels.csv",
        coco_dir / "captions.csv",
        data / "chair" / "synonyms.txt",
    ):
        if not required.is_file():
            raise UserError(f"{required}: missing (lay --data out like the shared data folder)")
    vocab = ChairVocabulary.read(data / "chair" / "synonyms.txt")
    captions = read_captions(flickr_dir / "captions.csv")
    captions.splits = read_splits(flickr_dir / "splits.csv")
    train_names, val_names = captions.images("train"), captions.images("val")
    if not train_names or not val_names:
        raise UserError(f"{flickr_dir / 'splits.csv'}: needs train and val photos")
    inet_names, inet_classes = imagenet_set(data / "broad" / "imagenet")
    scene_names, scene_labels, held_out = scene_set(data / "broad" / "scenes")
    heads, accuracy = fit_heads(
        embed(flickr_dir / "images", train_names),
        [captions.captions[n] for n in train_names],
        embed(data / "broad" / "imagenet", inet_names),
        inet_classes,
        embed(data / "broad" / "scenes", scene_names),
        scene_labels,
        held_out,
        vocab,
    )
    log(
        f"fitted person, dog, {len(heads['scene_classes'])}-scene and "
        f"{len(heads['object_classes'])} object heads; calibrating the captions' confidence"
    )
    coco = read_captions(coco_dir / "captions.csv")
    uncalibrated = output.with_name(output.name + ".uncalibrated.npz")
    save_heads(uncalibrated, heads)
    try:
        grounding = Grounding(uncalibrated)
        sets = [
            captioned_set(
                name,
                grounding,
                caption_photos(grounding, captioner, embed(folder, names)),
                [refs.captions[n] for n in names],
                vocab,
            )
            for name, folder, refs, names in (
                ("Flickr8k val", flickr_dir / "images", captions, val_names),
                ("coco-dev", coco_dir, coco, coco.images()),
            )
        ]
    finally:
        uncalibrated.unlink(missing_ok=True)
    coefficients, point, report = calibrate(sets)
    heads["calibration"] = coefficients
    heads["describe"] = np.float64(point)
    save_heads(output, heads)
    return (
        f"saved {output}: person, dog, {len(heads['scene_classes'])}-scene and "
        f"{len(heads['object_classes'])} object heads from {len(train_names)} Flickr8k, "
        f"{len(inet_names)} ImageNet and {int((~held_out).sum())} scene photos; scene accuracy "
        f"on the held-out {int(held_out.sum())}: {accuracy:.1%}\n{report}"
    )


def caption_photos(
    grounding: Grounding, captioner: CaptionerLike, photos: Embedded, batch: int = 100
) -> list[tuple[Evidence, Decision]]:
    """Every photo's evidence and decision, as a scan makes them."""
    out: list[tuple[Evidence, Decision]] = []
    for lo in range(0, len(photos.names), batch):
        maps = torch.from_numpy(np.asarray(photos.maps[lo : lo + batch], np.float32))
        out += grounding.caption(
            captioner, maps, photos.pooled[lo : lo + batch], photos.logits[lo : lo + batch]
        )
    return out
