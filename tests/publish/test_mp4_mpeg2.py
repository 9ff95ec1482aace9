"""/mp4 from an MPEG-2 camera in a program or transport stream: the encode unwraps it."""

from __future__ import annotations

import io

import av
import pytest

from gateway.sim.pattern import read_block_code
from gateway.transcode.encode import h264_key
from tests.app.stream_client import fetch
from tests.publish.axis_client import gateway

#: Seconds of fMP4 asked for.
SECONDS = 3
FPS = 25


def camera(container: str) -> str:
    """Return a simulated camera whose H.264 encode decodes its MPEG-2 in ``container``."""
    return (
        '[[cameras]]\nname = "cam"\nsource = "sim"\nmjpeg = false\nmpeg2 = true\n'
        f'audio = false\nfps = {FPS}\nresolution = "320x240"\nvideo_source = "mpeg2"\n'
        f'sim_mpeg2_format = "{container}"\n'
    )


def top_level_boxes(data: bytes) -> list[bytes]:
    """Return the types of the top-level ISO BMFF boxes in data (the last may be cut)."""
    types, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        types.append(data[pos + 4 : pos + 8])
        if size < 8:
            break
        pos += size
    return types


@pytest.mark.parametrize(("container", "media_type"), [("ps", "video/mp2p"), ("ts", "video/mp2t")])
async def test_mp4_of_a_program_or_transport_stream_decodes_every_picture(
    container: str, media_type: str
) -> None:
    async with gateway(camera(container)) as gw:
        client = await fetch(gw.port, f"/mp4/cam?duration={SECONDS}", seconds=SECONDS + 15)
        media = gw.media()
        assert media.mpeg2 is not None
        newest = media.mpeg2.newest
        assert newest is not None
        assert newest.content_type == media_type
        encode = media.renditions.get(h264_key())
        assert encode is not None
        stats = encode.stats()
    assert client.status == 200
    assert client.head["content-type"] == "video/mp4"
    assert client.eof
    assert (stats["failed"], stats["pipeline_skipped_pts"], stats["mpeg2_joins"]) == (0, 0, 1)

    numbers = []
    with av.logging.Capture() as logs, av.open(io.BytesIO(bytes(client.body)), "r") as mp4:
        for frame in mp4.decode(video=0):
            code = read_block_code(frame.to_ndarray(format="gray"))
            assert code is not None
            numbers.append(code[0])
    assert [msg for level, _, msg in logs if level <= av.logging.ERROR] == []
    # Every picture of the camera once, in order, from the first one sent on.
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert (SECONDS - 1) * FPS <= len(numbers) <= (SECONDS + 1) * FPS
    # One fragment per picture, every one of them decoded.
    assert top_level_boxes(bytes(client.body)).count(b"moof") == len(numbers)
