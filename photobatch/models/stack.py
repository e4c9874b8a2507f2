"""The model set of a scan, one per process: encoder -> grounding evidence -> captioner (with the
words grounding bans) -> grounding's caption decision and hashtags by evidence -> personal head.

Every model follows ``photobatch.models.base.Model``: built here without importing torch, loaded on
first use. ``models`` is the versions string stored with every result (``efficientnet-lite0@1a2b3c4d
+sat@...+grounding@...+hashtags@...``); a scan re-analyses the photos whose stored string differs,
so a retrained captioner, new grounding heads or a new beam size reach the whole library. The
personal head keeps its own id (``personalized_by``) because re-ranking needs no image model.
``model_set`` hands out one set per config and device, so every command in a process shares the
loaded weights.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from photobatch.core.config import Config
from photobatch.core.records import Analysis
from photobatch.models.base import Model
from photobatch.models.captioner import Captioner
from photobatch.models.encoder import image_encoder
from photobatch.models.grounding import Grounding
from photobatch.models.hashtags import HashtagSuggester
from photobatch.models.personalizer import PersonalHead

if TYPE_CHECKING:
    import torch


class Analyzer:
    """Turns batches of preprocessed photos into ``Analysis`` records."""

    def __init__(self, config: Config, device: str) -> None:
        self.config = config
        self.encoder = image_encoder(device, config.top_labels)
        self.captioner = Captioner(device, config.captioner)
        self.grounding = Grounding(config.grounding.model)
        self.hashtags = HashtagSuggester(config.hashtags)
        self.personal = PersonalHead(config.personalizer_path)

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    @property
    def image_models(self) -> tuple[Model, ...]:
        """The models whose versions a stored analysis records (the personal head has its own)."""
        return (self.encoder, self.captioner, self.grounding, self.hashtags)

    def load(self) -> None:
        """Load every model; safe to call from the scan's warm-up thread and its own."""
        for model in (*self.image_models, self.personal):
            model.load()

    @property
    def models(self) -> str:
        """The image models' versions, as stored with every result; costs no torch import."""
        return "+".join(model.tag for model in self.image_models)

    def analyze(self, hashes: list[str], images: list[torch.Tensor]) -> list[Analysis]:
        """These photos' results: ``describe``, then the personal head (a scan runs the
        after-analysis plugins between the two)."""
        return self.repersonalize(self.describe(hashes, images))

    def describe(self, hashes: list[str], images: list[torch.Tensor]) -> list[Analysis]:
        """The image models' results, not yet personalized (the personal head belongs to an
        index, so the scan's driver applies it, whichever engine ran this)."""
        import torch

        self.load()
        # Photos decoded on the GPU are already there; the others are moved with the stack.
        batch = torch.stack([image.to(self.device) for image in images])
        out = self.encoder.encode(batch)
        labels = self.encoder.labels(out.logits)
        pooled = out.pooled.float().cpu().numpy()
        grounded = self.grounding.caption(
            self.captioner, out.feature_map, pooled, out.logits.float().cpu().numpy()
        )
        models = self.models
        results = []
        for i, (sha, (evidence, decision)) in enumerate(zip(hashes, grounded, strict=True)):
            scored = self.grounding.hashtags(
                evidence,
                decision,
                labels[i][0] if labels[i] else None,
                self.hashtags.prior,
                max_tags=self.config.hashtags.max_tags,
                min_tags=self.config.hashtags.min_tags,
            )
            analysis = Analysis(
                sha256=sha,
                labels=labels[i],
                caption=decision.caption or None,
                caption_confidence=round(decision.confidence, 3),
                caption_source=decision.source,
                candidates=[tag for tag, _ in scored],
                candidate_scores=dict(scored),
                objects=evidence.objects,
                embedding=pooled[i].astype("<f2").tobytes(),
                models=models,
            )
            results.append(analysis)
        return results

    def candidates_for(self, paths: list[Path]) -> dict[Path, list[str]]:
        """The non-personalized hashtags the scan would give these files (for evaluations)."""
        from photobatch.library.imaging import ImageError, load_image, to_tensor

        result: dict[Path, list[str]] = {}
        size = self.config.batch_size
        for start in range(0, len(paths), size):
            batch = []
            for path in paths[start : start + size]:
                try:
                    batch.append((path, to_tensor(load_image(path))))
                except (ImageError, OSError):
                    continue
            if batch:
                analyses = self.analyze([str(p) for p, _ in batch], [t for _, t in batch])
                result.update((p, a.candidates) for (p, _), a in zip(batch, analyses, strict=True))
        return result

    def repersonalize(self, analyses: list[Analysis]) -> list[Analysis]:
        """Re-rank already analysed photos with the current personal head (or none)."""
        return [self._personalize(a) for a in analyses]

    def _personalize(self, analysis: Analysis) -> Analysis:
        return self.personal.personalize(analysis, self.config.hashtags.max_tags)


@cache
def model_set(config: Config, device: str) -> Analyzer:
    """The process's one model set for these settings and device (``auto``, ``cpu``, ``cuda``)."""
    return Analyzer(config, device)
