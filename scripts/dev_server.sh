#!/usr/bin/env bash
# Serve the assistant with the LangGraph dev server (langgraph-cli, in-memory runtime),
# offline, on 127.0.0.1:8123 (2024, the CLI's default, is often taken).
#
#   scripts/dev_server.sh                      # API http://127.0.0.1:8123, docs at /docs
#   DEV_SERVER_PORT=8200 scripts/dev_server.sh # another port
#   scripts/dev_server.sh --no-reload          # further flags go to `langgraph dev`
#   DEV_SERVER_HOST=0.0.0.0 DEV_SERVER_ALLOW_REMOTE=1 scripts/dev_server.sh  # no auth!
#
# Threads are kept by our checkpointer (langgraph.json "checkpointer" ->
# tools/memory/checkpointers.py:server_checkpointer): Redis at REDIS_URL, or the SQLite fallback in the
# data dir when Redis is down, so the CLI and notebooks see the server's threads.
# Everything else of the server (its thread list, assistants, runs) lives in
# ./.langgraph_api. Settings come from settings.toml, .env and ASSISTANT_* variables as
# usual (langgraph.json names no "env" file: `langgraph dev` would load it over the
# environment, reversing the settings' precedence).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

host="${DEV_SERVER_HOST:-127.0.0.1}"
port="${DEV_SERVER_PORT:-8123}"
langgraph="${LANGGRAPH:-.venv/bin/langgraph}"

# No outside connections: the CLI's usage analytics (Supabase), the server's PyPI
# version check, LangSmith tracing (and the Studio org lookup it triggers), hub lookups.
# --no-browser below keeps Studio (smith.langchain.com) from being opened.
export LANGGRAPH_CLI_NO_ANALYTICS=1
export LANGGRAPH_NO_VERSION_CHECK=true
export LANGSMITH_TRACING=false
export LANGCHAIN_TRACING_V2=false
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export ANONYMIZED_TELEMETRY=False DO_NOT_TRACK=1

if [[ ! -x "$langgraph" ]]; then
  echo "no $langgraph: run 'make install' (it installs langgraph-cli[inmem])" >&2
  exit 1
fi

# The dev server has no authentication: every thread, the graph's API and /v1 answer
# whoever reaches it. Only this machine may, unless asked for by name
# (`assistant serve` is the server with API keys for others).
case "$host" in
  127.*|localhost|::1|\[::1\]) ;;
  *)
    if [[ "${DEV_SERVER_ALLOW_REMOTE:-}" != 1 ]]; then
      echo "refusing to serve on $host: the dev server has no authentication, so anyone who" >&2
      echo "reaches $host:$port could read every thread; serve on 127.0.0.1, use" >&2
      echo "'assistant serve' (API keys), or set DEV_SERVER_ALLOW_REMOTE=1 to serve anyway" >&2
      exit 1
    fi
    ;;
esac

# `langgraph dev` quietly moves to a random port when the one asked for is taken; stop
# instead, so the URL that clients and Studio were given keeps meaning this server.
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  echo "$host:$port is already in use; pick another: DEV_SERVER_PORT=8124 $0" >&2
  exit 1
fi

exec "$langgraph" dev --host "$host" --port "$port" --no-browser "$@"
