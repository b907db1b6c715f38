"""PNG bytes of a live view's picture, written straight from its pixels (plumbing for
fmlib.plots.LiveFigure).

Pillow's PNG writer tries five row filters on every row and keeps the best (adaptive
filtering); on a figure of flat colours and anti-aliased lines that search costs more than
the compression it saves: half of Pillow's time at zlib level 1, for files from 19 % smaller
to 18 % larger over the course's 17 live views (benchmarks/RESULTS.md, "PNG without the
filter search"). Here every row has filter 0 (none) and zlib compresses the pixels as they
are: a valid PNG (ISO/IEC 15948), decoded by any browser to the same pixels.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
LEVEL = 1  # zlib's fastest: a live picture lives a fraction of a second


def _chunk(kind: bytes, data: bytes) -> bytes:
    """length, type, data, CRC-32 of type and data (PNG's chunk layout)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG of 8-bit RGB pixels [H, W, 3]: one IDAT chunk, every row filter 0 (none)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be uint8 pixels [H, W, 3], got {rgb.dtype} {rgb.shape}")
    height, width, _ = rgb.shape
    if height == 0 or width == 0:
        raise ValueError(f"rgb must have at least one pixel, got shape {rgb.shape}")
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # each row: filter byte 0
    rows[:, 1:] = rgb.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, LEVEL))
        + _chunk(b"IEND", b"")
    )
