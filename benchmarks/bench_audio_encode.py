"""Audio encode cost: CPU milliseconds per second of camera audio, per rendition.

Feeds ``--seconds`` of 8 kHz PCM (a 1 kHz tone, then white noise band-limited by the
8 kHz rate) as 512-sample blocks, the camera's part size, through each
``AudioEncodePipeline`` (AAC at 48 and 16 kHz, Opus at 48 kHz) in this thread and
reports the process CPU time per second of audio, with the output bit rate.

    python benchmarks/bench_audio_encode.py [--seconds N]

The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from gateway.transcode.audio import PcmBlock
from gateway.transcode.audio_codecs import AudioEncoding
from gateway.transcode.audio_encode import AudioEncodePipeline

RATE = 8000
PART = 512
RENDITIONS = [("aac48k", AudioEncoding.AAC, 48000), ("aac16k", AudioEncoding.AAC, 16000)]
RENDITIONS.append(("opus48k", AudioEncoding.OPUS, 48000))


def signals(seconds: int) -> dict[str, np.typing.NDArray[np.int16]]:
    """Return the test signals, seconds long each."""
    n = np.arange(seconds * RATE)
    tone = np.sin(2 * np.pi * 1000 * n / RATE) * 0.4 * 32767
    noise = np.random.default_rng(1).normal(0, 4000, len(n))
    return {
        "tone": tone.astype(np.int16),
        "noise": np.clip(noise, -32768, 32767).astype(np.int16),
    }


def run(
    encoding: AudioEncoding, rate: int, pcm: np.typing.NDArray[np.int16]
) -> tuple[float, float]:
    """Return (CPU ms per audio second, output kbit/s) for one pipeline over pcm."""
    pipeline = AudioEncodePipeline(encoding, sample_rate=rate)
    blocks = [
        PcmBlock(pcm[i : i + PART], i, received_ns=0, seq=i // PART)
        for i in range(0, len(pcm), PART)
    ]
    size = 0
    started = time.process_time()
    for block in blocks:
        size += sum(len(p.payload) for p in pipeline.feed(block))
    size += sum(len(p.payload) for p in pipeline.flush())
    cpu = time.process_time() - started
    seconds = len(pcm) / RATE
    return cpu * 1000 / seconds, size * 8 / seconds / 1000


def main() -> None:
    """Run every rendition on every signal and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    results: dict[str, object] = {"benchmark": "audio_encode", "seconds": args.seconds}
    for signal, pcm in signals(args.seconds).items():
        for name, encoding, rate in RENDITIONS:
            ms, kbps = run(encoding, rate, pcm)
            print(f"{name:8} {signal:6} {ms:6.2f} ms CPU per audio second, {kbps:5.1f} kbit/s")
            results[f"{name}_{signal}_cpu_ms_per_s"] = round(ms, 2)
            results[f"{name}_{signal}_kbps"] = round(kbps, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
