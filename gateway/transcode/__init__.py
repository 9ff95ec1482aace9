"""Shared JPEG variants and the shared H.264 encode (PyAV codec work, worker threads).

``parse_image_params`` turns a request's query into an ``ImageParams`` key; a
``VariantPool`` per camera runs one ``JpegTranscoder`` (one worker thread) per distinct
key while clients hold it, and one-off snapshot transcodes shared per frame.
``H264Pipeline`` turns a camera's JPEGs or MPEG-2 pictures into ``EncodedVideo``
access units (blocking; run by one worker thread).
"""

from __future__ import annotations

from .audio import AudioCounters, AudioDecoder, PcmBlock, PyAvDecoder, codec_for
from .h264 import EncodedVideo, H264Pipeline
from .h264_counters import H264Counters
from .h264_params import H264Settings
from .image import DEFAULT_COMPRESSION, JpegPipeline, qscale_for
from .params import ImageParams, ParamError, parse_image_params
from .pool import VariantHandle, VariantLimitError, VariantPool
from .transcoder import JpegTranscoder, TranscodeCounters

__all__ = [
    "DEFAULT_COMPRESSION",
    "AudioCounters",
    "AudioDecoder",
    "EncodedVideo",
    "H264Counters",
    "H264Pipeline",
    "H264Settings",
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
