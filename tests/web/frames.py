"""Read the simulator's block code off the pictures a page's <video> shows.

The simulator paints each picture's frame number and capture time (wall clock, µs) as a
block code; a grab takes the picture Chromium is about to show through a canvas, decodes
the code with the simulator's own reader, and subtracts the capture time from the time
the browser expects the picture on screen (``requestVideoFrameCallback``'s
``expectedDisplayTime`` on the page's wall-clock time origin). Browser and gateway share
one machine and clock, so the difference is the glass-to-player latency.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gateway.sim.pattern import read_block_code

if TYPE_CHECKING:
    from playwright.async_api import Page

#: The grab's size: the block code still reads at 320x240, and a quarter of the bytes.
GRAB_WIDTH, GRAB_HEIGHT = 320, 240
#: Resolves with the next picture the video presents: its luma (base64, one byte per pixel,
#: BT.601 weights) and when it is expected on screen, in unix milliseconds.
GRAB = """([selector, width, height]) => new Promise((resolve) => {
  const video = document.querySelector(selector);
  video.requestVideoFrameCallback((now, meta) => {
    const canvas = document.createElement('canvas');
    canvas.width = width; canvas.height = height;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, width, height);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    const gray = new Uint8Array(width * height);
    for (let i = 0; i < gray.length; i++) {
      gray[i] = (rgba[4 * i] * 77 + rgba[4 * i + 1] * 150 + rgba[4 * i + 2] * 29) >> 8;
    }
    let bytes = '';
    for (let i = 0; i < gray.length; i += 8192) {
      bytes += String.fromCharCode.apply(null, gray.subarray(i, i + 8192));
    }
    resolve({ gray: btoa(bytes), shownMs: performance.timeOrigin + meta.expectedDisplayTime });
  });
})"""
#: Seconds to wait for the video to present one more picture.
GRAB_TIMEOUT = 30.0
#: Pictures tried for a readable code past a frame: 8 s of pictures at 25 fps.
READ_ATTEMPTS = 200


@dataclass(frozen=True, slots=True)
class Shown:
    """A picture the browser showed, as read from its block code."""

    #: The simulator's frame number.
    frame: int
    #: Capture time, unix ns.
    captured_ns: int
    #: When the browser expected it on screen, unix ns.
    shown_ns: int

    @property
    def latency_ns(self) -> int:
        """Return the glass-to-picture latency."""
        return self.shown_ns - self.captured_ns


async def grab(page: Page, video: str) -> Shown | None:
    """Return the next picture the video (CSS selector) shows; None if its code does not read."""
    async with asyncio.timeout(GRAB_TIMEOUT):
        result = await page.evaluate(GRAB, [video, GRAB_WIDTH, GRAB_HEIGHT])
    gray = np.frombuffer(base64.b64decode(result["gray"]), dtype=np.uint8)
    code = read_block_code(gray.reshape(GRAB_HEIGHT, GRAB_WIDTH))
    if code is None:
        return None
    return Shown(code[0], code[1], round(result["shownMs"] * 1_000_000))


async def read_shown(page: Page, video: str, *, after: int = -1) -> Shown:
    """Return the first picture shown whose code reads and whose frame is past ``after``."""
    for _ in range(READ_ATTEMPTS):
        shown = await grab(page, video)
        if shown is not None and shown.frame > after:
            return shown
    raise AssertionError(f"no readable block code past frame {after} in {READ_ATTEMPTS} pictures")
