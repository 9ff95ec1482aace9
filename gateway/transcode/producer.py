"""What every encoded rendition shares: a ``Worker`` thread publishing into a hub ``Ring``.

The H.264 and the AAC/Opus renditions differ in what they read and how they encode;
they share the output side: the ring their readers read, the worker whose outputs go
into it (counted), and the rendition lifecycle the registry drives (``stop``,
``wait_stopped``, ``busy``, ``consumers``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from gateway.hub.ring import Ring
from gateway.media import Frame

from .meter import RateMeter
from .worker import InputPolicy, Worker

In = TypeVar("In")


class RingProducer(Generic[In]):
    """A worker thread whose output frames go into ``ring``; subclasses feed it."""

    def __init__(
        self,
        ring: Ring,
        job: Callable[[In, bool], Sequence[Frame]],
        *,
        loop: asyncio.AbstractEventLoop,
        policy: InputPolicy,
        name: str,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        """Run ``job`` in one worker thread; publish what it returns into ``ring``.

        ``on_close`` runs in that thread after the last job (``Worker``).
        """
        self.ring = ring
        self.fps_out = RateMeter()
        self.worker: Worker[In, Frame] = Worker(
            job, self._publish, loop=loop, policy=policy, name=name, on_close=on_close
        )

    def _publish(self, frame: Frame) -> None:
        # The worker may finish a job after the rendition stopped.
        if not self.ring.closed:
            self.fps_out.tick(frame.received_ns)
            self.ring.publish(frame)

    def _detach(self) -> None:
        """Stop the input (subclasses: unhook from the camera source or the PCM)."""

    def stop(self) -> None:
        """Stop the input and the worker; end the readers."""
        self._detach()
        self.worker.close()
        self.ring.close()

    async def wait_stopped(self) -> None:
        """Wait for the worker to finish its job."""
        await self.worker.wait_idle()

    def busy(self) -> bool:
        """Return True while the worker holds input."""
        return bool(self.worker.items_held)

    def consumers(self) -> int:
        """Return the readers of the ring."""
        return len(self.ring)
