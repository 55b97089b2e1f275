"""The summary PNG: the total, the top 5 by estimated GDP and the refresh time."""

from __future__ import annotations

import functools
import hashlib
import heapq
import io
import math
import zlib

import font_source_sans_pro
from PIL import Image, ImageDraw, ImageFont


def human_money(value: float) -> str:
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"${value / threshold:,.1f}{suffix}"
    return f"${value:,.0f}"


SUMMARY_SIZE = (1200, 630)


PALETTE = {
    "background": (15, 23, 42),
    "panel": (30, 41, 59),
    "text": (241, 245, 249),
    "muted": (148, 163, 184),
    "bars": [(56, 189, 248), (52, 211, 153), (250, 204, 21), (251, 146, 60), (244, 114, 182)],
}


@functools.cache
def font(size: int, weight: str = "") -> ImageFont.FreeTypeFont:
    # A font shipped as a package, so the image looks the same on every machine; Pillow's own
    # default has no accented letters (Côte d'Ivoire, Åland, São Tomé came out as boxes).
    return ImageFont.truetype(font_source_sans_pro.font_files_ttf["SourceSansPro" + weight], size)


def fit_text(draw: ImageDraw.ImageDraw, text: str, face: ImageFont.FreeTypeFont, width: int) -> str:
    """`text`, or as much of it as fits in `width` followed by an ellipsis: never cut silently."""
    if draw.textlength(text, font=face) <= width:
        return text
    while text and draw.textlength(text + "…", font=face) > width:
        text = text[:-1].rstrip()
    return text + "…"


def predicted_top(rows: list[dict], count: int) -> list[tuple[str, float]]:
    """The `count` largest estimates among `rows`, as the table will list them once they are
    written, unless a row the refresh does not write is among them (or two tie)."""
    priced = [row for row in rows if row["estimated_gdp"] is not None]
    top = heapq.nlargest(count, priced, key=lambda row: row["estimated_gdp"])
    return [(row["name"], row["estimated_gdp"]) for row in top]


def render_summary(total: int, top: list[tuple[str, float]], refreshed_at: str) -> bytes:
    """The summary PNG: total, top 5 by estimated GDP as bars, and the refresh time."""
    image = draw_summary(total, top, refreshed_at).quantize(
        palette=summary_palette(), dither=Image.Dither.NONE
    )
    buffer = io.BytesIO()
    # Palette mode with run-length zlib at level 1 encodes several times sooner than RGB or the
    # defaults, and the encoding happens inside the refresh transaction.
    image.save(buffer, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return buffer.getvalue()


@functools.cache
def summary_palette() -> Image.Image:
    """256 colours: the few the summary uses and their anti-aliased blends, taken from a sample."""
    sample = [
        ("United States of America", 9e11),
        ("Côte d'Ivoire", 6e11),
        ("China", 4e11),
        ("Åland", 2e11),
        ("Mali", 1e11),
    ]
    return draw_summary(250, sample, "2025-10-22T18:00:00Z").quantize(
        256, method=Image.Quantize.FASTOCTREE
    )


SUMMARY_MARGIN = 60


GDP_CAPTION = (
    "GDP figures are estimates: population × a random factor (1,000 to 2,000) ÷ the exchange rate"
)


def draw_summary(total: int, top: list[tuple[str, float]], refreshed_at: str) -> Image.Image:
    """Every text is fitted to the room it has (an ellipsis where a name is too long), so nothing
    is cut or runs off the image."""
    width, height = SUMMARY_SIZE
    image = summary_background().copy()
    draw = ImageDraw.Draw(image)
    room = width - 2 * SUMMARY_MARGIN
    subtitle = f"{total:,} countries cached  ·  top 5 by estimated GDP (USD)"
    draw_line(draw, 104, subtitle, font(30), room, PALETTE["muted"])
    if not top:
        draw_line(draw, ROW_TOP + 16, "No GDP estimates yet", font(32), room, PALETTE["muted"])
    largest = max((gdp for _, gdp in top), default=0) or 1
    for rank, (name, gdp) in enumerate(top[:5]):
        draw_gdp_row(draw, rank, name, gdp / largest, human_money(gdp))
    stamp = refreshed_at.replace("T", " ").replace("Z", " UTC")
    draw_line(draw, height - 50, f"Last refreshed {stamp}", font(24), room, PALETTE["muted"])
    return image


@functools.cache
def summary_background() -> Image.Image:
    """What every summary has: the title, the panel and the caption, drawn once a process (none
    overlaps what each summary draws on top)."""
    width, height = SUMMARY_SIZE
    image = Image.new("RGB", SUMMARY_SIZE, PALETTE["background"])
    draw = ImageDraw.Draw(image)
    room = width - 2 * SUMMARY_MARGIN
    draw_line(draw, 40, "Country Currency & Exchange", font(50, "Semibold"), room)
    draw.rounded_rectangle(
        (SUMMARY_MARGIN - 20, ROW_TOP - 16, width - SUMMARY_MARGIN + 20, ROW_TOP + 5 * ROW_HEIGHT),
        radius=18,
        fill=PALETTE["panel"],
    )
    draw_line(draw, height - 86, GDP_CAPTION, font(22), room, PALETTE["muted"])
    return image


def draw_line(draw, y: int, text: str, face, room: int, fill=PALETTE["text"]) -> None:
    draw.text((SUMMARY_MARGIN, y), fit_text(draw, text, face, room), font=face, fill=fill)


ROW_TOP, ROW_HEIGHT = 168, 70


def draw_gdp_row(draw, rank: int, name: str, share: float, value: str) -> None:
    """The name on the left, its value on the right, and under both a bar as long as its share
    of the largest: a name gets the whole width but the value's."""
    width = SUMMARY_SIZE[0]
    room = width - 2 * SUMMARY_MARGIN
    y = ROW_TOP + rank * ROW_HEIGHT
    value_font, name_font = font(30, "Semibold"), font(30)
    value = fit_text(draw, value, value_font, room // 3)
    value_width = math.ceil(draw.textlength(value, font=value_font))
    draw.text(
        (width - SUMMARY_MARGIN - value_width, y), value, font=value_font, fill=PALETTE["text"]
    )
    label = fit_text(draw, f"{rank + 1}. {name}", name_font, room - value_width - 24)
    draw.text((SUMMARY_MARGIN, y), label, font=name_font, fill=PALETTE["text"])
    bar_length = max(8, int(room * share))
    colour = PALETTE["bars"][rank % len(PALETTE["bars"])]
    draw.rounded_rectangle(
        (SUMMARY_MARGIN, y + 42, SUMMARY_MARGIN + bar_length, y + 56), radius=7, fill=colour
    )


def image_etag(png: bytes) -> str:
    return '"' + hashlib.sha256(png).hexdigest()[:32] + '"'
