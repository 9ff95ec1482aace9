"""Sans-IO parsers: bytes in, events out. Imports no asyncio, aiohttp or av."""
