"""The aiohttp application, REST v1, Deploy API, admin socket and the ``floodwatch`` CLI."""

__all__ = ["__version__"]

__version__ = "0.1.0"
