#!/usr/bin/env bash
# compose.yaml end to end: bring the whole stack up (Redis, Chroma, prepare, API, web UI)
# with podman-compose (or `docker compose`), chat twice on one thread through the API,
# ingest a file through the API container, check the thread's checkpoints are in Redis
# and the chunks in the Chroma server, fetch the web page, bring it all down with its
# volumes. Prints each step's time.
#
#   scripts/container/compose-test.sh        # the SmolLM2 image (built first if missing)
#   COMPOSE="docker compose" ...             # another compose tool
#   TAG=localhost/local-assistant:latest ... # another image (MODEL=none prepares the
#                                            # default model in the volume: ~1.1 GB download)
#   COMPOSE_OVERRIDE=file.yaml ...           # a second compose file merged over compose.yaml
#                                            # (e.g. PIP_CERT for the prepare service)
#
# Which compose: $COMPOSE, else podman-compose on PATH or in the repository's tool venv
# (.tools/bin, docs/deployment.md), else `docker compose`. Offline, so Redis runs from
# our own image (REDIS_IMAGE, default the assistant image). The project name is unique,
# the host ports free; the API and the UI are published on 127.0.0.1 only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
cd "$root"

if [[ -z "${COMPOSE:-}" ]]; then
  if command -v podman-compose >/dev/null; then COMPOSE=podman-compose
  elif [[ -x "$root/.tools/bin/podman-compose" ]]; then COMPOSE="$root/.tools/bin/podman-compose"
  elif docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"
  else echo "no compose tool: neither podman-compose nor docker compose" >&2; exit 3
  fi
fi
read -r -a compose <<<"$COMPOSE"

export MODEL="${MODEL:-smollm2}"
export TAG="${TAG:-localhost/local-assistant:$MODEL}"
if ! "$(engine)" image inspect "$TAG" >/dev/null 2>&1; then
  "$here/build.sh"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
key="test-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
export ASSISTANT_IMAGE="$TAG" REDIS_IMAGE="${REDIS_IMAGE:-$TAG}" NOFILE NPROC
export ASSISTANT_API__KEYS="[\"$key\"]" API_PORT="127.0.0.1:$(free_port)" UI_PORT="$(free_port)"
api="http://$API_PORT"
project="assistant-compose-test-$$"
files=(-f "$root/compose.yaml")
[[ -n "${COMPOSE_OVERRIDE:-}" ]] && files+=(-f "$COMPOSE_OVERRIDE")
dc() { "${compose[@]}" "${files[@]}" -p "$project" "$@"; }

cleanup() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    for service in prepare api ui redis chroma; do
      echo "--- logs of $service"; dc logs --tail 40 "$service" 2>&1 | tail -40 || true
    done
  fi
  local began=$SECONDS
  dc down -v -t 5 >/dev/null 2>&1 || true
  echo ">>> compose down -v: $((SECONDS - began)) s"
  exit $status
}
trap cleanup EXIT

echo ">>> ${compose[*]} $("${compose[@]}" version 2>/dev/null | head -1), image $TAG"
start=$SECONDS
dc up -d >/dev/null
echo ">>> compose up -d: $((SECONDS - start)) s"

# Wait for the API, then two turns on one thread (standard library only).
KEY="$key" python3 - "$api" "http://127.0.0.1:$UI_PORT" <<'PY'
import json, os, sys, time, urllib.error, urllib.request, uuid

api, ui = sys.argv[1], sys.argv[2]
headers = {"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["KEY"]}

def call(method, url, body=None, timeout=600, auth=True):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers if auth else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read() or b"null")

start = time.monotonic()
while True:
    try:
        _, models = call("GET", api + "/v1/models", timeout=5)
        break
    except (urllib.error.URLError, ConnectionError, OSError):
        if time.monotonic() - start > 900:
            sys.exit("the API did not answer within 900 s")
        time.sleep(2)
print(f">>> API up {time.monotonic() - start:.1f} s after compose up; models: "
      f"{[m['id'] for m in models['data']]}")
try:
    call("GET", api + "/v1/models", timeout=10, auth=False)
    sys.exit("the API answered without a key")
except urllib.error.HTTPError as exc:
    assert exc.code == 401, exc.code
print(">>> API without a key: 401")

thread = str(uuid.uuid4())
for text in ("Hello! My name is Ada.", "What is my name?"):
    began = time.monotonic()
    _, out = call("POST", api + "/v1/chat/completions", {
        "model": "assistant", "metadata": {"thread_id": thread},
        "messages": [{"role": "user", "content": text}]})
    reply = out["choices"][0]["message"]["content"]
    print(f">>> {text!r} -> {reply[:120]!r} ({time.monotonic() - began:.1f} s)")
    assert isinstance(reply, str) and reply.strip(), out

start = time.monotonic()
while True:
    try:
        with urllib.request.urlopen(ui, timeout=10) as response:
            assert response.status == 200, response.status
            break
    except (urllib.error.URLError, ConnectionError, OSError):
        if time.monotonic() - start > 300:
            sys.exit("the web UI did not answer within 300 s")
        time.sleep(2)
print(">>> web UI answers: 200")
PY

# The thread is in Redis and a document ingested through the API container is in the
# Chroma server: asked from inside the API container, over the compose network.
keys="$(dc exec -T api python -c "
import os, redis
r = redis.Redis.from_url(os.environ['REDIS_URL'])
print(sum(1 for _ in r.scan_iter('checkpoint*', count=1000)))" | tail -1)"
echo ">>> checkpoint keys in Redis: $keys"
[[ "$keys" -gt 0 ]]
dc exec -T api assistant ingest /app/README.md >/dev/null
chunks="$(dc exec -T api python -c "
import json, os, urllib.request
base = os.environ['ASSISTANT_CHROMA__URL'] + '/api/v2/tenants/default_tenant/databases/default_database/collections'
with urllib.request.urlopen(base, timeout=10) as response:
    collections = json.load(response)
total = 0
for collection in collections:
    with urllib.request.urlopen(base + '/' + collection['id'] + '/count', timeout=10) as response:
        total += json.load(response)
print(total)" | tail -1)"
echo ">>> chunks in the Chroma server after one ingest: $chunks"
[[ "$chunks" -gt 0 ]]
# Nothing of it in the API's own volume: no SQLite, no embedded Chroma store.
local_state="$(dc exec -T api sh -c 'find /data/chroma /data/memory -type f 2>/dev/null | wc -l' | tail -1)"
echo ">>> files of a local store in the API's volume: $local_state"
[[ "$local_state" -eq 0 ]]
echo ">>> compose up to the last check: $((SECONDS - start)) s"
echo ">>> compose test passed"
