"""Word-by-word attention figure: the photo, then one panel per word with its attention overlay.

Pillow only (no matplotlib): each 7x7 attention map is upsampled with bicubic resampling to the
panel size so the overlay is smooth, then used as the alpha of a bright layer over a darkened
photo, which shows where the model looked while choosing that word.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from photobatch.core.config import CaptionerConfig
from photobatch.models.captioner import CaptionResult

PANEL = 224
LABEL = 22
COLUMNS = 5
FIGURE_SOFTWARE = "photobatch attention figure"  # the PNG's Software text: photobatch drew it


def _overlay(photo: Image.Image, attention: np.ndarray) -> Image.Image:
    """The photo dimmed outside the attended regions (``attention`` is 49 weights)."""
    grid = attention.reshape(7, 7).astype(np.float32)
    # Min-max scaling: soft attention is often diffuse, and its relative peaks are what matter.
    span = grid.max() - grid.min()
    grid = (grid - grid.min()) / span if span > 0 else np.ones_like(grid)
    small = Image.fromarray((grid * 255).astype(np.uint8), mode="L")
    mask = small.resize(photo.size, Image.Resampling.BICUBIC)
    dark = Image.blend(photo, Image.new("RGB", photo.size, (0, 0, 0)), 0.7)
    return Image.composite(photo, dark, mask)


def render_attention(photo_path: Path, result: CaptionResult, out: BinaryIO) -> None:
    """Write the figure for ``result`` (a caption of the photo at ``photo_path``) as PNG, marked
    as photobatch's (``is_attention_figure``)."""
    from photobatch.library.imaging import load_image

    # The model saw the photo squashed to 224x224; so do the panels, region for region.
    photo = load_image(photo_path).convert("RGB").resize((PANEL, PANEL), Image.Resampling.BICUBIC)
    attention = result.attention.float().numpy()
    panels = [(photo, result.text or "(no caption)")]
    panels += [(_overlay(photo, attention[i]), w) for i, w in enumerate(result.tokens)]
    rows = -(-len(panels) // COLUMNS)
    cols = min(len(panels), COLUMNS)
    sheet = Image.new("RGB", (cols * PANEL, rows * (PANEL + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, (image, label) in enumerate(panels):
        x, y = (k % COLUMNS) * PANEL, (k // COLUMNS) * (PANEL + LABEL)
        sheet.paste(image, (x, y + LABEL))
        draw.text((x + 4, y + 4), _fit(draw, label, font), fill="black", font=font)
    mark = PngInfo()
    mark.add_text("Software", FIGURE_SOFTWARE)
    sheet.save(out, format="PNG", pnginfo=mark)


def is_attention_figure(path: Path) -> bool:
    """Whether ``path`` is a figure ``render_attention`` drew (which a new one may replace)."""
    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == FIGURE_SOFTWARE
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def explain_photo(
    photo_path: Path,
    figure: BinaryIO,
    config: CaptionerConfig,
    device: str = "auto",
    grounding: Path | None = None,
) -> CaptionResult:
    """Caption one photo as a scan's beam search does (with grounding's banned words, heads from
    ``grounding`` or the shipped ones), keeping where the model looked, and draw the figure
    into ``figure`` (PNG)."""
    from photobatch.library.imaging import load_image, to_tensor
    from photobatch.models.captioner import Captioner
    from photobatch.models.encoder import image_encoder, resolve_device
    from photobatch.models.grounding import Grounding

    dev = str(resolve_device(device))
    out = image_encoder(dev).encode(to_tensor(load_image(photo_path)).unsqueeze(0))
    heads = Grounding(grounding)
    [evidence] = heads.evidence(out.pooled.float().cpu().numpy(), out.logits.float().cpu().numpy())
    banned = [heads.banned_words(evidence)]
    result = Captioner(dev, config).caption(out.feature_map, banned=banned)[0]
    render_attention(photo_path, result, figure)
    return result


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont) -> str:
    """Shorten ``text`` with an ellipsis until it fits one panel's width."""
    if draw.textlength(text, font=font) <= PANEL - 8:
        return text
    while text and draw.textlength(text + "...", font=font) > PANEL - 8:
        text = text[:-1]
    return text + "..."
