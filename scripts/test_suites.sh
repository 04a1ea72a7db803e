#!/usr/bin/env bash
# `make test`: the test runs side by side, each with its own output and temp folder.
#
#   1. default:   the suite in .venv (already built by `make install`) but for the split-off files;
#   2. processes: the split-off files in .venv ($TEST_SPLIT_PATHS: the tests that start processes
#                 of their own: the standalone cluster, the kill tests, the stream kill and Kafka
#                 tests, Airflow and the stream scoring, the two-writer and streaming Spark
#                 tests; and, to even the halves' wall time, the ingest fuzzing, generator, skew,
#                 ingest-privacy, Complete Journey and embedding Spark files), the other half of
#                 the .venv suite's time;
#   3. card:      .venv-card is built (or verified) by scripts/install_card_env.sh, then the card
#                 selection ($CARD_SELECT: what differs under the card's pins) runs in it.
#
# The .venv suite alone keeps one core busy (measured: 1,816 CPU s in 2,017 s wall), so it runs
# as two halves; with the card run, three runs share the two cores. Each run writes its own log
# (pytest's output, ending with its 20 slowest tests) and its own pytest basetemp; a line of
# progress per run is printed every $PROGRESS_S seconds, the logs in full at the end, and the
# exit status is non-zero when any run failed (each failed one named).
#
# Environment: PY (.venv/bin/python), CARD_VENV (.venv-card), CARD_SELECT, ARGS (extra pytest
# arguments for every run; with ARGS the .venv suite is not split, so paths in ARGS select as
# usual), TEST_SPLIT_PATHS (the files of the processes run; empty: no split), TEST_PARALLEL=0
# (one run after the other), TEST_LOG_DIR (default: a temp folder, kept when a run failed),
# PROGRESS_S (60). A new suite that must run in its own environment joins as another run here
# (run_suite NAME COMMAND...); tests that fit .venv join the default run by their kind marker.
# Each run resolves Maven packages (Delta's jars, the Kafka source) into an Ivy folder of its own
# (INTEREST_IVY_DIR): two JVMs resolving into one Ivy cache at once can corrupt it.
set -uo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-.venv/bin/python}"
CARD_VENV="${CARD_VENV:-.venv-card}"
# The venv .venv-card is layered on (install_card_env.sh): the one the default run uses.
export BASE_VENV="${BASE_VENV-$(dirname "$(dirname "$PY")")}"
CARD_SELECT="${CARD_SELECT:-card or card_env}"
ARGS="${ARGS:-}"
PARALLEL="${TEST_PARALLEL:-1}"
PROGRESS_S="${PROGRESS_S:-60}"
SPLIT_PATHS="${TEST_SPLIT_PATHS-tests/cluster tests/integration/test_kill_boundaries.py tests/integration/test_stream_kill.py tests/integration/test_stream_kafka.py tests/integration/test_scheduling.py tests/integration/test_stream_scoring.py tests/spark/test_concurrency.py tests/spark/test_stream.py tests/spark/test_ingest_fuzz.py tests/spark/test_generate.py tests/spark/test_skew.py tests/spark/test_ingest_privacy.py tests/spark/test_complete_journey.py tests/spark/test_embeddings.py}"
[ -z "$ARGS" ] || SPLIT_PATHS=""
IVY_BASE="${XDG_CACHE_HOME:-$HOME/.cache}/interest-evolution/ivy"
LOG_DIR="${TEST_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/interest-tests.XXXXXX")}"
mkdir -p "$LOG_DIR"

names=()
pids=()
start=$(date +%s)

# run_suite NAME CMD...: CMD's output goes to $LOG_DIR/NAME.log, its pytest temp folder is
# $LOG_DIR/NAME.tmp (passed as BASETEMP), its exit status to $LOG_DIR/NAME.rc. Its Spark JVMs keep
# their scratch (jar copies, shuffle and block files) in $LOG_DIR/NAME.spark (SPARK_LOCAL_DIRS):
# the JVMs the kill tests SIGKILL cannot remove theirs, which under /tmp outlived the run.
run_suite() {
  local name=$1
  shift
  names+=("$name")
  (
    s=$(date +%s)
    mkdir -p "$LOG_DIR/$name.spark"
    BASETEMP="$LOG_DIR/$name.tmp" INTEREST_IVY_DIR="$IVY_BASE/run-$name" SPARK_LOCAL_DIRS="$LOG_DIR/$name.spark" \
      "$@" > "$LOG_DIR/$name.log" 2>&1
    rc=$?
    echo "$rc" > "$LOG_DIR/$name.rc"
    echo "== $name: exit $rc after $(( $(date +%s) - s )) s" >> "$LOG_DIR/$name.log"
  ) &
  pids+=($!)
  if [ "$PARALLEL" = 0 ]; then wait "${pids[-1]}"; fi
}

