#!/usr/bin/env bash
# Install everything the project needs into ./.venv (idempotent; fast when already done).
# Needs: python3 (3.10+) and a Java 17+ runtime for Spark (installed with apt-get if missing);
# chromium + chromedriver for the report's browser test (also apt-get, when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if ! command -v java >/dev/null 2>&1; then
  echo "bootstrap: no Java runtime found; installing openjdk-17-jre-headless (Spark needs Java 17+)"
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless
  else
    echo "bootstrap: install a Java 17+ runtime and rerun" >&2
    exit 1
  fi
fi

# The run report's browser test (tests/integration/test_report.py) opens the page in Debian's
# headless Chromium driven by chromedriver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "bootstrap: no chromium/chromedriver found; installing them (the report's browser test needs them)"
  if command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
      || echo "bootstrap: could not install chromium (the report's browser test will fail saying so)" >&2
  else
    echo "bootstrap: install chromium and chromedriver (the report's browser test needs them)" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when setup.py changed since the last successful install.
STAMP="$VENV/.installed-$(sha1sum setup.py | cut -c1-12)"
if [ ! -f "$STAMP" ]; then
  echo "bootstrap: installing the project and its dependencies into $VENV"
  # uv resolves the same versions as pip (setup.py's pins) but downloads in parallel and links
  # from its cache: measured here 21 s wall with a warm uv cache, 38 s with a cold one, against
  # pip's 101 s for torch's ~4 GB of CUDA libraries. Unlike pip it writes no bytecode at install:
  # modules are compiled when first imported, which the Makefile lets Python cache (see
  # PYTHONDONTWRITEBYTECODE there). pip's settings carry over (scripts/uv_settings.sh);
  # INTEREST_INSTALLER=pip, or a failed uv install, uses pip as before.
  . scripts/uv_settings.sh
  # pyspark is published only as a source archive (450 MB: Spark's jars). uv keeps the wheel it
  # builds from it under the archive's HTTP cache entry, and the package proxy here sends no
  # caching headers, so every new venv (each clean clone, each CI run) built it again: ~1.9 GB
  # more in uv's cache each time (42 GB after one day of sessions, which filled the disk under a
  # CI run). The wheel is built once per version into the project's wheel cache instead (pip
  # keeps its own built-wheel cache too) and uv takes it from there.
  PYSPARK_PIN="$(sed -n 's/.*"pyspark==\([0-9][0-9.]*\)".*/\1/p' setup.py | head -1)"
  WHEELS="${INTEREST_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/interest-evolution/wheels}/pyspark"
  if [ -n "$PYSPARK_PIN" ] && ! ls "$WHEELS"/pyspark-"$PYSPARK_PIN"-*.whl >/dev/null 2>&1; then
    echo "bootstrap: building the pyspark $PYSPARK_PIN wheel once into $WHEELS"
    mkdir -p "$WHEELS"
    BUILD_DIR="$(mktemp -d "$WHEELS/.build.XXXXXX")"  # beside the cache: the move below is atomic
    if "$VENV/bin/python" -m pip wheel -q --no-deps "pyspark==$PYSPARK_PIN" -w "$BUILD_DIR"; then
      for built in "$BUILD_DIR"/pyspark-*.whl; do mv "$built" "$WHEELS/"; done
    else
      echo "bootstrap: building the pyspark wheel failed; the installer builds it instead" >&2
    fi
    rm -rf "$BUILD_DIR"
  fi
  FIND_LINKS=()
  [ -d "$WHEELS" ] && FIND_LINKS=(--find-links "$WHEELS")
  if [ "${INTEREST_INSTALLER:-uv}" = uv ] && "$VENV/bin/python" -m pip install -q "uv>=0.5" \
      && "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" "${FIND_LINKS[@]}" -e ".[spark,dev]"; then
    :
  else
    echo "bootstrap: installing with pip"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "${FIND_LINKS[@]}" -e ".[spark,dev]"
  fi
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi
"$VENV/bin/python" -c "import pyspark, deltalake, torch, transformers; print('bootstrap: ready (pyspark', pyspark.__version__, '| deltalake', deltalake.__version__, '| torch', torch.__version__ + ')')"
