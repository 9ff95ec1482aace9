"""Parameter sets and configs shared by the mux tests (taken from libx264 and libopus output)."""

from __future__ import annotations

from gateway.mux import h264

#: libx264's SPS for 320x240 High profile, level 1.3 (emulation prevention bytes included).
SPS_HIGH = bytes.fromhex("6764000dacb20283f420000003002000000791e28549")
PPS_HIGH = bytes.fromhex("68ebc3cb22c0")
#: A Baseline SPS header (profile 66, constraint_set1, level 3.0); the rest is never read.
SPS_BASELINE = bytes.fromhex("6742c01ed900a047fec8")
PPS_BASELINE = bytes.fromhex("68ce3880")
#: High 4:4:4 Predictive: sps_id 0, chroma_format_idc 3, separate_colour_plane 0, 10-bit.
SPS_444 = bytes((0x67, 244, 0x00, 0x1E, 0b1001_0000, 0b1101_1100))
#: The avcC record libx264's parameter sets make.
AVCC_HIGH = h264.avcc_from_parameter_sets(SPS_HIGH, PPS_HIGH)
#: AAC-LC, 48000 Hz, mono (what FFmpeg's aac encoder puts in extradata).
ASC_48K_MONO = bytes.fromhex("1188")
#: libopus's OpusHead for 48 kHz mono: pre-skip 312.
OPUS_HEAD_MONO = bytes.fromhex("4f707573486561640101380180bb0000000000")
