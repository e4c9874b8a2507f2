"""Grounding: what a photo's encoder outputs support, so captions and hashtags claim only that.

The Show-Attend-Tell captioner knows Flickr8k's world of people and dogs and names one in nearly
every everyday photo, and any other object it has words for. Grounding checks its claims against
evidence the encoder already gives:

- small heads on the pooled embedding (``models/grounding.npz``): person, dog, 25 scenes, and one
  for each of COCO's other object classes (``photobatch.core.objects``), the last ones also
  reading ImageNet's probability of the object's counterpart classes where it has them;
- ImageNet's 1,000 classes summed into coarse concepts (``photobatch.models.concepts``);
- how flat the ImageNet distribution is and how strong the embedding is (blank frames).

From that it decides which words the beam search may not write (every object the photo does not
support), which caption to keep (the captioner's sentence when a person or dog is supported, else
a concept or scene caption that names only supported objects, else none) with its source, and a
confidence: the calibrated probability that the caption invents no object (a logistic model of
the caption's evidence, fitted by ``photobatch train grounding`` on captions the heads never
trained on). Hashtags are ordered by evidence, each with a score, and none names an object the
photo does not support. All of it is numpy, well under a millisecond a photo; the thresholds are
in ``Thresholds``. models/GROUNDING.md has the measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from photobatch.core.errors import UserError
from photobatch.core.objects import named_objects, object_words, term_owners
from photobatch.models import concepts
from photobatch.models.base import Model
from photobatch.models.concepts import (
    CONCEPTS,
    HEAD_OBJECTS,
    OBJECT_IMAGENET,
    SCENE_CAPTIONS,
    Concept,
)
from photobatch.models.hashtags import (
    FALLBACK_TAGS,
    PERSON_WORDS,
    dedupe,
    expand,
    normalize_tag,
    suggest_hashtags,
)
from photobatch.weights import shipped

if TYPE_CHECKING:
    from photobatch.models.prior import HashtagPrior

SHIPPED_HEADS = "grounding.npz"
HEAD_ARRAYS = (
    "mu", "sd", "person_W", "person_b", "dog_W", "dog_b", "scene_W", "scene_b", "object_W",
    "object_b", "object_v",
)  # fmt: skip
# Caption sources, as stored in the index (docs/captions-and-hashtags.md explains them).
SAT, SAT_WEAK, CONCEPT, SCENE, NONE = "sat", "sat-weak", "concept", "scene", "none"
SOURCES = (SAT, CONCEPT, SCENE, SAT_WEAK)
# What the calibrated confidence reads of a caption (``reliability_features``), in order.
FEATURES = (
    *(f"source={s}" for s in SOURCES),
    "weakest named object (logit)",
    "objects named",
    "sentence log-probability per word",
    "support (logit)",
    "ImageNet entropy",
    "person head (logit)",
    "dog head (logit)",
)
_LOGIT_CAP = 6.0  # evidence logits are clipped to +-6 (p 0.0025 .. 0.9975)


@dataclass(frozen=True)
class Thresholds:
    """Every number the decisions use (chosen on Flickr8k val, checked on coco-dev; see
    GROUNDING.md)."""

    person: float = 0.3  # person head probability: below it person words are banned
    dog: float = 0.3  # dog head probability: below it dog words are banned
    person_sure: float = 0.95  # a person head this sure is never vetoed by ImageNet
    object_veto: float = 0.5  # a non-living concept this likely vetoes the person head
    animal_veto: float = 0.3  # another animal this likely (and likelier than dog) vetoes the dog
    object: float = 0.5  # object head probability: below it the object's words are banned
    concept: float = 0.3  # concept probability for a concept caption (and ImageNet's own
    #                       probability that supports an object without its head)
    scene: float = 0.5  # scene head probability for a scene caption
    scene_agree: float = 0.15  # a concept this likely must be of a kind the scene shows
    animal_class: float = 0.2  # an animal is asserted only when its top ImageNet class is this sure
    caption: float = 0.25  # below this support an unsupported captioner sentence is dropped
    sat_scale: float = 2.5  # captioner support = scale x exp(beam log-prob per word), <= 1
    blank_entropy: float = 5.8  # ImageNet entropy (nats) above which nothing is nameable
    blank_norm: float = 10.0  # pooled-embedding norm below which the frame is (near-)uniform
    concept_entropy: float = 4.9  # concept and scene captions need a less flat distribution
    tag_concept: float = 0.2  # concept probability for its hashtags
    tag_class: float = 0.15  # ImageNet class probability for its own name as a tag (#bagel)
    tag_scene: float = 0.5  # scene head probability for the scene as a tag


@dataclass(frozen=True)
class Evidence:
    """What the encoder's outputs say about one photo."""

    p_person: float
    p_dog: float
    scene: str
    p_scene: float
    concept_p: np.ndarray  # (len(CONCEPTS),) summed ImageNet probabilities
    top_class: int  # ImageNet argmax
    p_top_class: float
    entropy: float  # of the ImageNet softmax, nats
    norm: float  # L2 norm of the pooled embedding
    person: bool  # a person is supported (head, after ImageNet's veto)
    dog: bool  # a dog is supported
    object_p: np.ndarray  # (len(HEAD_OBJECTS),) object head probabilities
    present: frozenset[str]  # the object classes the photo supports, person and dog included

    @property
    def top_concept(self) -> tuple[Concept, float]:
        j = int(self.concept_p.argmax())
        return CONCEPTS[j], float(self.concept_p[j])

    def concepts_above(self, threshold: float) -> list[tuple[Concept, float]]:
        order = np.argsort(-self.concept_p, kind="stable")
        return [
            (CONCEPTS[j], float(self.concept_p[j])) for j in order if self.concept_p[j] >= threshold
        ]

    def probability(self, name: str) -> float:
        """How likely the photo shows object class ``name``, from its head."""
        if name == "person":
            return self.p_person
        if name == "dog":
            return self.p_dog
        return float(self.object_p[HEAD_OBJECTS.index(name)])

    @property
    def objects(self) -> dict[str, float]:
        """The supported objects with their probabilities, likeliest first (what the index
        stores and search ranks by)."""
        found = {name: round(self.probability(name), 3) for name in self.present}
        return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class Decision:
    """The caption a scan keeps: text ("" for none), confidence in [0, 1], and its source.

    ``support`` is the evidence behind the choice (the head, concept or scene probability, or
    the sentence's own); ``confidence`` is the calibrated probability that the caption invents
    no object (equal to ``support`` with heads that have no calibration yet)."""

    caption: str
    confidence: float
    source: str
    support: float = 0.0
    score: float = 0.0  # the sentence's beam log-probability per word (0 for other sources)


