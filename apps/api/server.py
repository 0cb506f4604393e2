"""The API as a module-level app, for ``langgraph.json``'s ``http.app`` (``langgraph dev``).

The dev server mounts these routes next to its own: the LangGraph API, Studio and OpenAI
clients then share one server. Settings are read and the memory is opened when the server
starts (the app's lifespan), the same memory the server's checkpointer opens
(``tools/memory/checkpointers.py:server_checkpointer``), so a thread is one thread for both.
"""

from apps.api.app import create_app

app = create_app()