default_suite() {
  local ignore=()
  for path in $SPLIT_PATHS; do ignore+=("--ignore=$path"); done
  # shellcheck disable=SC2086  # ARGS is a list of pytest arguments
  "$PY" -m pytest -q -p no:cacheprovider --basetemp="$BASETEMP" "${ignore[@]}" $ARGS
}

processes_suite() {
  # shellcheck disable=SC2086
  "$PY" -m pytest -q -p no:cacheprovider --basetemp="$BASETEMP" $SPLIT_PATHS
}

card_suite() {
  ./scripts/install_card_env.sh "$CARD_VENV" || { echo "test_suites: building $CARD_VENV failed"; return 1; }
  # No class archive (tests/jvm_archive.py) here unless asked for: the card run starts one Spark
  # JVM, which the archive would save ~3 CPU s, and building it for the card's pyspark costs
  # ~29 CPU s (80 s of the card run's wall time) once per machine and card pyspark build
  # (measured 2026-12-05).
  # shellcheck disable=SC2086
  INTEREST_TEST_CDS="${INTEREST_TEST_CDS:-0}" "$CARD_VENV/bin/python" -m pytest -q -p no:cacheprovider --basetemp="$BASETEMP" -m "$CARD_SELECT" $ARGS
}

# The runs fail midway with "No space left on device" from deep inside Spark when the disk fills
# (a CI run did, started with 1 GB free), so they do not start without room for their peak.
MIN_FREE_GB="${TEST_MIN_FREE_GB:-4}"
free_gb=$(df -Pk "$LOG_DIR" | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "$free_gb" -lt "$MIN_FREE_GB" ]; then
  echo "test_suites: only $free_gb GB free on the disk of $LOG_DIR; the test runs need about $MIN_FREE_GB GB" \
       "(TEST_MIN_FREE_GB). This project's caches: $(du -sh "${XDG_CACHE_HOME:-$HOME/.cache}/interest-evolution" 2>/dev/null | cut -f1)" \
       "in ${XDG_CACHE_HOME:-$HOME/.cache}/interest-evolution (safe to delete: rebuilt on the next run)" >&2
  [ -n "${TEST_LOG_DIR:-}" ] || rm -rf "$LOG_DIR"
  exit 1
fi
echo "test_suites: logs in $LOG_DIR (parallel=$PARALLEL, $free_gb GB free)"
run_suite default default_suite
[ -z "$SPLIT_PATHS" ] || run_suite processes processes_suite
run_suite card card_suite

# Progress: the last line of each log (pytest -q prints its dots and percentage there), every
# $PROGRESS_S seconds; the runs are polled every second, so the summary follows the last one at once.
next_progress=$(( $(date +%s) + PROGRESS_S ))
while [ "$PARALLEL" != 0 ]; do
  running=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
  [ "$running" = 1 ] || break
  sleep 1
  [ "$(date +%s)" -ge "$next_progress" ] || continue
  next_progress=$(( next_progress + PROGRESS_S ))
  for name in "${names[@]}"; do
    [ -f "$LOG_DIR/$name.rc" ] && continue
    echo "test_suites: $(( $(date +%s) - start )) s, $name: $(tail -c 300 "$LOG_DIR/$name.log" 2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -1 | cut -c1-120)"
  done
done
wait

failed=()
for name in "${names[@]}"; do
  echo
  echo "=================================== $name ($LOG_DIR/$name.log) ==================================="
  cat "$LOG_DIR/$name.log"
  rc=$(cat "$LOG_DIR/$name.rc" 2>/dev/null || echo 1)
  [ "$rc" = 0 ] || failed+=("$name (exit $rc)")
done
echo
echo "test_suites: ${names[*]} in $(( $(date +%s) - start )) s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "test_suites: FAILED: ${failed[*]}; logs and temp folders kept in $LOG_DIR" >&2
  exit 1
fi
[ -n "${TEST_LOG_DIR:-}" ] || rm -rf "$LOG_DIR"
