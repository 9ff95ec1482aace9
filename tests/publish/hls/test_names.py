"""Resource names: only the canonical spellings parse; anything else is None (a 404)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.publish.hls.names import (
    MAX_MSN,
    MAX_NAME_LENGTH,
    MAX_PART_INDEX,
    MEDIA_NAME,
    MULTIVARIANT_NAME,
    Kind,
    Resource,
    init_name,
    parse_name,
    part_name,
    segment_name,
)


def name_of(resource: Resource) -> str:
    """Return the canonical name of ``resource``."""
    if resource.kind is Kind.MULTIVARIANT:
        return MULTIVARIANT_NAME
    if resource.kind is Kind.MEDIA:
        return MEDIA_NAME
    if resource.kind is Kind.INIT:
        return init_name(resource.number)
    if resource.kind is Kind.SEGMENT:
        return segment_name(resource.number)
    return part_name(resource.number, resource.index)


@pytest.mark.parametrize(
    ("name", "resource"),
    [
        ("index.m3u8", Resource(Kind.MULTIVARIANT)),
        ("media.m3u8", Resource(Kind.MEDIA)),
        ("init0.mp4", Resource(Kind.INIT, 0)),
        ("init12.mp4", Resource(Kind.INIT, 12)),
        ("seg0.m4s", Resource(Kind.SEGMENT, 0)),
        ("seg18446744073709551615.m4s", Resource(Kind.SEGMENT, MAX_MSN)),
        ("part7.0.m4s", Resource(Kind.PART, 7, 0)),
        ("part7.9999.m4s", Resource(Kind.PART, 7, MAX_PART_INDEX)),
    ],
)
def test_names_parse(name: str, resource: Resource) -> None:
    assert parse_name(name) == resource
    assert name_of(resource) == name


@pytest.mark.parametrize(
    "name",
    [
        "../index.m3u8",
        "..%2Findex.m3u8",
        "..",
        "/etc/passwd",
        "seg1.m4s/../../x",
        "seg1.m4s\x00",
        "seg01.m4s",  # one resource, one spelling (caches, logs)
        "seg-1.m4s",
        "seg+1.m4s",
        "seg1.M4S",
        "SEG1.m4s",
        "seg\u0661.m4s",  # ARABIC-INDIC DIGIT ONE: what a Unicode \d matches
        "seg 1.m4s",
        "seg1.m4s ",
        "part1.m4s",
        "part1.10000.m4s",
        "part1.00.m4s",
        "seg18446744073709551616.m4s",  # 2**64
        "init1000000000.mp4",
        "index.m3u8?x",
        "stream.m3u8",
        "",
        "seg" + "9" * 60 + ".m4s",
        "a" * (MAX_NAME_LENGTH + 1),
    ],
)
def test_other_names_do_not(name: str) -> None:
    assert parse_name(name) is None


@given(st.text(max_size=80))
def test_any_text_is_refused_or_is_the_canonical_name_of_what_it_parses_to(text: str) -> None:
    resource = parse_name(text)
    assert resource is None or name_of(resource) == text


@given(
    st.sampled_from(list(Kind)),
    st.integers(0, MAX_MSN),
    st.integers(0, MAX_PART_INDEX),
)
def test_every_resource_round_trips(kind: Kind, number: int, index: int) -> None:
    if kind is Kind.INIT:
        number %= 1_000_000_000
    resource = Resource(
        kind,
        number if kind in (Kind.INIT, Kind.SEGMENT, Kind.PART) else 0,
        index if kind is Kind.PART else 0,
    )
    name = name_of(resource)
    assert len(name) <= MAX_NAME_LENGTH
    assert parse_name(name) == resource


@given(st.from_regex(r"(seg|part|init)[0-9.]{0,30}\.(m4s|mp4)", fullmatch=True))
def test_near_misses_parse_only_in_canonical_form(text: str) -> None:
    resource = parse_name(text)
    assert resource is None or name_of(resource) == text
