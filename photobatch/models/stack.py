"""The model stack of a scan, loaded once: encoder -> grounding evidence -> captioner (with the
words grounding bans) -> grounding's caption decision and hashtags by evidence -> personal head.

Importing this module imports torch; the pipeline only does so when a batch holds a photo whose
content has no results yet (or a new personal head must re-rank old ones), so a rescan of an
unchanged library never pays for it.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import torch

from photobatch.core.config import Config
from photobatch.core.records import Analysis
from photobatch.library.discovery import file_id
from photobatch.models.captioner import Captioner
from photobatch.models.encoder import ImageEncoder, resolve_device
from photobatch.models.grounding import Grounding
from photobatch.models.personalizer import Personalizer, load_personalizer, personalize
from photobatch.models.prior import default_prior


class Analyzer:
    """Turns batches of preprocessed photos into ``Analysis`` records."""

    def __init__(self, config: Config, device: str) -> None:
        self.config = config
        self.device = resolve_device(device)
        self.encoder = ImageEncoder(self.device)
        self.captioner = Captioner(self.device, config.captioner)
        self.grounding = Grounding(config.grounding.model)
        self.personal: Personalizer | None = None
        self.personal_id: str | None = None
        self._loaded = False
        self._load_lock = threading.Lock()

    def load(self) -> None:
        """Load every model once; safe to call from the scan's warm-up thread and its own."""
        with self._load_lock:
            if not self._loaded:
                self.encoder.load()
                self.captioner.load()
                self.grounding.load()
                self.load_personal()
                self._loaded = True

    def load_personal(self) -> None:
        """The user's personal head, if trained (``photobatch train personalizer``)."""
        self.personal_id = file_id(self.config.personalizer_path)
        self.personal = load_personalizer(self.config.personalizer_path)

    @property
    def models(self) -> str:
        """A short tag of the model versions, stored with every result."""
        return f"{self.encoder.name}+{self.captioner.name}+ground:{self.grounding.version}"

    def analyze(self, hashes: list[str], images: list[torch.Tensor]) -> list[Analysis]:
        self.load()
        # Photos decoded on the GPU are already there; the others are moved with the stack.
        batch = torch.stack([image.to(self.device) for image in images])
        out = self.encoder.encode(batch)
        labels = self.encoder.labels(out.logits, self.config.top_labels)
        pooled = out.pooled.float().cpu().numpy()
        grounded = self.grounding.caption(
            self.captioner, out.feature_map, pooled, out.logits.float().cpu().numpy()
        )
        prior = default_prior()
        results = []
        for i, (sha, (evidence, decision)) in enumerate(zip(hashes, grounded, strict=True)):
            scored = self.grounding.hashtags(
                evidence,
                decision,
                labels[i][0] if labels[i] else None,
                prior,
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
                embedding=pooled[i].astype("<f2").tobytes(),
                models=self.models,
            )
            results.append(self._personalize(analysis))
        return results

    def candidates_for(self, paths: list[Path]) -> dict[Path, list[str]]:
        """The non-personalized hashtags the scan would give these files (for evaluations)."""
        from photobatch.library.imaging import ImageError, load_image, to_tensor

        result: dict[Path, list[str]] = {}
        size = max(1, self.config.batch_size)
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
        self.load_personal()
        return [self._personalize(a) for a in analyses]

    def _personalize(self, analysis: Analysis) -> Analysis:
        tags, scores, draft = personalize(
            self.personal,
            analysis.embedding,
            analysis.candidates or analysis.hashtags,
            analysis.candidate_scores,
            self.config.hashtags.max_tags,
        )
        return replace(
            analysis,
            hashtags=tags,
            hashtag_scores=scores,
            post_text=draft,
            personalized_by=self.personal_id,
        )
