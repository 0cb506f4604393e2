#!/usr/bin/env bash
# The image end to end (what `make test-container` runs first): build it (timed), start a
# Redis, a Chroma server and the assistant's API (`assistant serve`) from it, chat through
# /v1/chat/completions twice on one thread, and check that the thread went to Redis and
# that Chroma answers. Prints the build time, the start-to-first-answer time, each
# answer's time and the image size.
#
#   scripts/container/test.sh                 # build (MODEL=smollm2) and test
#   SKIP_BUILD=1 scripts/container/test.sh    # test the image already built
#   FAKE=1 ...                                # the fake model instead of SmolLM2 (seconds)
#   API_RUN_ARGS="-v $PWD/../api:/app:ro" SKIP_BUILD=1 ...   # another checkout's code in
#                                             # the image (the project is installed editable from /app)
#
# Everything listens on 127.0.0.1 only (host network, free ports); the containers and
# volumes it starts are removed at the end, by name.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

export MODEL="${MODEL:-smollm2}"
export TAG="${TAG:-localhost/local-assistant:$MODEL}"
run_id="assistant-test-$$"
pm() { "$(engine)" "${podman_args[@]}" "$@"; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  start=$SECONDS
  "$here/build.sh"
  echo ">>> build: $((SECONDS - start)) s (wheels staged + image built)"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port="$(free_port)"; chroma_port="$(free_port)"; api_port="$(free_port)"

containers=()
cleanup() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    for name in "${containers[@]}"; do
      echo "--- logs of $name"; pm logs --tail 40 "$name" 2>&1 || true
    done
  fi
  for name in "${containers[@]}"; do pm rm -f -t 5 "$name" >/dev/null 2>&1 || true; done
  for name in "${containers[@]}"; do pm volume rm -f "$name-data" >/dev/null 2>&1 || true; done
  exit $status
}
trap cleanup EXIT

start_role() {  # name role port [env...]
  local name="$run_id-$1" role="$2" port="$3"; shift 3
  local envs=() extra=()
  # shellcheck disable=SC2206  # API_RUN_ARGS is a list of options
  [[ "$role" == api && -n "${API_RUN_ARGS:-}" ]] && extra=(${API_RUN_ARGS})
  for kv in "$@"; do envs+=(-e "$kv"); done
  containers+=("$name")
  pm volume create "$name-data" >/dev/null
  pm run -d --name "$name" "${run_args[@]}" --network host \
    -e HOST=127.0.0.1 -e "PORT=$port" "${envs[@]}" ${extra[@]+"${extra[@]}"} \
    -v "$name-data:/data" "$TAG" "$role" >/dev/null
}

model_env=()
[[ "${FAKE:-0}" == 1 ]] && model_env=(ASSISTANT_MODEL__BACKEND=fake)

start=$SECONDS
start_role redis redis "$redis_port"
start_role chroma chroma "$chroma_port"
start_role api api "$api_port" "REDIS_URL=redis://127.0.0.1:$redis_port" \
  "ASSISTANT_CHROMA__URL=http://127.0.0.1:$chroma_port" "ASSISTANT_MEMORY__BACKEND=redis" \
  "ASSISTANT_MEMORY__FALLBACK=none" ${model_env[@]+"${model_env[@]}"}

# The chat itself, in Python (standard library): wait for the API, then two turns.
ENGINE="$(engine) ${podman_args[*]}" API_CONTAINER="$run_id-api" \
python3 - "$api_port" "$chroma_port" <<'PY'
import json, os, subprocess, sys, time, urllib.error, urllib.request, uuid

api = f"http://127.0.0.1:{sys.argv[1]}"
chroma = f"http://127.0.0.1:{sys.argv[2]}"

def call(method, url, body=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if os.environ.get("ASSISTANT_API_KEY"):
        headers["Authorization"] = "Bearer " + os.environ["ASSISTANT_API_KEY"]
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read() or b"null")

start = time.monotonic()
while time.monotonic() - start < 600:
    try:
        call("GET", api + "/v1/models", timeout=5)
        break
    except (urllib.error.URLError, ConnectionError, OSError):
        pass
    running = subprocess.run(
        [*os.environ["ENGINE"].split(), "inspect", "-f", "{{.State.Running}}",
         os.environ["API_CONTAINER"]], capture_output=True, text=True).stdout.strip()
    if running != "true":
        sys.exit("the API container stopped before answering")
    time.sleep(2)
else:
    sys.exit("the API did not answer within 600 s")
print(f">>> API up after {time.monotonic() - start:.1f} s (OpenAI-compatible /v1)")

def chat(text, thread):
    began = time.monotonic()
    _, out = call("POST", api + "/v1/chat/completions", {
        "model": "assistant", "metadata": {"thread_id": thread},
        "messages": [{"role": "user", "content": text}]})
    reply = out["choices"][0]["message"]["content"]
    print(f">>> {text!r} -> {reply[:120]!r} ({time.monotonic() - began:.1f} s)")
    assert isinstance(reply, str) and reply.strip(), out
    return out

thread = str(uuid.uuid4())
chat("Hello! My name is Ada.", thread)
chat("What is my name?", thread)
status, beat = call("GET", chroma + "/api/v2/heartbeat", timeout=10)
assert status == 200 and beat, beat
print(">>> Chroma server answers:", beat)
PY

# The thread is in Redis (the replicas' shared memory), not in the API container.
keys="$(pm exec "$run_id-redis" python -c "
import redis; r = redis.Redis(port=$redis_port)
print(sum(1 for _ in r.scan_iter('checkpoint*', count=1000)))")"
echo ">>> checkpoint keys in Redis: $keys"
[[ "$keys" -gt 0 ]]
# A document ingested in the API container lands in the Chroma server, not in /data.
pm exec "$run_id-api" assistant ingest /app/README.md >/dev/null
chunks="$(python3 - "$chroma_port" <<'PY'
import json, sys, urllib.request
base = (f"http://127.0.0.1:{sys.argv[1]}/api/v2/tenants/default_tenant"
        "/databases/default_database/collections")
with urllib.request.urlopen(base, timeout=10) as response:
    collections = json.load(response)
total = 0
for collection in collections:
    with urllib.request.urlopen(f"{base}/{collection['id']}/count", timeout=10) as response:
        total += json.load(response)
print(total)
PY
)"
echo ">>> chunks in the Chroma server after one ingest: $chunks"
[[ "$chunks" -gt 0 ]]

# The image's HEALTHCHECK, run once by hand (Podman's timers need systemd, absent here).
for role in api redis chroma; do
  pm healthcheck run "$run_id-$role" >/dev/null && echo ">>> $role healthcheck: healthy"
done
echo ">>> start to second answer: $((SECONDS - start)) s"
size="$(pm image inspect --format '{{.Size}}' "$TAG")"
echo ">>> image $TAG: $(numfmt --to=iec --suffix=B "$size") ($size bytes)"
echo ">>> container test passed"
