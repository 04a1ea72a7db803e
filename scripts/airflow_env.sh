#!/usr/bin/env bash
# Build (once) the Airflow venv that checks the DAG in jobs/airflow/, and print its python.
#
#   scripts/airflow_env.sh            # last line of stdout: the venv's python
#
# Where: $AIRFLOW_VENV, default ${XDG_CACHE_HOME:-~/.cache}/interest-evolution/venv-airflow: outside
# the clone, so every checkout and CI run on the machine reuses it (CI clones main afresh each time).
# It is rebuilt only when requirements-airflow.txt or the Python version changes (a stamp file named
# by their hash); a second caller waits on a lock instead of building it twice.
# Cost (2-core machine, warm download caches): 36 s with pip, 7 s with uv; ~0.1 s when already built.
# Kept apart from .venv on purpose: see requirements-airflow.txt.
#
# Environment: PYTHON (a Python 3.10-3.13 interpreter, default python3), AIRFLOW_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

PYTHON="${PYTHON:-python3}"
REQS="$REPO/requirements-airflow.txt"
VENV="${AIRFLOW_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/interest-evolution/venv-airflow}"
case "$VENV" in /*) ;; *) VENV="$REPO/$VENV" ;; esac

say() { echo "airflow_env: $*" >&2; }
[ -f "$REQS" ] || { say "missing $REQS"; exit 1; }

KEY="$( (cat "$REQS"; "$PYTHON" -c 'import sys; print(sys.version)') | sha1sum | cut -c1-12)"
STAMP="$VENV/.installed-$KEY"

build() {
  say "building $VENV with $("$PYTHON" --version 2>&1) from requirements-airflow.txt (about a minute)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  # Keep the venv out of git if AIRFLOW_VENV points inside a checkout (Python >= 3.13 does this itself).
  echo '*' > "$VENV/.gitignore"
  local start=$SECONDS
  # uv (the project's .venv has it, see bootstrap.sh) when present, pip otherwise or if uv fails.
  local uv="${UV:-$REPO/.venv/bin/uv}"
  . "$REPO/scripts/uv_settings.sh"
  if [ -x "$uv" ] && "$uv" pip install -q --python "$VENV/bin/python" -r "$REQS" >"$VENV/pip.log" 2>&1; then
    :
  elif ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS" >"$VENV/pip.log" 2>&1; then
    grep -v "^WARNING: Location '.*' is ignored" "$VENV/pip.log" >&2 || true
    say "pip install -r requirements-airflow.txt failed (log: $VENV/pip.log)"
    exit 1
  fi
  "$VENV/bin/python" -c 'import airflow.providers.apache.spark.operators.spark_submit' \
    || { say "install failed: the provider does not import"; exit 1; }
  touch "$STAMP"
  say "built in $((SECONDS - start)) s"
}

if [ ! -f "$STAMP" ]; then
  mkdir -p "$(dirname "$VENV")"
  exec 9>"$VENV.lock"
  flock 9
  [ -f "$STAMP" ] || build   # another caller may have built it while we waited
  flock -u 9
fi
echo "$VENV/bin/python"
