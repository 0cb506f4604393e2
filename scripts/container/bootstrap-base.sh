#!/usr/bin/env bash
# Build the offline base image from Debian's package mirror when no container registry
# is reachable: mmdebstrap makes a minimal Debian bookworm root with Python 3.11, then
# `podman import` turns the tarball into localhost/assistant-base:bookworm.
#
#   scripts/container/bootstrap-base.sh            # mirror from /etc/apt (or deb.debian.org)
#   MIRROR=http://my.mirror/debian scripts/container/bootstrap-base.sh
#   BASE_TAG=localhost/assistant-base:test scripts/container/bootstrap-base.sh
#
# The image is the stand-in for docker.io/library/python:3.11-slim: the Containerfile
# takes it with --build-arg BASE_IMAGE=localhost/assistant-base:bookworm. Needs root (or
# mmdebstrap's unshare mode), mmdebstrap and podman (Debian packages of the same names).
set -euo pipefail

base_tag="${BASE_TAG:-localhost/assistant-base:bookworm}"
suite="${SUITE:-bookworm}"
# The same mirror apt on this machine uses, so a sandbox's apt proxy applies here too.
mirror="${MIRROR:-$(grep -h -m1 -oE '^URIs: *http[^ ]*/debian$' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' || true)}"
mirror="${mirror:-http://deb.debian.org/debian}"
security="${SECURITY_MIRROR:-${mirror%/debian}/debian-security}"

# What both stages of the Containerfile need: Python 3.11 with venv/ensurepip (builder
# and runtime), CA certificates (pip over HTTPS), libgomp1 (llama.cpp and torch use
# OpenMP), tini (PID 1 that reaps children and forwards signals).
packages="python3,python3-venv,ca-certificates,libgomp1,tini"

if podman image exists "$base_tag" && [[ "${FORCE:-0}" != 1 ]]; then
  echo "$base_tag exists (FORCE=1 rebuilds it)"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo ">>> mmdebstrap $suite from $mirror (minbase + $packages)"
start=$SECONDS
nice -n 10 mmdebstrap --variant=minbase --include="$packages" \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
  "$suite" "$work/rootfs.tar" \
  "deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main"

echo ">>> podman import -> $base_tag"
podman import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  "$work/rootfs.tar" "$base_tag" >/dev/null
echo ">>> $base_tag built in $((SECONDS - start)) s: $(podman image inspect --format '{{.Size}}' "$base_tag" | numfmt --to=iec) "
