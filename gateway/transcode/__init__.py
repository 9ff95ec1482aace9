"""Shared JPEG variants: Axis image parameters applied once per camera and variant.

``parse_image_params`` turns a request's query into an ``ImageParams`` key; a
``VariantPool`` per camera runs one ``JpegTranscoder`` (one worker thread) per distinct
key while clients hold it, and one-off snapshot transcodes shared per frame. Codec work
runs in ``Worker`` threads (bounded input, outputs back on the loop in order).
"""

from __future__ import annotations

from .audio import AudioCounters, AudioDecoder, PcmBlock, PyAvDecoder, codec_for
from .image import DEFAULT_COMPRESSION, JpegPipeline, qscale_for
from .params import ImageParams, ParamError, parse_image_params
from .pool import VariantHandle, VariantLimitError, VariantPool
from .transcoder import JpegTranscoder, TranscodeCounters
from .worker import InputPolicy, Listeners, Worker, WorkerCounters

__all__ = [
    "DEFAULT_COMPRESSION",
    "AudioCounters",
    "AudioDecoder",
    "ImageParams",
    "InputPolicy",
    "JpegPipeline",
    "JpegTranscoder",
    "Listeners",
    "ParamError",
    "PcmBlock",
    "PyAvDecoder",
    "TranscodeCounters",
    "VariantHandle",
    "VariantLimitError",
    "VariantPool",
    "Worker",
    "WorkerCounters",
    "codec_for",
    "parse_image_params",
    "qscale_for",
]
