#!/usr/bin/env bash
# `make test` N times in a row on a clean clone, with K CPU spinners competing (issue 11: "make test
# passes 5 times in a row with two CPU spinners"); stops at the first failure.
#
#   tools/make_test_under_load.sh [COMMIT] [RUNS] [SPINNERS]      (defaults: main 5 2)
#
# Each run is `env -u RUST_BACKTRACE make test` (users do not set it, and it hides a native abort at
# exit) in a clone of COMMIT under $WORK (default /tmp/make-test-under-load) with its own venv; logs go
# to $WORK/logs (summary.txt: each run's start, load, duration and pytest's summary lines).  It may be
# started as a background job (`nohup ... &`): the suite installs its own SIGINT handler (conftest.py).
# The spinners are `timeout`-bounded busy loops, killed at the end.
set -u
COMMIT=${1:-main} RUNS=${2:-5} SPINNERS=${3:-2}
TOP=$(git rev-parse --show-toplevel) || exit 2
WORK=${WORK:-/tmp/make-test-under-load}
LOGS=$WORK/logs
rm -rf "$WORK/repo" && mkdir -p "$LOGS" && git clone -q "$TOP" "$WORK/repo" && cd "$WORK/repo" && git checkout -q "$COMMIT" || exit 2
echo "commit $(git rev-parse --short HEAD), $RUNS runs, $SPINNERS spinners" > "$LOGS/summary.txt"
make env > "$LOGS/env.log" 2>&1 || { echo "make env failed (see env.log)" >> "$LOGS/summary.txt"; exit 1; }
spinners=()
for _ in $(seq "$SPINNERS"); do timeout 36000 bash -c 'while :; do :; done' & spinners+=($!); done
trap 'kill "${spinners[@]}" 2>/dev/null' EXIT
status=0
for run in $(seq "$RUNS"); do
  start=$(date +%s)
  echo "run $run start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$LOGS/summary.txt"
  env -u RUST_BACKTRACE make test > "$LOGS/run$run.log" 2>&1
  rc=$?
  echo "run $run rc=$rc $(( $(date +%s) - start )) s: $(grep -E ' in [0-9.]+s' "$LOGS/run$run.log" | tr '\n' ' ')" >> "$LOGS/summary.txt"
  [ $rc -eq 0 ] || { status=1; break; }
done
echo "done $(date -u +%H:%M:%S)" >> "$LOGS/summary.txt"
cat "$LOGS/summary.txt"
exit $status
