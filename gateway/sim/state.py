"""Shared state of one simulator app: options, sources, auth and counters."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from aiohttp import web

from gateway.sim.auth import Authenticator
from gateway.sim.encoders import (
    AUDIO_PART_SAMPLES,
    AUDIO_RATE,
    AudioCodec,
    JpegProducer,
    ToneProducer,
)
from gateway.sim.mpeg2 import Mpeg2Producer, mpeg2_rate
from gateway.sim.options import Quirk, SimOptions
from gateway.sim.source import Source, SourceHub

#: Tone frequency of channel 1; channel n sounds (n - 1) * 250 Hz higher.
TONE_HZ = 1000.0


@dataclass
class SimState:
    """Everything one simulator app keeps alive: options, sources, auth, counters."""

    #: What the simulator serves.
    options: SimOptions
    #: Quirks switched on for every request.
    quirks: dict[Quirk, int]
    #: Shared sources, one per stream, channel and variant.
    hub: SourceHub = field(default_factory=SourceHub)
    #: Credential checker, when auth is on.
    auth: Authenticator | None = None
    #: Requests in progress per path: a streaming client counts until it disconnects.
    connections: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Requests received per path.
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Set at shutdown: every stream and stall ends.
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def video_source(self, channel: int, size: tuple[int, int]) -> Source:
        """Return the shared JPEG source of a channel at a resolution."""
        width, height = size
        return self.hub.get(
            ("mjpeg", channel, size),
            f"sim-mjpeg-{channel}-{width}x{height}",
            lambda: JpegProducer(channel, width, height),
            1 / self.options.fps,
        )

    def mpeg2_source(self, channel: int, size: tuple[int, int], container: str) -> Source:
        """Return the shared MPEG-2 source of a channel, resolution and container."""
        width, height = size
        fps, open_gop = self.options.fps, self.options.mpeg2_open_gop
        return self.hub.get(
            ("mpeg2", channel, size, container),
            f"sim-mpeg2-{channel}-{width}x{height}-{container}",
            lambda: Mpeg2Producer(
                channel, width, height, fps, container=container, open_gop=open_gop
            ),
            float(1 / mpeg2_rate(fps)),
        )

    def audio_source(self, channel: int, codec: AudioCodec) -> Source:
        """Return the shared tone source of a channel in an encoding."""
        tone = TONE_HZ + (channel - 1) * 250
        return self.hub.get(
            ("audio", channel, codec),
            f"sim-audio-{channel}-{codec.value}",
            lambda: ToneProducer(codec, tone),
            AUDIO_PART_SAMPLES / AUDIO_RATE,
        )


#: The simulator's state on its Application.
STATE = web.AppKey("sim_state", SimState)
