"""The HTTP layer: the only user of aiohttp.web."""
