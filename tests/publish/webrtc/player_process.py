"""A WHEP player in a process of its own, for the tests that freeze it (SIGSTOP).

``python -m tests.publish.webrtc.player_process URL`` plays ``URL`` until killed and
writes ``session <Location>`` once answered, then ``pictures <n>`` every 5 pictures.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp

from .whep_client import whep_player


def say(line: str) -> None:
    """Write one line to the test that runs this process."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def play(url: str) -> None:
    """Play ``url`` for ever, reporting progress."""
    async with aiohttp.ClientSession() as http, whep_player(http, url, keep=False) as player:
        say(f"session {player.location}")
        while True:
            await player.wait_pictures(player.picture_count + 5, within=60)
            say(f"pictures {player.picture_count}")


if __name__ == "__main__":
    asyncio.run(play(sys.argv[1]))
