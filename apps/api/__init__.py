"""The OpenAI-compatible HTTP API: ``POST /v1/chat/completions`` and ``GET /v1/models``.

:func:`apps.api.app.create_app` builds the FastAPI app (``assistant serve`` runs it with
uvicorn; ``langgraph.json`` mounts ``apps/api/server.py:app`` into ``langgraph dev``).
Nothing is imported here, so ``assistant --help`` does not load FastAPI.
"""
