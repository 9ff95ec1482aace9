"""gateway.publish.hls.playlist.carry_query: a viewing token on every URI a playlist lists."""

from __future__ import annotations

from dataclasses import replace

from gateway.publish.hls.playlist import (
    MultivariantPlaylist,
    Variant,
    carry_query,
    render,
)
from gateway.publish.hls.tags import TAGS, HintType, PreloadHint, StreamInf, Uri
from tests.publish.hls.test_playlist import EXPECTED, LOW_LATENCY

QUERY = "token=gwt1.abc.def"


def test_every_uri_of_a_media_playlist_carries_the_query() -> None:
    playlist = replace(
        LOW_LATENCY,
        preload_hints=(
            PreloadHint(HintType.PART, "part43.1.m4s"),
            PreloadHint(HintType.MAP, "init5.mp4?x=1"),
        ),
    )
    text = render(playlist).encode()
    carried = carry_query(text, QUERY).decode()
    expected = EXPECTED.replace(".m4s", f".m4s?{QUERY}").replace(".mp4", f".mp4?{QUERY}")
    expected += f'#EXT-X-PRELOAD-HINT:TYPE=MAP,URI="init5.mp4?x=1&{QUERY}"\n'
    assert carried == expected
    # Everything else is left as it was.
    assert carried.replace(f"?{QUERY}", "").replace(f"&{QUERY}", "") == text.decode()


def test_the_variant_uri_of_a_multivariant_playlist_carries_the_query() -> None:
    playlist = MultivariantPlaylist((Variant("ab12/media.m3u8", StreamInf(bandwidth=1000)),))
    carried = carry_query(render(playlist).encode(), QUERY).decode()
    assert carried.splitlines()[-1] == f"ab12/media.m3u8?{QUERY}"


def test_every_tag_with_a_uri_is_in_the_media_playlist_above() -> None:
    """A tag added to the table with a URI attribute needs a case here (and a carry)."""
    with_uri = {spec.name for spec in TAGS.values() if any(a.name == "URI" for a in spec.attrs)}
    assert with_uri == {"EXT-X-MAP", "EXT-X-PART", "EXT-X-PRELOAD-HINT"}
    assert Uri not in TAGS  # URI lines: checked in both tests above
