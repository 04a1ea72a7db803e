#!/usr/bin/env bash
# Build the design card's environment: Petastorm feeds Horovod (issue 6, DESIGN.md "Dependencies").
#
#   scripts/install_card_env.sh [VENV]        # default .venv-card (or $CARD_VENV)
#
# A second venv beside the default .venv, because Petastorm 0.13.1 needs pyarrow <= 14.0.2 and
# numpy < 2, which rules out the default env's pyspark 4.2. It holds pyspark 4.0.x + delta-spark
# 4.0 + pyarrow 14.0.2 + numpy < 2 + pandas 2.2 + torch 2.13 (PyPI's CUDA build, from pip's cache) +
# petastorm 0.13.1 (--no-deps) + horovod 0.28.1 built from its sdist with the project's C++17
# patch (scripts/patches/horovod-0.28.1-cxx17.patch) + the project (editable, --no-deps).
#
# The built horovod wheel is cached outside the repo, keyed by horovod, torch and Python versions
# and the patch's hash:  ${INTEREST_WHEEL_CACHE:-${XDG_CACHE_HOME:-~/.cache}/interest-evolution/wheels}
# so a rerun (or CI on the same machine) reuses it instead of compiling for ~5+ minutes.
# Idempotent: a rerun with unchanged inputs only verifies the environment.
#
# Environment: PYTHON (python3.11 by default: python3), CARD_VENV, INTEREST_WHEEL_CACHE,
# HOROVOD_BUILD_JOBS (parallel compile jobs, default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

PYTHON="${PYTHON:-python3}"
VENV="${1:-${CARD_VENV:-.venv-card}}"
HOROVOD_VERSION=0.28.1
PETASTORM_VERSION=0.13.1
TORCH_VERSION=2.13.0
REQS="$REPO/requirements-card.txt"
PATCH="$REPO/scripts/patches/horovod-$HOROVOD_VERSION-cxx17.patch"
CACHE_ROOT="${INTEREST_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/interest-evolution/wheels}"

say() { echo "install_card_env: $*"; }
die() { echo "install_card_env: ERROR: $*" >&2; exit 1; }
trap 'echo "install_card_env: FAILED at line $LINENO (exit $?): $BASH_COMMAND" >&2' ERR

[ -f "$REQS" ] || die "missing $REQS"
[ -f "$PATCH" ] || die "missing $PATCH"

# --- system prerequisites: Java for Spark; cmake + a C++17 compiler to build horovod ------------
need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
install_apt() {
  [ "${#need_apt[@]}" -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "install ${need_apt[*]} (no apt-get here) and rerun"
  say "apt-get install ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  need_apt=()
}
install_apt

# --- the venv --------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
# Keep the venv out of git even where .gitignore does not name it (Python >= 3.13 does this itself).
[ -f "$VENV/.gitignore" ] || echo '*' > "$VENV/.gitignore"
PY="$VENV/bin/python"
PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
[ "$PYTAG" = cp311 ] || say "warning: verified with Python 3.11, this venv has $PYTAG"
PIP=("$PY" -m pip --disable-pip-version-check)

# --- 0. layer on the default env's heavy packages (torch and its CUDA libraries, ~6 GB) ----------
# A .pth file in this venv's site-packages appends $BASE_VENV's site-packages to sys.path *after*
# this venv's own, so every package installed here (the card's pins: pyspark 4.0, pyarrow 14,
# numpy 1.x, pandas 2.2, petastorm, horovod) shadows the default env's, and what the card env pins
# the same (torch 2.13 with its CUDA libraries, transformers, ...) is found there instead of being
# downloaded and unpacked a second time. pip sees the layered packages as installed, so it skips
# them; it never changes them ("Not uninstalling ..., outside environment"). The path is listed,
# not scanned for .pth files, so the default env's editable install of the project stays invisible
# (the same trick as tests/cluster/standalone.python_without_project). BASE_VENV="" (or a base
# without this torch or Python) builds a self-contained venv as before.
BASE_VENV="${BASE_VENV-.venv}"
LAYER_PTH="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz-interest-base-venv.pth"
BASE_SITE=""
if [ -n "$BASE_VENV" ] && [ -x "$BASE_VENV/bin/python" ]; then
  BASE_INFO="$("$BASE_VENV/bin/python" - "$TORCH_VERSION" <<'PYEOF' 2>/dev/null || true
import importlib.metadata as m, sys, sysconfig
tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
try:
    torch = m.version("torch")
except m.PackageNotFoundError:
    torch = ""
paths = sysconfig.get_paths()
print(tag, torch, paths["purelib"], paths["platlib"])
PYEOF
)"
  read -r BASE_TAG BASE_TORCH BASE_PURE BASE_PLAT <<< "${BASE_INFO:-- - - -}"
  if [ "$BASE_TAG" = "$PYTAG" ] && [ "${BASE_TORCH%%+*}" = "$TORCH_VERSION" ]; then
    BASE_SITE="$BASE_PURE"
    [ "$BASE_PLAT" = "$BASE_PURE" ] || BASE_SITE="$BASE_SITE"$'\n'"$BASE_PLAT"
  else
    say "not layering on $BASE_VENV (it has $BASE_TAG, torch ${BASE_TORCH:-none}; this venv wants $PYTAG, torch $TORCH_VERSION)"
  fi
