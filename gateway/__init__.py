"""The fleet over HTTP: JSON-RPC 2.0, an OpenAI-compatible API, requests by id with server-sent events.

A stateless producer of the fleet (one `LLMClient` per process): several run side by side behind a load
balancer. `llm-fleet gateway` serves it; `create_app` builds the ASGI app.
"""

from gateway.app import create_app

__all__ = ["create_app"]
