"""The renditions a camera can make, by kind: the app hands this table to each CameraMedia."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.hub.renditions import RenditionKey, RenditionSpec

from .params import ImageParams
from .pcm import PcmRendition
from .variants import JPEG_KIND, JpegVariant

if TYPE_CHECKING:
    from gateway.hub.camera import CameraMedia, SpecTable


def rendition_specs(*, variant_linger: float = 2.0, max_variants: int = 8) -> SpecTable:
    """Return the table builder: which renditions a camera makes, from which sources."""

    def table(media: CameraMedia) -> Mapping[str, RenditionSpec]:
        specs: dict[str, RenditionSpec] = {}
        if media.mjpeg is not None:

            def variant(key: RenditionKey[Any]) -> JpegVariant:
                assert isinstance(key.params, ImageParams)
                return JpegVariant(media, key.params)

            specs[JPEG_KIND] = RenditionSpec(
                variant,
                linger=variant_linger,
                max_live=max_variants,
                noun="image variants",
                hint="; use an existing resolution/compression",
            )
        if media.audio is not None:
            specs["pcm"] = RenditionSpec(lambda _: PcmRendition(media), linger=0, max_live=1)
        return specs

    return table
