"""Codec work in worker threads: one producer per camera rendition.

Codec work runs in ``Worker`` threads (bounded input, outputs back on the loop in
order). JPEG variants for the Axis image parameters (``JpegVariant``, one
``JpegTranscoder`` each), one-off snapshot transcodes (``SnapshotJobs``), the camera's
decoded audio (``PcmRendition``: ``AudioDecoder`` and a level meter).
``rendition_specs`` is the table the app gives each camera's media.
"""

from __future__ import annotations

from .audio import AudioCounters, AudioDecoder, PcmBlock, PyAvDecoder, codec_for
from .audio_codecs import AudioEncodeCounters, AudioEncoderConfig, AudioEncoding, EncodedAudio
from .audio_encode import AudioEncodePipeline
from .h264 import EncodedVideo, H264Pipeline
from .h264_counters import H264Counters
from .h264_params import H264Settings
from .image import DEFAULT_COMPRESSION, JpegPipeline, qscale_for
from .params import ImageParams, ParamError, parse_image_params
from .pcm import PCM_KEY, LevelMeter, PcmRendition
from .table import rendition_specs
from .transcoder import JpegTranscoder, TranscodeCounters
from .variants import JPEG_KIND, JpegVariant, SnapshotJobs, SnapshotLimitError, jpeg_key
from .worker import InputPolicy, Listeners, Worker, WorkerCounters

__all__ = [
    "DEFAULT_COMPRESSION",
    "JPEG_KIND",
    "PCM_KEY",
    "AudioCounters",
    "AudioDecoder",
    "AudioEncodeCounters",
    "AudioEncodePipeline",
    "AudioEncoderConfig",
    "AudioEncoding",
    "EncodedAudio",
    "EncodedVideo",
    "H264Counters",
    "H264Pipeline",
    "H264Settings",
    "ImageParams",
    "InputPolicy",
    "JpegPipeline",
    "JpegTranscoder",
    "JpegVariant",
    "LevelMeter",
    "Listeners",
    "ParamError",
    "PcmBlock",
    "PcmRendition",
    "PyAvDecoder",
    "SnapshotJobs",
    "SnapshotLimitError",
    "TranscodeCounters",
    "Worker",
    "WorkerCounters",
    "codec_for",
    "jpeg_key",
    "parse_image_params",
    "qscale_for",
    "rendition_specs",
]
