"""Sans-IO containers: the fragmented MP4 / CMAF box writer. Imports no asyncio, aiohttp or av."""
