#!/usr/bin/env bash
# Build the image with Podman (or Docker: CONTAINER=docker), timed, and print its size.
#
#   scripts/container/build.sh                       # offline path: bootstrapped Debian base
#   BASE=official scripts/container/build.sh         # normal path: python:3.11-slim
#   MODEL=smollm2 TAG=local-assistant:smollm2 scripts/container/build.sh
#   scripts/container/build.sh --build-arg LLAMA_BACKEND=cuda ...   # extra args go to build
#
# What it does besides `podman build`: stages this machine's wheels (stage-wheels.sh),
# bootstraps the base when BASE=offline (bootstrap-base.sh), passes the host's CA bundle as
# the "ca" build secret (pip behind a TLS-intercepting proxy), and on Podman adds the
# options this kind of VM needs (podman_args in common.sh). Runs under `nice -n 10`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
cd "$here/../.."

tag="${TAG:-localhost/local-assistant:latest}"
model="${MODEL:-none}"
base="${BASE:-offline}"
args=(--build-arg "MODEL=$model" -t "$tag" -f Containerfile)
if [[ "$base" == offline ]]; then
  "$here/bootstrap-base.sh"
  # Debian bookworm's Python is 3.11.2; a few pinned wheels (soupsieve 4.1.2) declare
  # Requires-Python >=3.11.5 without needing anything newer than 3.11.
  args+=(--build-arg "BASE_IMAGE=${BASE_TAG:-localhost/assistant-base:bookworm}"
         --build-arg PIP_IGNORE_REQUIRES_PYTHON=1)
fi
[[ -s "${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" ]] \
  && args+=(--secret "id=ca,src=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}")
if [[ "$(engine)" == podman ]]; then
  # HEALTHCHECK is kept only in the Docker image format.
  args+=(--format docker --ignorefile .containerignore)
fi

# Every wheel staged through the host's pip (STAGE=0: use what is staged already): the
# build then installs with --no-index. NO_INDEX=0 lets pip in the build use its index too.
if [[ "${STAGE:-1}" == 1 ]]; then
  MODEL="$model" "$here/stage-wheels.sh" | tail -1
fi
args+=(--build-arg "PIP_NO_INDEX=${NO_INDEX:-1}")
start=$SECONDS
nice -n 10 "$(engine)" "${podman_args[@]}" build "${run_args[@]}" "${args[@]}" "$@" .
seconds=$((SECONDS - start))
size="$("$(engine)" image inspect --format '{{.Size}}' "$tag")"
echo ">>> built $tag in ${seconds} s; image size $(numfmt --to=iec --suffix=B "$size") ($size bytes)"