class CaptionerLike(Protocol):
    def caption(
        self, feature_maps: Any, banned: Sequence[frozenset[str]] | None = None
    ) -> list: ...


class GroundingError(UserError, ValueError):
    """A grounding weights file that cannot be used; the message names the file and why."""


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p)), clipped to +-6 so a sure head does not dominate a sum."""
    q = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.clip(np.log(q / (1 - q)), -_LOGIT_CAP, _LOGIT_CAP)


def _tag_owners() -> dict[str, str]:
    """Hashtag -> the object class it names: every name's one-word forms (``hotdog``,
    ``teddybears``) and the animals' Instagram tags (``dogsofinstagram``)."""
    owners = dict(term_owners())
    owners |= {tag: name for name, tags in concepts.ANIMAL_TAGS.items() for tag in tags}
    return owners


class Grounding(Model):
    """The grounding heads and rules; built cheaply, loaded on first use (see ``Model``)."""

    name = "grounding"

    def __init__(self, path: Path | None = None, thresholds: Thresholds | None = None) -> None:
        super().__init__()
        self.path = path or shipped(SHIPPED_HEADS)
        self.thresholds = thresholds or Thresholds()
        self._heads: dict[str, np.ndarray] | None = None
        self._scenes: list[str] = []
        self._calibration: np.ndarray | None = None
        self._describe: float | None = None
        self._membership = concepts.membership()
        self._object_membership = concepts.object_membership()
        self._object_bans = {name: object_words(name) for name in HEAD_OBJECTS}

    def files(self) -> tuple[Path, ...]:
        return (self.path,)

    def settings(self) -> dict[str, object]:
        return asdict(self.thresholds)

    def _load(self) -> None:
        """Read the heads; a bad file is a ``GroundingError`` naming it."""
        try:
            with np.load(self.path, allow_pickle=False) as data:
                missing = [k for k in HEAD_ARRAYS if k not in data.files]
                if missing:
                    raise GroundingError(
                        f"{self.path}: grounding heads of an older photobatch (no "
                        f"{', '.join(missing)}): rebuild them with 'photobatch train grounding'"
                    )
                heads = {k: np.asarray(data[k], np.float32) for k in HEAD_ARRAYS}
                scenes = [str(s) for s in data["scene_classes"]]
                objects = tuple(str(s) for s in data["object_classes"])
                calibration = (
                    np.asarray(data["calibration"], np.float64)
                    if "calibration" in data.files
                    else None
                )
                describe = float(data["describe"]) if "describe" in data.files else None
        except (OSError, KeyError, ValueError) as exc:
            raise GroundingError(
                f"{self.path}: not usable grounding heads ({type(exc).__name__}: {exc})"
            ) from exc
        width = heads["mu"].shape[-1]
        if heads["scene_W"].shape != (len(scenes), width) or set(scenes) - set(SCENE_CAPTIONS):
            raise GroundingError(f"{self.path}: scene head does not match its scene classes")
        if objects != HEAD_OBJECTS or heads["object_W"].shape != (len(objects), width):
            raise GroundingError(f"{self.path}: object heads do not match photobatch's objects")
        if calibration is not None and calibration.shape != (len(FEATURES) + 1,):
            raise GroundingError(f"{self.path}: calibration does not match the caption features")
        self._scenes, self._heads = scenes, heads
        self._calibration, self._describe = calibration, describe

    @property
    def describe(self) -> float | None:
        """The calibrated point (``photobatch train grounding`` picks it): a caption this
        confident is written as a description and lends the hashtags its words; None for heads
        without a calibration."""
        self.load()
        return self._describe

    def evidence(self, pooled: np.ndarray, logits: np.ndarray) -> list[Evidence]:
        """``pooled`` (N, 1280) and ImageNet ``logits`` (N, 1000) -> one ``Evidence`` a photo."""
        self.load()
        h = self._heads
        assert h is not None
        pooled = np.asarray(pooled, np.float32)
        z = (pooled - h["mu"]) / h["sd"]
        p_person = _sigmoid(z @ h["person_W"].T + h["person_b"])[:, 0]
        p_dog = _sigmoid(z @ h["dog_W"].T + h["dog_b"])[:, 0]
        p_scene = _softmax(z @ h["scene_W"].T + h["scene_b"])
        probs = _softmax(np.asarray(logits, np.float32))
        concept_p = probs @ self._membership
        imagenet_p = probs @ self._object_membership
        object_p = _sigmoid(z @ h["object_W"].T + h["object_b"] + h["object_v"] * logit(imagenet_p))
        entropy = -(probs * np.log(probs + 1e-12)).sum(axis=1)
        norms = np.linalg.norm(pooled, axis=1)
        t = self.thresholds
        out = []
        for i in range(len(pooled)):
            s, top = int(p_scene[i].argmax()), int(probs[i].argmax())
            person, dog = self._present(float(p_person[i]), float(p_dog[i]), concept_p[i])
            seen = (object_p[i] >= t.object) | (imagenet_p[i] >= t.concept)
            present = {name for name, ok in zip(HEAD_OBJECTS, seen, strict=True) if ok}
            present |= {name for name, ok in (("person", person), ("dog", dog)) if ok}
            out.append(
                Evidence(
                    float(p_person[i]),
                    float(p_dog[i]),
                    self._scenes[s],
                    float(p_scene[i, s]),
                    concept_p[i],
                    top,
                    float(probs[i, top]),
                    float(entropy[i]),
                    float(norms[i]),
                    person,
                    dog,
                    object_p[i].astype(np.float32),
                    frozenset(present),
                )
            )
        return out

    def _present(self, p_person: float, p_dog: float, concept_p: np.ndarray) -> tuple[bool, bool]:
        """A person or dog is supported when its head says so and ImageNet does not object.

        Person: vetoed when ImageNet is sure of a non-living concept that implies nobody (not a
        bicycle, ball or skis) and the head is not sure itself. Dog: vetoed when another animal is
        likely and likelier than a dog (a sheep, panda or bear is not a dog).
        """
        t = self.thresholds
        person, dog = p_person >= t.person, p_dog >= t.dog
        j = int(concept_p.argmax())
        top, p_top = CONCEPTS[j], float(concept_p[j])
        if (
            person
            and top.kind != "animal"
            and top.name not in concepts.PERSON_OBJECTS
            and p_top >= t.object_veto
            and p_person < t.person_sure
        ):
            person = False
        if dog:
            dog_p = concept_p[concepts.NAMES.index("dog")]
            other = max(
                concept_p[j]
                for j, c in enumerate(CONCEPTS)
                if c.kind == "animal" and c.name not in concepts.DOG_LOOKALIKES
            )
            dog = not (other >= t.animal_veto and other > dog_p)
        return bool(person), bool(dog)

    def banned_words(self, ev: Evidence) -> frozenset[str]:
        """Words the captioner may not write for this photo: every object it does not support
        (people with their pronouns, dogs, and each of COCO's other objects)."""
        banned: set[str] = set()
        if not ev.person:
            banned |= concepts.PERSON_BAN
        if not ev.dog:
            banned |= concepts.DOG_BAN
        for name, words in self._object_bans.items():
            if name not in ev.present:
                banned |= words
        return frozenset(banned)

    def blank(self, ev: Evidence) -> bool:
        """Black, white or uniform frames and noise: nothing nameable at all."""
        return ev.entropy > self.thresholds.blank_entropy or ev.norm < self.thresholds.blank_norm

    def _animal_doubtful(self, concept: Concept, ev: Evidence) -> bool:
        """An animal is never asserted from diffuse evidence (noise would become a bird)."""
        return concept.kind == "animal" and ev.p_top_class < self.thresholds.animal_class

    @staticmethod
    def _first_supported(captions: Sequence[str], ev: Evidence) -> str | None:
        """The first caption every object of which the photo supports."""
        return next((c for c in captions if named_objects(c) <= ev.present), None)

    def _grounded_caption(self, ev: Evidence) -> tuple[str, str, float] | None:
        """The top concept's caption, else the scene's when the photo's objects agree with the
        scene, naming only supported objects; else None."""
        t = self.thresholds
        if ev.entropy > t.concept_entropy:
            return None
        concept, p = ev.top_concept
        if p >= t.concept and not self._animal_doubtful(concept, ev):
            text = self._first_supported(concept.captions, ev)
            if text:
                return text, CONCEPT, p
        if ev.p_scene >= t.scene and self._scene_agrees(ev):
            text = self._first_supported(SCENE_CAPTIONS[ev.scene], ev)
            if text:
                return text, SCENE, ev.p_scene
        return None

    def _scene_agrees(self, ev: Evidence) -> bool:
        """Whether the photo's likeliest concept, when it is likely enough to say anything, is
        of a kind the scene shows (food is no art gallery, a sheep no baseball field)."""
        concept, p = ev.top_concept
        return p < self.thresholds.scene_agree or concept.kind in concepts.SCENE_KINDS[ev.scene]

    def decide(self, ev: Evidence, sentence: str, score: float) -> Decision:
        """Which caption a photo gets, from the captioner's (banned-word) sentence and its beam
        score (length-normalised log-probability), and how sure it is.

        The sentence stays when a person or dog supports it: that is the captioner's domain.
        Otherwise the photo is outside it, and a concept or scene caption is written when one is
        confident; a screenshot or blank frame gets none; failing all that, the sentence is kept
        only when its own probability reaches ``Thresholds.caption``. No caption names an object
        the photo does not support.
        """
        t = self.thresholds
        own = float(min(1.0, t.sat_scale * np.exp(score)))
        if self.blank(ev):
            return Decision("", 0.0, NONE)
        if not named_objects(sentence) <= ev.present:
            sentence = ""  # a word the bans could not reach (none in the shipped vocabulary)
        if (ev.person or ev.dog) and sentence:
            support = max(p for p, ok in ((ev.p_person, ev.person), (ev.p_dog, ev.dog)) if ok)
            return self._calibrated(ev, sentence, SAT, max(own, support), score)
        grounded = self._grounded_caption(ev)
        if grounded is not None:
            return self._calibrated(ev, *grounded, 0.0)
        top, p_top = ev.top_concept
        if top.name == concepts.SCREEN and p_top >= t.concept:
            return Decision("", 0.0, NONE)
        if own < t.caption or not sentence:
            return Decision("", 0.0, NONE, own, score)
        return self._calibrated(ev, sentence, SAT_WEAK, own, score)

    def reliability_features(
        self, ev: Evidence, caption: str, source: str, support: float, score: float
    ) -> np.ndarray:
        """What the calibrated confidence reads of a caption (``FEATURES``, in order): its
        source, the evidence for the weakest object it names and how many it names, the
        sentence's own probability, the support behind the choice, and the photo's domain."""
        named = named_objects(caption)
        weakest = min((float(logit(ev.probability(n))) for n in named), default=_LOGIT_CAP)
        return np.array(
            [
                *(source == s for s in SOURCES),
                weakest,
                len(named),
                score,
                float(logit(support)),
                ev.entropy,
                float(logit(ev.p_person)),
                float(logit(ev.p_dog)),
            ],
            np.float64,
        )

    def _calibrated(
        self, ev: Evidence, caption: str, source: str, support: float, score: float
    ) -> Decision:
        confidence = support
        if self._calibration is not None:
            x = self.reliability_features(ev, caption, source, support, score)
            confidence = float(_sigmoid(x @ self._calibration[:-1] + self._calibration[-1]))
        return Decision(caption, confidence, source, support, score)

    def caption(
        self,
        captioner: CaptionerLike,
        feature_maps: Any,
        pooled: np.ndarray,
        logits: np.ndarray,
    ) -> list[tuple[Evidence, Decision]]:
        """Evidence, then one beam search with each photo's bans, then each photo's decision."""
        evidence = self.evidence(pooled, logits)
        results = captioner.caption(feature_maps, banned=[self.banned_words(e) for e in evidence])
        return [
            (ev, self.decide(ev, r.text, r.score)) for ev, r in zip(evidence, results, strict=True)
        ]

    def hashtags(
        self,
        ev: Evidence,
        decision: Decision,
        top_label: str | None,
        prior: HashtagPrior,
        max_tags: int = 10,
        min_tags: int = 3,
    ) -> list[tuple[str, float]]:
        """Hashtags best first, each with the probability of the evidence behind it.

        Order: the ImageNet class's own name (#pizza) and its concept's seeds (#food #dinner), the
        scene (#kitchen), the first four HARRISON expansions of those, then the caption's tags
        when the caption is a supported captioner sentence confident enough to be written as a
        description (the calibrated point), then the other expansions. No tag names a person,
        animal or object the photo does not support. A score is the class, concept or scene
        probability, an expansion's seed probability x the prior's cosine, or the caption's
        confidence; each is capped at the score above it so scores read best first. A blank
        frame or screenshot gets no tags; others are topped up to ``min_tags`` with content-free
        tags (#photooftheday) scored 0.
        """
        t = self.thresholds
        lead: dict[str, float] = {}
        seeds: dict[str, float] = {}
        if not self.blank(ev):
            for concept, p in ev.concepts_above(t.tag_concept)[:2]:
                if (
                    concept.name == concepts.SCREEN
                    or self._animal_doubtful(concept, ev)
                    or not named_objects(concept.noun) <= ev.present
                ):
                    continue
                if (
                    ev.top_class in concept.indices
                    and ev.p_top_class >= t.tag_class
                    and top_label
                    and self._class_objects.get(ev.top_class, "") in {"", *ev.present}
                ):
                    name = top_label.split(",")[0].split("/")[0].split("(")[0]
                    tag = normalize_tag(name, prior)
                    if tag:
                        lead.setdefault(tag, ev.p_top_class)
                for tag in concept.tags:
                    lead.setdefault(tag, p)
                if concept.tags[0] in prior:
                    seeds.setdefault(concept.tags[0], p)
            scene_ok = ev.p_scene >= t.tag_scene and ev.entropy <= t.concept_entropy
            if scene_ok and self._scene_agrees(ev):
                tag = normalize_tag(ev.scene, prior)
                if tag:
                    lead.setdefault(tag, ev.p_scene)
                    if tag in prior:
                        seeds.setdefault(tag, ev.p_scene * 0.5)
        unsupported = self._unsupported_tags(ev, prior)
        lead = {tag: p for tag, p in lead.items() if tag not in unsupported}
        seeds = {tag: p for tag, p in seeds.items() if tag not in unsupported}
        top_seed = max(seeds.values(), default=1.0)
        expanded = expand(seeds, prior)
        expansions = sorted(expanded, key=lambda tag: (-expanded[tag], tag))
        caption_tags = []
        if decision.source == SAT and decision.caption and self._describes(decision):
            caption_tags = suggest_hashtags(decision.caption, [], prior, max_tags, min_tags=0)
        scores = {tag: expanded[tag] * top_seed for tag in expansions}
        scores |= {tag: decision.confidence for tag in caption_tags if tag not in scores}
        scores |= lead
        ordered = dedupe([*lead, *expansions[:4], *caption_tags, *expansions[4:]])
        tags = [tag for tag in ordered if tag not in unsupported][:max_tags]
        if decision.source != NONE and len(tags) < min_tags:
            tags = dedupe([*tags, *(f for f in FALLBACK_TAGS if f in prior)])[:min_tags]
        result: list[tuple[str, float]] = []
        cap = 1.0
        for tag in tags:
            cap = min(cap, scores.get(tag, 0.0))
            result.append((tag, round(cap, 3)))
        return result

    def _describes(self, decision: Decision) -> bool:
        """Whether a caption is confident enough to be written as a description."""
        return self.describe is None or decision.confidence >= self.describe

    @cached_property
    def _tag_owners(self) -> dict[str, str]:
        return _tag_owners()

    @cached_property
    def _class_objects(self) -> dict[int, str]:
        """ImageNet class -> the object class it is a counterpart of."""
        return {i: name for name, indices in OBJECT_IMAGENET.items() for i in indices}

    def _unsupported_tags(self, ev: Evidence, prior: HashtagPrior) -> set[str]:
        """Tags naming a person, animal or object the photo does not support."""
        tags = {tag for tag, name in self._tag_owners.items() if name not in ev.present}
        if not {"dog", "cat"} & ev.present:
            tags |= concepts.PET_TAGS
        if not ev.person:
            tags |= PERSON_WORDS
            tags |= {t for t in (normalize_tag(w, prior) for w in concepts.PERSON_BAN) if t}
        return tags
