"""Issue 14 item 5: the daily spend chart is a real PNG with the anomalous day marked red."""

from __future__ import annotations

import struct
import zlib

import pytest

from shared.spend.chart import BAR, BASELINE, HEIGHT, MARGIN, MARKED, WIDTH, spend_chart


def decode(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB, non-interlaced PNG with filter 0 (what we write)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, kind
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert (depth, colour, interlace) == (8, 2, 0)
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    rows = [raw[r * stride + 1:(r + 1) * stride] for r in range(height)]
    assert all(raw[r * stride] == 0 for r in range(height))
    return width, height, rows


def pixel(rows: list[bytes], x: int, y: int) -> tuple[int, int, int]:
    return tuple(rows[y][3 * x:3 * x + 3])  # type: ignore[return-value]


def test_the_marked_day_is_red_the_others_are_not_and_the_baseline_is_drawn() -> None:
    values = [100.0] * 29 + [750.0]
    width, height, rows = decode(spend_chart(values, marked=[29], baseline=100.0, threshold=250.0))
    assert (width, height) == (WIDTH, HEIGHT)
    slot = (WIDTH - 2 * MARGIN) / 30
    bottom = HEIGHT - MARGIN - 2
    last_x = MARGIN + int(29.5 * slot)
    first_x = MARGIN + int(0.5 * slot)
    assert pixel(rows, last_x, bottom) == MARKED
    assert pixel(rows, last_x, MARGIN + 2) == MARKED  # the spike reaches the top
    assert pixel(rows, first_x, bottom) == BAR
    assert pixel(rows, first_x, MARGIN + 2) != BAR  # an ordinary day stays low
    baseline_y = HEIGHT - MARGIN - round(100.0 / 750.0 * (HEIGHT - 2 * MARGIN))
    assert BASELINE in {pixel(rows, x, baseline_y) for x in range(MARGIN, WIDTH - MARGIN)}


def test_an_empty_series_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        spend_chart([])
