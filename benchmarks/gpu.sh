#!/usr/bin/env bash
# The GPU path on a fresh GPU machine, unattended: install curate with its gpu extra, swap
# faiss-cpu for faiss-gpu (both install the `faiss` module), then measure embed images/s
# against the model-only forward and k-means on the GPU (benchmarks/gpu.py). Results go to
# RESULTS (markdown) and RESULTS with .json; the log to RESULTS with .log.
#
# Usage, from anywhere:  bash benchmarks/gpu.sh [RESULTS]      (default: gpu-results.md)
# Environment: PYTHON (default python3); CURATE_GPU_INSTALL=0 skips the installs (what is
# installed is used as it is); CURATE_GPU_ARGS adds arguments to benchmarks/gpu.py (the
# tests pass --device cpu and small sizes); CURATE_GPU_TIMEOUT bounds the measurement
# (seconds, default 360: with the installs the whole script stays under about 8 minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=$(realpath -m "${1:-gpu-results.md}")
LOG="${RESULTS%.*}.log"
PYTHON=${PYTHON:-python3}
: >"$LOG"
say() { echo "gpu.sh: $*" | tee -a "$LOG"; }

if [ "${CURATE_GPU_INSTALL:-1}" = 1 ]; then
  say "installing curate[gpu] (a few minutes on a fresh machine)"
  if "$PYTHON" -m pip install -q -e ".[gpu]" >>"$LOG" 2>&1; then
    # faiss-cpu and faiss-gpu write the same files: keep faiss-gpu's
    "$PYTHON" -m pip uninstall -q -y faiss-cpu >>"$LOG" 2>&1
    "$PYTHON" -m pip install -q --force-reinstall --no-deps "faiss-gpu>=1.15" >>"$LOG" 2>&1 ||
      say "note: faiss-gpu did not reinstall; see $LOG"
  else
    say "note: the install failed (no network?); measuring with what is installed; see $LOG"
  fi
fi

if ! "$PYTHON" -c "import torch, open_clip, faiss, pyarrow" >>"$LOG" 2>&1; then
  say "error: torch, open_clip, faiss and pyarrow must import; see $LOG"
  exit 1
fi
"$PYTHON" -c "import faiss, sys; sys.exit(faiss.get_num_gpus() == 0)" 2>>"$LOG" ||
  say "note: this FAISS has no GPU support: k-means is measured on the CPU"

say "measuring (results in $RESULTS)"
# shellcheck disable=SC2086  # CURATE_GPU_ARGS is a list of words
PYTHONUNBUFFERED=1 timeout "${CURATE_GPU_TIMEOUT:-360}" \
  "$PYTHON" -m benchmarks.gpu --out "$RESULTS" ${CURATE_GPU_ARGS:-} 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  say "error: the measurement exited with status $status (124: over the time limit); see $LOG"
  exit "$status"
fi
say "done: $RESULTS"
