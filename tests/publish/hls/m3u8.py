"""An independent reader of the gateway's media playlists, and the RFC 8216bis rules they keep.

It reads the rendered text (not the model), so the table, the renderer and the
segmenter's numbers are checked together. ``problems(text)`` lists every broken rule.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",]*)(?:,|$)')
_PART_URI = re.compile(r"part(\d+)\.(\d+)\.m4s")
_SEGMENT_URI = re.compile(r"seg(\d+)\.m4s")
#: Decimal values are compared as written: only float arithmetic's error is forgiven.
EPSILON = 1e-9


def attributes(text: str) -> dict[str, str]:
    """Return an attribute-list's pairs (quoted values without their quotes)."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        match = _ATTR.match(text, pos)
        assert match is not None, f"bad attribute list at {text[pos:]!r}"
        name, value = match.groups()
        assert name not in out, f"{name} twice"
        out[name] = value[1:-1] if value.startswith('"') else value
        pos = match.end()
    return out


@dataclass
class PartLine:
    """An EXT-X-PART."""

    uri: str
    duration: float
    independent: bool


@dataclass
class SegmentLines:
    """A segment: its tags, parts and (when complete) EXTINF and URI."""

    uri: str | None = None
    duration: float | None = None
    parts: list[PartLine] = field(default_factory=list)
    program_date_time: str | None = None
    map_uri: str | None = None
    discontinuity: bool = False
    #: Tags in the order they came (to check that tags come before parts).
    order: list[str] = field(default_factory=list)


