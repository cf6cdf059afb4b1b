#!/usr/bin/env bash
# One lent-GPU call (docs/performance.md, "A GPU session, ready to run"): installs the wheels that
# travel in .whl/ (benchmarks/gpu_wheels.sh), prints the versions and devices, then runs the stages
# asked for, in order, inside a budget of SECONDS; a stage that would start with under 30 s left
# is skipped, one that runs out of time gets SIGTERM (the long runs save a checkpoint on it and the
# archives already written stay). Everything goes to OUT_DIR: the archives of the long runs and one
# log, session.log (a device call brings back at most 8 files).
#
#   bash benchmarks/gpu_session.sh OUT_DIR SECONDS STAGE...
#     curve       benchmarks/gpu_long_runs.sh curve  (4 archives)
#     zoo:B       benchmarks/gpu_long_runs.sh zoo --betas=B  (one archive per seed)
#     zoo:B1,B2,..  one such process per beta, all at once on the same device(s): the beta-VAE at
#                 batch 64 leaves an H200 nearly idle (its rate is per-step dispatch), so three
#                 processes train about as fast as one; each gets XLA_PYTHON_CLIENT_MEM_FRACTION
#                 (default 0.25 here), its own workdir (WORKDIR/beta<B>) and its own log,
#                 appended to session.log when it ends
#     check       benchmarks/gpu_check.sh  (the table)
#
# Extra flags for a stage (a dry run on a CPU, say) come from CURVE_FLAGS, ZOO_FLAGS, CHECK_FLAGS.
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 3 ]]; then
  echo "[jaxdisent] error: usage: bash benchmarks/gpu_session.sh OUT_DIR SECONDS curve|zoo:B|check..." >&2
  exit 2
fi
out="$1"
budget="$2"
shift 2
if ! [[ "$budget" =~ ^[0-9]+$ ]]; then
  echo "[jaxdisent] error: SECONDS='$budget' is not a whole number of seconds, e.g. 420" >&2
  exit 2
fi
for stage in "$@"; do
  case "$stage" in
    curve|check|zoo:?*) ;;
    *) echo "[jaxdisent] error: unknown stage '$stage'; use curve, zoo:B (e.g. zoo:16) or check" >&2; exit 2 ;;
  esac
done
deadline=$(( $(date +%s) + budget ))
mkdir -p "$out"
log="$out/session.log"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/jaxdisent_site .whl/*.whl >>"$log" 2>&1 \
    || { echo "[jaxdisent] error: installing .whl/ failed (see $log); run benchmarks/gpu_wheels.sh here and carry .whl" >&2; exit 2; }
  export PYTHONPATH="/tmp/jaxdisent_site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
python3 -c "import jax, flax, optax, orbax.checkpoint, jaxdisent; print('[gpu_session] jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" 2>&1 | tee -a "$log"

for stage in "$@"; do
  left=$(( deadline - $(date +%s) ))
  if (( left < 30 )); then
    echo "[gpu_session] $stage: skipped, ${left} s of the budget left" | tee -a "$log"
    continue
  fi
  echo "[gpu_session] $stage: starting with ${left} s left" >>"$log"
  start=$(date +%s)
  case "$stage" in
    curve) timeout -s TERM "$left" bash benchmarks/gpu_long_runs.sh curve "$out" ${CURVE_FLAGS:-} >>"$log" 2>&1 ;;
    zoo:*,*)
      pids=()
      logs="$(mktemp -d)"
      IFS=',' read -r -a betas <<<"${stage#zoo:}"
      for beta in "${betas[@]}"; do
        # its own workdir: one sweep holds a workdir's lock
        JAXDISENT_LONG_RUNS_WORKDIR="${JAXDISENT_LONG_RUNS_WORKDIR:-/tmp/jaxdisent_long_runs}/beta$beta" \
        XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.25}" \
          timeout -s TERM "$left" bash benchmarks/gpu_long_runs.sh zoo "$out" --betas="$beta" \
            ${ZOO_FLAGS:-} >"$logs/$beta.log" 2>&1 &
        pids+=($!)
      done
      rc=0
      for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
      for beta in "${betas[@]}"; do
        { echo "[gpu_session] --- zoo beta $beta ---"; cat "$logs/$beta.log"; } >>"$log"
      done
      rm -rf "$logs"
      (exit $rc) ;;
    zoo:*) timeout -s TERM "$left" bash benchmarks/gpu_long_runs.sh zoo "$out" --betas="${stage#zoo:}" ${ZOO_FLAGS:-} >>"$log" 2>&1 ;;
    check) timeout -s TERM "$left" bash benchmarks/gpu_check.sh ${CHECK_FLAGS:-} >>"$log" 2>&1 ;;
    *) echo "[jaxdisent] error: unknown stage '$stage'; use curve, zoo:B or check" >&2; exit 2 ;;
  esac
  rc=$?
  # the progress bars' last reading (steps/s) and the stage's last lines, without the bar's redraws
  echo "[gpu_session] $stage: exit $rc after $(( $(date +%s) - start )) s" | tee -a "$log"
  tr '\r' '\n' <"$log" | grep -E "step/s|s/step" | tail -1
  tr '\r' '\n' <"$log" | grep -v -E "step/s|s/step|^\s*$" | tail -12
done
ls -l "$out"
