"""The renditions a camera can make, by kind: the app hands this table to each CameraMedia."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.config import VideoSource
from gateway.hub.renditions import RenditionKey, RenditionSpec
from gateway.media import StreamKind

from .audio_codecs import AudioEncoding
from .audio_rendition import AudioRendition
from .encode import H264_KIND, H264Rendition, h264_settings
from .params import ImageParams
from .pcm import PcmRendition
from .variants import JPEG_KIND, JpegVariant

if TYPE_CHECKING:
    from gateway.hub.camera import CameraMedia, SpecTable


def rendition_specs(
    *,
    variant_linger: float = 2.0,
    max_variants: int = 8,
    encode_linger: float = 5.0,
    max_encodes: int = 2,
) -> SpecTable:
    """Return the table builder: which renditions a camera makes, from which sources.

    Each kind names the camera source it reads (``RenditionSpec.source``): its readers
    are consumers of that source, which an on-demand camera opens for them.
    """

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
                source=StreamKind.MJPEG,
            )
        camera = media.camera
        if media.mjpeg is not None or media.mpeg2 is not None:

            def encode(key: RenditionKey[Any]) -> H264Rendition:
                cap = key.params if isinstance(key.params, tuple) else None
                settings = h264_settings(camera.h264, cap)
                return H264Rendition(media, settings, source=camera.video_source)

            mpeg2 = camera.video_source is VideoSource.MPEG2
            specs[H264_KIND] = RenditionSpec(
                encode,
                linger=encode_linger,
                max_live=max_encodes,
                noun="H.264 encodes",
                source=StreamKind.MPEG2 if mpeg2 else StreamKind.MJPEG,
            )
        if media.audio is not None:
            specs["pcm"] = RenditionSpec(
                lambda _: PcmRendition(media), linger=0, max_live=1, source=StreamKind.AUDIO
            )
            for encoding in AudioEncoding:

                def audio(
                    _: RenditionKey[Any], encoding: AudioEncoding = encoding
                ) -> AudioRendition:
                    return AudioRendition(media, encoding)

                # It reads the PCM rendition: its claim there makes it a consumer of audio.
                specs[encoding.value] = RenditionSpec(audio, linger=encode_linger, max_live=1)
        return specs

    return table
