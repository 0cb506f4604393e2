# Shared by the container scripts (sourced): which engine, and the options it needs here.
#
# CONTAINER=podman|docker picks the engine (default: podman if installed). On Podman:
# - PODMAN_RUNTIME (default runc): on this kind of VM podman needs runc (issue 16); here
#   runc is already podman's default (no crun installed), so naming it only matters where
#   crun is the default.
# - Explicit ulimits: podman copies its own rlimits into the container and the runtime
#   may not raise them ("error setting rlimit type 6/7: operation not permitted"). On this
#   VM nofile up to the shell's hard limit (20000) and nproc up to 32768 work (65536 fails),
#   so the defaults are the smaller of those and the shell's hard limits.

engine() {
  if [[ -n "${CONTAINER:-}" ]]; then echo "$CONTAINER"
  elif command -v podman >/dev/null; then echo podman
  else echo docker
  fi
}

_hard_nofile="$(ulimit -Hn)"
_hard_nproc="$(ulimit -Hu)"
[[ "$_hard_nofile" == unlimited ]] && _hard_nofile=65536
[[ "$_hard_nproc" == unlimited || "$_hard_nproc" -gt 32768 ]] && _hard_nproc=32768
NOFILE="${NOFILE:-$_hard_nofile}"
NPROC="${NPROC:-$_hard_nproc}"

podman_args=()
# Options for `run`/`build` (after the subcommand) on Podman.
run_args=()
if [[ "$(engine)" == podman ]]; then
  podman_args=(--runtime "${PODMAN_RUNTIME:-runc}")
  run_args=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=$NPROC:$NPROC")
fi
