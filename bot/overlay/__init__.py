"""The captions overlay: an aiohttp server with one transparent page for an OBS browser source."""
