"""Test pattern for the simulator: moving bar, frame counter and a machine-readable block code.

The block code carries the frame number and the capture time in the pixels, in cells
sized relative to the picture, so it still reads after scaling (down to 320x240) and
lossy re-encoding (JPEG, H.264). The same values travel in a JPEG COM segment.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Plane = npt.NDArray[np.uint8]

#: Cells per code row: a white reference, 32 data bits, a black reference.
CODE_COLUMNS = 34
#: Rows in the code band: frame number, time bits 55..24, time bits 23..0 + CRC-8.
CODE_ROWS = 3
#: Top and bottom of the code band as fractions of the picture height.
CODE_TOP, CODE_BOTTOM = 0.82, 0.98
#: Luma of a one bit and a zero bit (studio swing, so limited-range encoders keep them).
WHITE, BLACK = 235, 16
#: Minimum contrast between the two reference cells for a row to count as a code.
MIN_CONTRAST = 64

#: Segments a..g of a seven-segment digit, as (x0, y0, x1, y1) in a 4x7 cell grid.
_SEGMENTS = (
    (0, 0, 4, 1),  # a: top
    (3, 0, 4, 4),  # b: upper right
    (3, 3, 4, 7),  # c: lower right
    (0, 6, 4, 7),  # d: bottom
    (0, 3, 1, 7),  # e: lower left
    (0, 0, 1, 4),  # f: upper left
    (0, 3, 4, 4),  # g: middle
)
#: Which segments each decimal digit lights.
_DIGITS = ("abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg")

#: Chroma (U, V) of the background per channel, so channels are told apart at a glance.
CHANNEL_CHROMA = ((150, 110), (100, 150), (160, 160), (90, 100))


def _crc8(data: bytes) -> int:
    """Return the CRC-8 (polynomial 0x07) of data."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _code_bits(frame: int, t_us: int) -> list[int]:
    """Return the 96 code bits for a frame number and a capture time in microseconds."""
    frame &= 0xFFFF_FFFF
    t_us &= (1 << 56) - 1
    body = frame.to_bytes(4, "big") + t_us.to_bytes(7, "big")
    value = int.from_bytes(body + bytes([_crc8(body)]), "big")
    return [(value >> (95 - i)) & 1 for i in range(96)]


def _cell(shape: tuple[int, ...], row: int, col: int) -> tuple[int, int, int, int]:
    """Return the (y0, y1, x0, x1) pixel bounds of a code cell in a picture of this shape."""
    height, width = shape[0], shape[1]
    band = (CODE_BOTTOM - CODE_TOP) * height
    y0 = CODE_TOP * height + band * row / CODE_ROWS
    y1 = CODE_TOP * height + band * (row + 1) / CODE_ROWS
    x0 = width * col / CODE_COLUMNS
    x1 = width * (col + 1) / CODE_COLUMNS
    return round(y0), round(y1), round(x0), round(x1)


def draw_block_code(luma: Plane, frame: int, t_us: int) -> None:
    """Paint the block code for frame and t_us (microseconds) into a luma plane in place."""
    bits = _code_bits(frame, t_us)
    for row in range(CODE_ROWS):
        cells = [1, *bits[row * 32 : (row + 1) * 32], 0]
        for col, bit in enumerate(cells):
            y0, y1, x0, x1 = _cell(luma.shape, row, col)
            luma[y0:y1, x0:x1] = WHITE if bit else BLACK


def read_block_code(gray: npt.NDArray[np.generic]) -> tuple[int, int] | None:
    """Decode (frame number, capture time in unix ns) from a luma image of any size.

    Returns None when the picture carries no intact code (no contrast or a CRC mismatch).
    The time has microsecond resolution, as painted.
    """
    if gray.ndim != 2 or gray.shape[0] < CODE_ROWS * 4 or gray.shape[1] < CODE_COLUMNS * 2:
        return None
    image = gray.astype(np.float32, copy=False)

    def mean(row: int, col: int) -> float:
        y0, y1, x0, x1 = _cell(image.shape, row, col)
        # Sample the middle half of the cell: edges blur when scaled or re-encoded.
        dy, dx = max((y1 - y0) // 4, 0), max((x1 - x0) // 4, 0)
        return float(image[y0 + dy : y1 - dy, x0 + dx : x1 - dx].mean())

    value = 0
    for row in range(CODE_ROWS):
        white, black = mean(row, 0), mean(row, CODE_COLUMNS - 1)
        if white - black < MIN_CONTRAST:
            return None
        threshold = (white + black) / 2
        for col in range(1, CODE_COLUMNS - 1):
            value = (value << 1) | (mean(row, col) > threshold)
    raw = value.to_bytes(12, "big")
    if _crc8(raw[:11]) != raw[11]:
        return None
    return int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:11], "big") * 1000


def _draw_number(luma: Plane, text: str, x: int, y: int, height: int) -> None:
    """Draw decimal digits as seven-segment glyphs with the top-left corner at (x, y)."""
    unit = max(height // 7, 1)
    for char in text:
        # A dark box behind each glyph keeps it readable over the moving bar.
        luma[y - unit : y + 8 * unit, x - unit : x + 5 * unit] = BLACK
        for name in _DIGITS[int(char)]:
            sx0, sy0, sx1, sy1 = _SEGMENTS["abcdefg".index(name)]
            luma[y + sy0 * unit : y + sy1 * unit, x + sx0 * unit : x + sx1 * unit] = WHITE
        x += 6 * unit


class Pattern:
    """Draws the frames of one channel at one resolution as planar YUV 4:2:0."""

    def __init__(self, channel: int, width: int, height: int) -> None:
        self.channel = channel
        self.width = width
        self.height = height
        ramp = np.linspace(48, 176, width, dtype=np.float32).astype(np.uint8)
        self._luma = np.broadcast_to(ramp, (height, width)).copy()
        u, v = CHANNEL_CHROMA[(channel - 1) % len(CHANNEL_CHROMA)]
        half = (height // 2, width // 2)
        self._u = np.full(half, u, dtype=np.uint8)
        self._v = np.full(half, v, dtype=np.uint8)
        # The code band is grey in chroma so colour conversion cannot shift its luma.
        top = round(CODE_TOP * height) // 2
        self._u[top:] = 128
        self._v[top:] = 128

    def render(self, frame: int, t_us: int) -> Plane:
        """Return frame number frame as one (height * 3 / 2, width) yuv420p array."""
        out = np.empty((self.height * 3 // 2, self.width), dtype=np.uint8)
        luma = out[: self.height]
        luma[:] = self._luma
        bar = max(self.width // 16, 2)
        x = (frame * max(self.width // 100, 1)) % (self.width - bar)
        luma[: round(CODE_TOP * self.height), x : x + bar] = WHITE
        digit = max(self.height // 8, 7)
        _draw_number(luma, str(frame), digit // 7 + 2, digit // 7 + 2, digit)
        _draw_number(luma, str(self.channel), self.width - digit, digit // 7 + 2, digit)
        draw_block_code(luma, frame, t_us)
        chroma = out[self.height :].reshape(2, self.height // 2, self.width // 2)
        chroma[0] = self._u
        chroma[1] = self._v
        return out
