"""A subscription's daily spend as a small PNG bar chart, the anomalous day marked.

Why an image: people would rather look than read, and mail clients show an inline PNG (a
``cid:`` attachment) where they block scripts, SVG and remote images. Why no plotting library: the
chart is bars and two lines, drawn into a byte buffer and encoded with zlib, so nothing heavy is
imported, and only on the notification path (never at cold start).

Colours: ordinary days grey-blue, the judged day red, the baseline (median) dark green, the
threshold orange dashed.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Final

WIDTH: Final = 560
HEIGHT: Final = 180
MARGIN: Final = 8
BACKGROUND: Final = (255, 255, 255)
BAR: Final = (120, 144, 176)
MARKED: Final = (200, 30, 30)
BASELINE: Final = (20, 110, 60)
THRESHOLD: Final = (230, 140, 0)
AXIS: Final = (160, 160, 160)

Colour = tuple[int, int, int]


def spend_chart(values: Sequence[float], *, marked: Sequence[int] = (), baseline: float | None = None,
                threshold: float | None = None, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """PNG bytes: one bar per value (oldest first); ``marked`` are indexes drawn red."""
    if not values:
        raise ValueError("a chart needs at least one value")
    canvas = _Canvas(width, height)
    top = max([*values, baseline or 0.0, threshold or 0.0, 1e-9])
    plot_h = height - 2 * MARGIN
    slot = (width - 2 * MARGIN) / len(values)
    bar_w = max(1, int(slot * 0.75))

    def y_of(value: float) -> int:
        return height - MARGIN - round(max(0.0, value) / top * plot_h)

    canvas.rect(MARGIN, height - MARGIN, width - MARGIN, height - MARGIN + 1, AXIS)
    marked_set = set(marked)
    for n, value in enumerate(values):
        x0 = MARGIN + round(n * slot + (slot - bar_w) / 2)
        canvas.rect(x0, y_of(value), x0 + bar_w, height - MARGIN, MARKED if n in marked_set else BAR)
    if baseline is not None:
        y = y_of(baseline)
        canvas.rect(MARGIN, y, width - MARGIN, y + 2, BASELINE)
    if threshold is not None:
        y = y_of(threshold)
        for x in range(MARGIN, width - MARGIN, 12):
            canvas.rect(x, y, min(x + 7, width - MARGIN), y + 2, THRESHOLD)
    return canvas.png()


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.rows = [bytearray(bytes(BACKGROUND) * width) for _ in range(height)]

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: Colour) -> None:
        """Fill [x0, x1) x [y0, y1), clipped."""
        x0, x1 = max(0, min(x0, x1)), min(self.width, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.height, max(y0, y1))
        span = bytes(colour) * (x1 - x0)
        for y in range(y0, y1):
            self.rows[y][x0 * 3:x1 * 3] = span

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)  # filter type 0 per row
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)  # 8-bit RGB
        return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + \
            _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


CHART_CONTENT_ID: Final = "spend-chart"


def chart_for(details: Mapping[str, object]) -> bytes | None:
    """The chart of an alert's evidence (``series`` of ``{"day", "total"}``), the judged day marked;
    None when the alert carries no series (only spend alerts do)."""
    series = details.get("series")
    if not isinstance(series, list) or not series:
        return None
    values = [float(p.get("total", 0.0)) if isinstance(p, Mapping) else 0.0 for p in series]
    judged = str(details.get("day", ""))
    marked = [n for n, p in enumerate(series) if isinstance(p, Mapping) and str(p.get("day")) == judged] or \
        [len(values) - 1]
    baseline = details.get("baseline")
    median = baseline.get("median") if isinstance(baseline, Mapping) else None
    threshold = details.get("threshold")
    return spend_chart(values, marked=marked, baseline=float(median) if isinstance(median, int | float) else None,
                       threshold=float(threshold) if isinstance(threshold, int | float) else None)
