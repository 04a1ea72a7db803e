#!/usr/bin/env bash
# `make test`: the two test runs side by side, each with its own output and temp folder.
#
#   1. default: the whole suite in .venv (already built by `make install`);
#   2. card:    .venv-card is built (or verified) by scripts/install_card_env.sh, then the card
#               selection ($CARD_SELECT: what differs under the card's pins) runs in it.
#
# Most of the suite's wall time is latency (JVM starts, Spark job scheduling, subprocesses,
# sleeps), not CPU, so two runs on two cores finish well before the sum of their times; the card
# env's install overlaps the default run too. Each run writes its own log (the default run's
# and the card run's pytest output, each ending with its 20 slowest tests) and its own pytest
# basetemp; a line of progress per run is printed every $PROGRESS_S seconds, both logs in full at
# the end, and the exit status is non-zero when either run failed (both are named).
#
# Environment: PY (.venv/bin/python), CARD_VENV (.venv-card), CARD_SELECT, ARGS (extra pytest
# arguments for both runs), TEST_PARALLEL=0 (one after the other), TEST_LOG_DIR (default: a temp
# folder, kept when a run failed), PROGRESS_S (60). A new suite that must run in its own
# environment joins as a third run here (run_suite NAME COMMAND...); tests that fit .venv join the
# default run by their kind marker. Whatever both runs would download at test time (Ivy's jar
# cache for spark.jars.packages, say) belongs in the installs, before the runs start: two JVMs
# resolving into one Ivy cache at once can corrupt it.
set -uo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-.venv/bin/python}"
CARD_VENV="${CARD_VENV:-.venv-card}"
# The venv .venv-card is layered on (install_card_env.sh): the one the default run uses.
export BASE_VENV="${BASE_VENV-$(dirname "$(dirname "$PY")")}"
CARD_SELECT="${CARD_SELECT:-card or arrow_paths or (unit and not pure_python)}"
ARGS="${ARGS:-}"
PARALLEL="${TEST_PARALLEL:-1}"
PROGRESS_S="${PROGRESS_S:-60}"
LOG_DIR="${TEST_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/interest-tests.XXXXXX")}"
mkdir -p "$LOG_DIR"

names=()
pids=()
start=$(date +%s)

# run_suite NAME CMD...: CMD's output goes to $LOG_DIR/NAME.log, its pytest temp folder is
# $LOG_DIR/NAME.tmp (passed as BASETEMP), its exit status to $LOG_DIR/NAME.rc.
run_suite() {
  local name=$1
  shift
  names+=("$name")
  (
    s=$(date +%s)
    BASETEMP="$LOG_DIR/$name.tmp" "$@" > "$LOG_DIR/$name.log" 2>&1
    rc=$?
    echo "$rc" > "$LOG_DIR/$name.rc"
    echo "== $name: exit $rc after $(( $(date +%s) - s )) s" >> "$LOG_DIR/$name.log"
  ) &
  pids+=($!)
  if [ "$PARALLEL" = 0 ]; then wait "${pids[-1]}"; fi
}

default_suite() {
  # shellcheck disable=SC2086  # ARGS is a list of pytest arguments
  "$PY" -m pytest -q -p no:cacheprovider --basetemp="$BASETEMP" $ARGS
}

card_suite() {
  ./scripts/install_card_env.sh "$CARD_VENV" || { echo "test_suites: building $CARD_VENV failed"; return 1; }
  # shellcheck disable=SC2086
  "$CARD_VENV/bin/python" -m pytest -q -p no:cacheprovider --basetemp="$BASETEMP" -m "$CARD_SELECT" $ARGS
}

echo "test_suites: logs in $LOG_DIR (parallel=$PARALLEL)"
run_suite default default_suite
run_suite card card_suite

# Progress: the last line of each log (pytest -q prints its dots and percentage there).
while [ "$PARALLEL" != 0 ]; do
  running=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
  [ "$running" = 1 ] || break
  sleep "$PROGRESS_S" & wait $!
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
