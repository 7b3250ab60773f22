"""recsys web: server-rendered pages (aiohttp + Jinja2) that call the gateway over gRPC."""