fi
if [ -n "$BASE_SITE" ]; then
  say "layering on $BASE_VENV's site-packages for what the card env pins the same (torch ${BASE_TORCH})"
  printf '%s\n' "$BASE_SITE" > "$LAYER_PTH"
else
  rm -f "$LAYER_PTH"
fi

# --- 1. the pinned stack (requirements = constraints: nothing moves a pin) ----------------------
# plus everything else setup.py asks for (install_requires + [dev]) except what the card env pins
# differently, read from setup.py itself so the two environments cannot drift apart.
PROJECT_REQS="$VENV/.project-requirements.txt"
"$PY" -c "import setuptools" 2>/dev/null || "${PIP[@]}" install -q "setuptools>=77"  # venvs of Python >= 3.12 lack it
"$PY" - "$PROJECT_REQS" <<'PYEOF'
import re
import sys

import setuptools

captured = {}
setuptools.setup = lambda **kw: captured.update(kw)  # setup.py calls setup(...): capture its arguments
exec(compile(open("setup.py").read(), "setup.py", "exec"), {"__name__": "__main__", "__file__": "setup.py"})
# Pinned differently (requirements-card.txt) or installed by this script itself:
card = {"pyspark", "delta-spark", "pyarrow", "numpy", "pandas", "petastorm", "horovod"}
reqs = list(captured.get("install_requires", [])) + list(captured.get("extras_require", {}).get("dev", []))
keep = [r for r in reqs if re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].strip().lower() not in card]
open(sys.argv[1], "w").write("\n".join(keep) + "\n")
PYEOF
# The stamp names the layered base too (its path and its own install stamp): a rebuilt base
# re-runs pip here, which then installs whatever the base no longer provides.
BASE_ID="${BASE_SITE:+$BASE_SITE $(ls "$BASE_VENV"/.installed-* 2>/dev/null)}"
STAMP="$VENV/.card-reqs-$( (cat "$REQS" "$PROJECT_REQS"; echo "$BASE_ID") | sha1sum | cut -c1-12)"
if [ ! -f "$STAMP" ]; then
  say "installing the pinned stack (requirements-card.txt) and setup.py's other requirements into $VENV"
  say "(pip may report that interest-evolution wants pyspark 4.2 / pyarrow >= 18: expected, those are"
  say " the default env's pins; the project is installed here with --no-deps)"
  "${PIP[@]}" install -q --upgrade pip
  "${PIP[@]}" install -r "$REQS" -r "$PROJECT_REQS" -c "$REQS"
  rm -f "$VENV"/.card-reqs-*
  touch "$STAMP"
else
  say "pinned stack already installed ($(basename "$STAMP"))"
fi
TORCH_BUILT="$("$PY" -c 'import torch; print(torch.__version__)')"   # e.g. 2.13.0+cu130
case "$TORCH_BUILT" in "$TORCH_VERSION"*) ;; *) die "torch $TORCH_BUILT in $VENV, expected $TORCH_VERSION";; esac

# --- 2. petastorm without its stale setuptools<70 pin (runtime deps came with step 1) -----------
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('petastorm') != '$PETASTORM_VERSION')" 2>/dev/null; then
  say "installing petastorm==$PETASTORM_VERSION --no-deps"
  "${PIP[@]}" install -q --no-deps "petastorm==$PETASTORM_VERSION"
fi