@dataclass
class Parsed:
    """A media playlist as read."""

    version: int = 1
    target_duration: int | None = None
    media_sequence: int = 0
    discontinuity_sequence: int | None = None
    part_target: float | None = None
    server_control: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    segments: list[SegmentLines] = field(default_factory=list)
    hints: list[dict[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    @property
    def complete(self) -> list[SegmentLines]:
        """Return the segments with a URI."""
        return [s for s in self.segments if s.uri is not None]

    @property
    def duration(self) -> float:
        """Return the playlist's duration: its complete segments' EXTINF sum."""
        return sum(s.duration or 0.0 for s in self.complete)


def parse(text: str) -> Parsed:
    """Read a media playlist."""
    lines = text.split("\n")
    assert lines[0] == "#EXTM3U", "starts with #EXTM3U"
    assert lines[-1] == "", "ends with a line feed"
    out = Parsed()
    current = SegmentLines()
    for line in lines[1:-1]:
        assert line, "no blank lines"
        if not line.startswith("#"):
            current.uri = line
            out.segments.append(current)
            current = SegmentLines()
            continue
        name, _, value = line[1:].partition(":")
        out.tags.append(name)
        if name == "EXT-X-VERSION":
            out.version = int(value)
        elif name == "EXT-X-TARGETDURATION":
            out.target_duration = int(value)
        elif name == "EXT-X-MEDIA-SEQUENCE":
            out.media_sequence = int(value)
        elif name == "EXT-X-DISCONTINUITY-SEQUENCE":
            out.discontinuity_sequence = int(value)
        elif name == "EXT-X-PART-INF":
            out.part_target = float(attributes(value)["PART-TARGET"])
        elif name == "EXT-X-SERVER-CONTROL":
            out.server_control = attributes(value)
        elif name == "EXT-X-SKIP":
            out.skipped = int(attributes(value)["SKIPPED-SEGMENTS"])
        elif name == "EXT-X-PRELOAD-HINT":
            out.hints.append(attributes(value))
        elif name == "EXT-X-PART":
            attrs = attributes(value)
            current.parts.append(
                PartLine(attrs["URI"], float(attrs["DURATION"]), attrs.get("INDEPENDENT") == "YES")
            )
            current.order.append(name)
        elif name == "EXTINF":
            assert value.endswith(","), "EXTINF:<duration>,"
            current.duration = float(value[:-1])
            current.order.append(name)
        elif name == "EXT-X-PROGRAM-DATE-TIME":
            current.program_date_time = value
            current.order.append(name)
        elif name == "EXT-X-MAP":
            current.map_uri = attributes(value)["URI"]
            current.order.append(name)
        elif name == "EXT-X-DISCONTINUITY":
            current.discontinuity = True
            current.order.append(name)
        else:
            raise AssertionError(f"unexpected tag {name}")
    if current.order:
        out.segments.append(current)  # the segment in progress: parts only
    return out


def problems(text: str, *, parts_listed: float = 3.0) -> list[str]:
    """Return every RFC 8216bis rule ``text`` breaks (empty: none)."""
    p = parse(text)
    bad: list[str] = []
    td = p.target_duration
    if td is None or td < 1:
        return ["EXT-X-TARGETDURATION missing or < 1 (§4.4.3.1)"]
    for tag in ("EXT-X-VERSION", "EXT-X-TARGETDURATION", "EXT-X-MEDIA-SEQUENCE",
                "EXT-X-PART-INF", "EXT-X-SERVER-CONTROL", "EXT-X-SKIP"):  # fmt: skip
        if p.tags.count(tag) > 1:
            bad.append(f"{tag} more than once")
    needed = max(
        [1]
        + [6 for s in p.segments if s.map_uri]
        + ([9] if p.skipped else [])
        + [3 for s in p.complete if s.duration != int(s.duration or 0)]
    )
    if p.version != needed:
        bad.append(f"EXT-X-VERSION {p.version}, the tags need {needed} (§8, §6.2.1)")
    if not p.segments or p.segments[0].map_uri is None:
        bad.append("no EXT-X-MAP before the first segment (§3.1.2)")
    sc = p.server_control
    target = p.part_target
    if sc.get("CAN-BLOCK-RELOAD") != "YES":
        bad.append("CAN-BLOCK-RELOAD=YES missing")
    if float(sc.get("HOLD-BACK", 3 * td)) < 3 * td - EPSILON:
        bad.append("HOLD-BACK < 3 target durations (§4.4.3.8)")
    if "CAN-SKIP-UNTIL" not in sc or float(sc["CAN-SKIP-UNTIL"]) < 6 * td - EPSILON:
        bad.append("CAN-SKIP-UNTIL missing or < 6 target durations (§4.4.3.8)")
    if any(s.parts for s in p.segments):
        if target is None:
            return [*bad, "EXT-X-PART without EXT-X-PART-INF (§4.4.3.7)"]
        if float(sc.get("PART-HOLD-BACK", 0)) < 3 * target - EPSILON:
            bad.append("PART-HOLD-BACK < 3 part targets (§4.4.3.8)")
        if not any(h.get("TYPE") == "PART" for h in p.hints):
            bad.append("no EXT-X-PRELOAD-HINT TYPE=PART (Appendix B.1)")
    msn = p.media_sequence + p.skipped
    building = p.segments[-1] if p.segments and p.segments[-1].uri is None else None
    end = p.duration + sum(x.duration for x in (building.parts if building else []))
    position = 0.0
    for segment in p.segments:
        bad += _segment_problems(segment, msn, td, target)
        if segment.uri is not None:
            position += segment.duration or 0.0
            distance = end - position  # from the segment's end to the playlist's end
            if (distance < parts_listed * td - 1e-6) != bool(segment.parts):
                bad.append(f"{segment.uri}: parts listed {bool(segment.parts)} at {distance:.3f}s")
        msn += 1
    return bad


def _segment_problems(s: SegmentLines, msn: int, td: int, target: float | None) -> list[str]:
    bad = []
    name = s.uri or f"segment {msn} (in progress)"
    if s.uri is not None:
        if _SEGMENT_URI.fullmatch(s.uri) is None or int(s.uri[3:-4]) != msn:
            bad.append(f"{s.uri} is not segment {msn}")
        if s.duration is None:
            bad.append(f"{s.uri} without EXTINF")
        elif math.floor(s.duration + 0.5) > td:
            bad.append(f"{s.uri}: EXTINF {s.duration} rounds above {td} (§4.4.3.1)")
    if s.program_date_time is None:
        bad.append(f"{name}: no EXT-X-PROGRAM-DATE-TIME (Appendix B.1)")
    if "EXT-X-PART" in s.order:
        first = s.order.index("EXT-X-PART")
        late = {"EXT-X-PROGRAM-DATE-TIME", "EXT-X-MAP", "EXT-X-DISCONTINUITY"} & set(
            s.order[first:]
        )
        if late:
            bad.append(f"{name}: {sorted(late)} after its first EXT-X-PART (§4.4.4.9)")
    for index, part in enumerate(s.parts):
        match = _PART_URI.fullmatch(part.uri)
        if match is None or (int(match[1]), int(match[2])) != (msn, index):
            bad.append(f"{part.uri} is not part {index} of segment {msn}")
        assert target is not None
        if part.duration > target + EPSILON:
            bad.append(f"{part.uri}: {part.duration} > PART-TARGET {target} (§4.4.4.9)")
        final = s.uri is not None and index == len(s.parts) - 1
        if part.duration < 0.85 * target - EPSILON and not part.independent and not final:
            bad.append(f"{part.uri}: {part.duration} < 85% of PART-TARGET (§4.4.4.9)")
    if s.parts and s.duration is not None:
        total = sum(part.duration for part in s.parts)
        if abs(total - s.duration) > 1e-6 * (len(s.parts) + 1):
            bad.append(f"{name}: parts add up to {total}, EXTINF says {s.duration} (§3.2)")
    return bad
