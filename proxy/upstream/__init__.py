"""The upstream index: the only aiohttp client of the server, its health, and cached downloads."""