# --- 3. horovod: the cached wheel, or build it from the sdist with the project's patch -----------
PATCH_ID="$(sha1sum "$PATCH" | cut -c1-8)"
KEY="horovod-$HOROVOD_VERSION+torch-$TORCH_BUILT+$PYTAG+patch-$PATCH_ID"
WHEEL_DIR="$CACHE_ROOT/$KEY"
WHEEL="$(ls "$WHEEL_DIR"/horovod-"$HOROVOD_VERSION"-*.whl 2>/dev/null | head -1 || true)"
if [ -z "$WHEEL" ]; then
  command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
  command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
  command -v make >/dev/null 2>&1 || need_apt+=(make)
  command -v patch >/dev/null 2>&1 || command -v git >/dev/null 2>&1 || need_apt+=(patch)
  install_apt
  BUILD="$(mktemp -d "${TMPDIR:-/tmp}/horovod-build.XXXXXX")"
  say "no cached wheel at $WHEEL_DIR: building horovod $HOROVOD_VERSION from its sdist in $BUILD (several minutes)"
  "${PIP[@]}" download -q --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$BUILD"
  tar xzf "$BUILD/horovod-$HOROVOD_VERSION.tar.gz" -C "$BUILD"
  SRC="$BUILD/horovod-$HOROVOD_VERSION"
  say "applying $(basename "$PATCH") (C++17 + C++17 gloo for torch >= 2.1)"
  if command -v patch >/dev/null 2>&1; then
    patch -d "$SRC" -p1 --forward < "$PATCH"
  else
    git -C "$SRC" apply -p1 "$PATCH"
  fi
  grep -q 'Pytorch_CXX17' "$SRC/horovod/torch/CMakeLists.txt" || die "patch did not apply"
  say "compiling (HOROVOD_WITH_PYTORCH=1, gloo, no MPI/TF/MXNet; -j${HOROVOD_BUILD_JOBS:-$(nproc)})"
  (
    export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
           HOROVOD_WITHOUT_MPI=1 HOROVOD_WITH_GLOO=1 HOROVOD_CPU_OPERATIONS=gloo \
           MAKEFLAGS="-j${HOROVOD_BUILD_JOBS:-$(nproc)}"
    "${PIP[@]}" wheel --no-deps --no-build-isolation -w "$BUILD/dist" "$SRC" > "$BUILD/build.log" 2>&1
  ) || { tail -60 "$BUILD/build.log" >&2; die "horovod build failed; full log: $BUILD/build.log"; }
  BUILT="$(ls "$BUILD"/dist/horovod-"$HOROVOD_VERSION"-*.whl)"
  mkdir -p "$WHEEL_DIR"
  cp "$BUILT" "$WHEEL_DIR/.tmp-$(basename "$BUILT")"
  mv "$WHEEL_DIR/.tmp-$(basename "$BUILT")" "$WHEEL_DIR/$(basename "$BUILT")"  # atomic publish
  WHEEL="$WHEEL_DIR/$(basename "$BUILT")"
  rm -rf "$BUILD"
  say "cached $WHEEL"
else
  say "using cached $WHEEL"
fi
INSTALLED_KEY="$VENV/.horovod-$(echo "$KEY" | sha1sum | cut -c1-12)"
if [ ! -f "$INSTALLED_KEY" ] || ! "$PY" -c "import horovod.torch" 2>/dev/null; then
  say "installing $(basename "$WHEEL") --no-deps"
  "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL"
  rm -f "$VENV"/.horovod-*
  touch "$INSTALLED_KEY"
fi

# --- 4. the project, editable, without its default-env pins --------------------------------------
say "installing the project (editable, --no-deps) into $VENV"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

# --- 5. verify: versions, and that each piece imports ----------------------------------------------
say "verifying"
HF_HUB_OFFLINE=1 "$PY" - <<'EOF'
import importlib.metadata as m
import os
import sys

want = {"pyspark": "4.0.", "delta-spark": "4.0.", "deltalake": "1.6.6", "pyarrow": "14.0.2",
        "numpy": "1.", "pandas": "2.2.", "torch": "2.13.0", "petastorm": "0.13.1",
        "horovod": "0.28.1", "interest-evolution": ""}
bad = []
for name, prefix in want.items():
    got = m.version(name)
    print(f"  {name:20s} {got}")
    if not got.startswith(prefix):
        bad.append(f"{name} {got} (want {prefix}*)")
import deltalake, pyspark, torch, transformers  # noqa: E401,F401
import petastorm, petastorm.reader  # noqa: F401  (pyarrow.filesystem / legacy ParquetDataset)
import horovod.torch as hvd
import horovod.spark  # noqa: F401
import interest_lib.training.loop  # noqa: F401
if not hvd.gloo_built():
    bad.append("horovod was built without gloo")
# What is imported is what was checked above: the card's pins load from this venv's own
# site-packages, never from a layered base venv (whose pyspark 4.2 / pyarrow >= 18 / numpy 2 a
# wrong sys.path order would pick up silently).
import sysconfig
import numpy, pandas, pyarrow, delta  # noqa: E401
own = sysconfig.get_paths()["purelib"]
for mod, prefix in ((pyspark, "4.0."), (pyarrow, "14.0.2"), (numpy, "1."), (pandas, "2.2."), (delta, None),
                    (petastorm, "0.13.1"), (horovod := sys.modules["horovod"], "0.28.1")):
    where = mod.__file__
    version = getattr(mod, "__version__", None)
    if not where.startswith(own):
        bad.append(f"{mod.__name__} imported from {where}, not from {own}")
    if prefix and not str(version).startswith(prefix):
        bad.append(f"{mod.__name__} {version} imported (want {prefix}*)")
print(f"  torch imported from {os.path.dirname(torch.__file__)}")
if bad:
    sys.exit("install_card_env: ERROR: " + "; ".join(bad))
print(f"  horovod gloo={hvd.gloo_built()} mpi={hvd.mpi_built()} nccl={hvd.nccl_built()}")
EOF
say "ready: $VENV (run the card suite with: $VENV/bin/python -m pytest -q -m card tests/card)"
