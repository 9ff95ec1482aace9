"""LL-HLS: one sans-IO segmenter per camera, playlists from one table, blocking reload.

``segmenter`` turns the camera's shared H.264 and AAC encode into init segments, parts
and segments (``parts`` are its records and events; ``cutter`` decides where parts and
segments begin and end, ``audio`` which audio goes into which part); ``tags`` and
``playlist`` are the typed playlist model and its renderer; ``live`` reads a segmenter
into playlists and implements the delivery directives (``_HLS_msn``, ``_HLS_part``,
``_HLS_skip``); ``names`` is the one parser of resource names. None of them imports
asyncio, aiohttp or av: the routes are a thin layer on top (docs/interfaces.md,
"gateway.publish.hls").
"""
