"""Grounding: what a photo's encoder outputs support, so captions and hashtags claim only that.

The Show-Attend-Tell captioner knows Flickr8k's world of people and dogs and names one in nearly
every everyday photo. Grounding checks its claims against evidence the encoder already gives:

- three small heads on the pooled embedding (``models/grounding.npz``): person, dog, and 25 scenes;
- ImageNet's 1,000 classes summed into coarse concepts (``photobatch.models.concepts``);
- how flat the ImageNet distribution is and how strong the embedding is (blank frames).

From that it decides which people/dog words the beam search may not write, which caption to keep
(the captioner's sentence when a person or dog is supported, else a concept or scene caption, else
none) with a confidence and its source, and orders hashtags by evidence, each with a score.
All of it is numpy, about 0.05 ms a photo; the thresholds, chosen on coco-dev and Flickr8k val,
are in ``Thresholds``. models/GROUNDING.md has the measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from photobatch.core.errors import UserError
from photobatch.models import concepts
from photobatch.models.base import Model
from photobatch.models.concepts import CONCEPTS, SCENE_CAPTIONS, Concept
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
HEAD_ARRAYS = ("mu", "sd", "person_W", "person_b", "dog_W", "dog_b", "scene_W", "scene_b")
# Caption sources, as stored in the index (docs/captions-and-hashtags.md explains them).
SAT, SAT_WEAK, CONCEPT, SCENE, NONE = "sat", "sat-weak", "concept", "scene", "none"


@dataclass(frozen=True)
class Thresholds:
    """Every number the decisions use (chosen on coco-dev and Flickr8k val; see GROUNDING.md)."""

    person: float = 0.3  # person head probability: below it person words are banned
    dog: float = 0.3  # dog head probability: below it dog words are banned
    person_sure: float = 0.95  # a person head this sure is never vetoed by ImageNet
    object_veto: float = 0.5  # a non-living concept this likely vetoes the person head
    animal_veto: float = 0.3  # another animal this likely (and likelier than dog) vetoes the dog
    concept: float = 0.3  # concept probability for a concept caption
    scene: float = 0.5  # scene head probability for a scene caption
    animal_class: float = 0.2  # an animal is asserted only when its top ImageNet class is this sure
    caption: float = 0.25  # below this confidence an unsupported captioner sentence is dropped
    sat_scale: float = 2.5  # captioner confidence = scale x exp(beam log-prob per word), <= 1
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

    @property
    def top_concept(self) -> tuple[Concept, float]:
        j = int(self.concept_p.argmax())
        return CONCEPTS[j], float(self.concept_p[j])

    def concepts_above(self, threshold: float) -> list[tuple[Concept, float]]:
        order = np.argsort(-self.concept_p, kind="stable")
        return [
            (CONCEPTS[j], float(self.concept_p[j])) for j in order if self.concept_p[j] >= threshold
        ]


@dataclass(frozen=True)
class Decision:
    """The caption a scan keeps: text ("" for none), confidence in [0, 1], and its source."""

    caption: str
    confidence: float
    source: str


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


class Grounding(Model):
    """The grounding heads and rules; built cheaply, loaded on first use (see ``Model``)."""

    name = "grounding"

    def __init__(self, path: Path | None = None, thresholds: Thresholds | None = None) -> None:
        super().__init__()
        self.path = path or shipped(SHIPPED_HEADS)
        self.thresholds = thresholds or Thresholds()
        self._heads: dict[str, np.ndarray] | None = None
        self._scenes: list[str] = []
        self._membership = concepts.membership()

    def files(self) -> tuple[Path, ...]:
        return (self.path,)

    def settings(self) -> dict[str, object]:
        return asdict(self.thresholds)

    def _load(self) -> None:
        """Read the heads; a bad file is a ``GroundingError`` naming it."""
        try:
            with np.load(self.path, allow_pickle=False) as data:
                heads = {k: np.asarray(data[k], np.float32) for k in HEAD_ARRAYS}
                scenes = [str(s) for s in data["scene_classes"]]
        except (OSError, KeyError, ValueError) as exc:
            raise GroundingError(
                f"{self.path}: not usable grounding heads ({type(exc).__name__}: {exc})"
            ) from exc
        width = heads["mu"].shape[-1]
        if heads["scene_W"].shape != (len(scenes), width) or set(scenes) - set(SCENE_CAPTIONS):
            raise GroundingError(f"{self.path}: scene head does not match its scene classes")
        self._scenes, self._heads = scenes, heads

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
        entropy = -(probs * np.log(probs + 1e-12)).sum(axis=1)
        norms = np.linalg.norm(pooled, axis=1)
        out = []
        for i in range(len(pooled)):
            s, top = int(p_scene[i].argmax()), int(probs[i].argmax())
            person, dog = self._present(float(p_person[i]), float(p_dog[i]), concept_p[i])
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
        """Words the captioner may not write for this photo: people and dogs not supported."""
        banned: frozenset[str] = frozenset()
        if not ev.person:
            banned |= concepts.PERSON_BAN
        if not ev.dog:
            banned |= concepts.DOG_BAN
        return banned

    def blank(self, ev: Evidence) -> bool:
        """Black, white or uniform frames and noise: nothing nameable at all."""
        return ev.entropy > self.thresholds.blank_entropy or ev.norm < self.thresholds.blank_norm

    def _animal_doubtful(self, concept: Concept, ev: Evidence) -> bool:
        """An animal is never asserted from diffuse evidence (noise would become a bird)."""
        return concept.kind == "animal" and ev.p_top_class < self.thresholds.animal_class

    def _grounded_caption(self, ev: Evidence) -> Decision | None:
        """The top concept's caption, else the scene's, when confident enough; else None."""
        t = self.thresholds
        if ev.entropy > t.concept_entropy:
            return None
        concept, p = ev.top_concept
        if p >= t.concept and concept.caption and not self._animal_doubtful(concept, ev):
            return Decision(concept.caption, p, CONCEPT)
        if ev.p_scene >= t.scene:
            return Decision(SCENE_CAPTIONS[ev.scene], ev.p_scene, SCENE)
        return None

    def decide(self, ev: Evidence, sentence: str, score: float) -> Decision:
        """Which caption a photo gets, from the captioner's (banned-word) sentence and its beam
        score (length-normalised log-probability).

        The sentence stays when a person or dog supports it: that is the captioner's domain.
        Otherwise the photo is outside it, and a concept or scene caption is written when one is
        confident; a screenshot or blank frame gets none; failing all that, the sentence is kept
        (it can name nobody) only when its own confidence reaches ``Thresholds.caption``.
        """
        t = self.thresholds
        confidence = float(min(1.0, t.sat_scale * np.exp(score)))
        if self.blank(ev):
            return Decision("", 0.0, NONE)
        if ev.person or ev.dog:
            support = max(p for p, ok in ((ev.p_person, ev.person), (ev.p_dog, ev.dog)) if ok)
            return Decision(sentence, max(confidence, support), SAT)
        grounded = self._grounded_caption(ev)
        if grounded is not None:
            return grounded
        top, p_top = ev.top_concept
        if top.name == concepts.SCREEN and p_top >= t.concept:
            return Decision("", 0.0, NONE)
        if confidence < t.caption or not sentence:
            return Decision("", confidence, NONE)
        return Decision(sentence, confidence, SAT_WEAK)

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
        when the caption is a supported captioner sentence, then the other expansions. Person
        and dog tags appear only when supported. A score is the class, concept or scene
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
                if concept.name == concepts.SCREEN or (concept.name == "dog" and not ev.dog):
                    continue
                if self._animal_doubtful(concept, ev):
                    continue
                if ev.top_class in concept.indices and ev.p_top_class >= t.tag_class and top_label:
                    name = top_label.split(",")[0].split("/")[0].split("(")[0]
                    tag = normalize_tag(name, prior)
                    if tag:
                        lead.setdefault(tag, ev.p_top_class)
                for tag in concept.tags:
                    lead.setdefault(tag, p)
                if concept.tags[0] in prior:
                    seeds.setdefault(concept.tags[0], p)
            if ev.p_scene >= t.tag_scene and ev.entropy <= t.concept_entropy:
                tag = normalize_tag(ev.scene, prior)
                if tag:
                    lead.setdefault(tag, ev.p_scene)
                    if tag in prior:
                        seeds.setdefault(tag, ev.p_scene * 0.5)
        top_seed = max(seeds.values(), default=1.0)
        expanded = expand(seeds, prior)
        expansions = sorted(expanded, key=lambda tag: (-expanded[tag], tag))
        caption_tags = []
        if decision.source == SAT and decision.caption:
            caption_tags = suggest_hashtags(decision.caption, [], prior, max_tags, min_tags=0)
        scores = {tag: expanded[tag] * top_seed for tag in expansions}
        scores |= {tag: decision.confidence for tag in caption_tags if tag not in scores}
        scores |= lead
        unsupported = self._unsupported_tags(ev, prior)
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

    def _unsupported_tags(self, ev: Evidence, prior: HashtagPrior) -> set[str]:
        """Person tags without a supported person, dog tags without a supported dog."""
        tags: set[str] = set()
        if not ev.person:
            tags |= PERSON_WORDS
            tags |= {t for t in (normalize_tag(w, prior) for w in concepts.PERSON_BAN) if t}
        if not ev.dog:
            tags |= concepts.DOG_TAGS
        return tags
