"""Serve a bot's Starlette app with uvicorn."""

from __future__ import annotations

from starlette.applications import Starlette


def serve(app: Starlette, host: str, port: int) -> None:
    """Serve ``app`` on ``host:port`` until interrupted (Ctrl-C or SIGTERM)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
