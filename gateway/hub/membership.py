"""What a client holds in a hub stream, and the ``with`` blocks that always give it back."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Membership:
    """A client's place in a stream (a ``Subscription`` or a ``Cursor``).

    Use as a context manager, plain or async: leaving the block, however it is left,
    calls ``close``, so a vanished client is always removed.
    """

    __slots__ = ()

    def close(self) -> None:
        """Leave the stream; idempotent."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
