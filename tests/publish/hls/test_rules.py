"""The playlist rule checker (``m3u8.problems``) catches each rule it stands for.

The timing and segmenter tests trust it to say "no problems"; here every rule is broken
once, on a playlist the segmenter wrote, and the checker must name it.
"""

from __future__ import annotations

import pytest

from gateway.publish.hls.live import media_playlist
from gateway.publish.hls.playlist import render

from .m3u8 import problems
from .streams import feed, regular, segmenter, synthetic


@pytest.fixture(scope="module")
def text() -> str:
    seg = segmenter(window=3)
    feed(seg, synthetic(regular(25, 6.5)))
    rendered = render(media_playlist(seg))
    assert problems(rendered) == []
    return rendered


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("#EXT-X-VERSION:6", "#EXT-X-VERSION:7", "EXT-X-VERSION 7, the tags need 6"),
        ("#EXT-X-VERSION:6", "#EXT-X-VERSION:5", "EXT-X-VERSION 5"),
        ("#EXT-X-TARGETDURATION:1", "#EXT-X-TARGETDURATION:0", "EXT-X-TARGETDURATION"),
        ("#EXTINF:1.0,\nseg4", "#EXTINF:1.5,\nseg4", "rounds above 1"),
        ('DURATION=0.2,URI="part5.1', 'DURATION=0.21,URI="part5.1', "> PART-TARGET"),
        ('DURATION=0.2,URI="part6.1', 'DURATION=0.16,URI="part6.1', "< 85% of PART-TARGET"),
        ('DURATION=0.2,URI="part5.3', 'DURATION=0.1,URI="part5.3', "parts add up to"),
        ("PART-HOLD-BACK=0.6", "PART-HOLD-BACK=0.5", "PART-HOLD-BACK < 3 part targets"),
        ("HOLD-BACK=3.0", "HOLD-BACK=2.9", "HOLD-BACK < 3 target durations"),
        ("CAN-SKIP-UNTIL=6.0", "CAN-SKIP-UNTIL=5.9", "CAN-SKIP-UNTIL"),
        ("CAN-BLOCK-RELOAD=YES,", "", "CAN-BLOCK-RELOAD=YES missing"),
        ("#EXT-X-PRELOAD-HINT:TYPE=PART", "#EXT-X-PRELOAD-HINT:TYPE=MAP", "PRELOAD-HINT"),
        ('#EXT-X-MAP:URI="init0.mp4"\n', "", "no EXT-X-MAP"),
        ("#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:05.371Z\n", "", "no EXT-X-PROGRAM-DATE"),
        (
            '#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:07.371Z\n#EXT-X-PART:DURATION=0.2,URI="part6.0.m4s",INDEPENDENT=YES',
            '#EXT-X-PART:DURATION=0.2,URI="part6.0.m4s",INDEPENDENT=YES\n#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:07.371Z',
            "after its first EXT-X-PART",
        ),
        ("part4.2.m4s", "part4.3.m4s", "is not part 2 of segment 4"),
        ("seg4.m4s", "seg5.m4s", "is not segment 4"),
        ("#EXT-X-MEDIA-SEQUENCE:3", "#EXT-X-MEDIA-SEQUENCE:2", "is not segment 2"),
    ],
)  # fmt: skip
def test_each_broken_rule_is_named(text: str, old: str, new: str, complaint: str) -> None:
    assert old in text
    found = problems(text.replace(old, new, 1))
    assert any(complaint in problem for problem in found), found


def test_parts_listed_too_long_or_dropped_too_early(text: str) -> None:
    # Segment 3 ends 2.4 s before the end: its parts must be listed (3 target durations).
    lines = [line for line in text.split("\n") if "part3." not in line]
    assert any("parts listed False" in p for p in problems("\n".join(lines)))
    assert any("parts listed True" in p for p in problems(text, parts_listed=2.0))
