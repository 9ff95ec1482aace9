"""Shared JPEG variants: Axis image parameters applied once per camera and variant.

``parse_image_params`` turns a request's query into an ``ImageParams`` key; a
``VariantPool`` per camera runs one ``JpegTranscoder`` (one worker thread) per distinct
key while clients hold it, and one-off snapshot transcodes shared per frame.
"""

from __future__ import annotations

from .audio import AudioCounters, AudioDecoder, PcmBlock, PyAvDecoder, codec_for
from .audio_codecs import AudioEncodeCounters, AudioEncoderConfig, AudioEncoding, EncodedAudio
from .audio_encode import AudioEncodePipeline
from .image import DEFAULT_COMPRESSION, JpegPipeline, qscale_for
from .params import ImageParams, ParamError, parse_image_params
from .pool import VariantHandle, VariantLimitError, VariantPool
from .transcoder import JpegTranscoder, TranscodeCounters

__all__ = [
    "DEFAULT_COMPRESSION",
    "AudioCounters",
    "AudioDecoder",
    "AudioEncodeCounters",
    "AudioEncodePipeline",
    "AudioEncoderConfig",
    "AudioEncoding",
    "EncodedAudio",
    "ImageParams",
    "JpegPipeline",
    "JpegTranscoder",
    "ParamError",
    "PcmBlock",
    "PyAvDecoder",
    "TranscodeCounters",
    "VariantHandle",
    "VariantLimitError",
    "VariantPool",
    "codec_for",
    "parse_image_params",
    "qscale_for",
]
