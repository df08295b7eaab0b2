#!/usr/bin/env bash
# The project's Python environment, in two layers (docs/setup.md, "Python environment"):
#
#   1. the dependencies: a virtual environment with the pins of requirements.txt and DeePMD-kit built against the pinned
#      CPU torch, kept in $QDTRAPS_ENV_CACHE (default ~/.cache/aiida-qdtraps/envs) under the hash of what decides its
#      content (requirements.txt, the DeePMD-kit build below, the Python version). Built once per hash; every checkout with the same
#      pins uses it, and so do its caches (numba's compiled functions of baderkit, byte-code);
#   2. the checkout's own .venv: a thin virtual environment whose site-packages adds layer 1 (a .pth file), whose bin/
#      holds layer 1's console scripts re-pointed at .venv/bin/python, and into which this package is installed
#      editable (its entry points, the `qdtraps` command).
#
# Usage: tools/python_env.sh PYTHON VENV        (run from the repository root; `make setup` calls it)
# QDTRAPS_ENV_CACHE=<dir> moves layer 1, e.g. into the checkout (QDTRAPS_ENV_CACHE=$PWD/.env-cache) to keep it private.
set -euo pipefail

python=${1:?usage: tools/python_env.sh PYTHON VENV}
venv=${2:?usage: tools/python_env.sh PYTHON VENV}
root=$(pwd)
[ -f requirements.txt ] && [ -f pyproject.toml ] || { echo "python_env.sh: run from the repository root" >&2; exit 2; }
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac

# DeePMD-kit 3.2.0 (PyTorch backend) built from its sdist against torch 2.13.0 CPU (docs/mlff.md): the PyPI wheel's op
# library is built for torch 2.11 and does not load with 2.13, and `deepmd-kit[torch]` would pull torch 2.11.
DEEPMD_VERSION=3.2.0
DEEPMD_BUILD_DEPS="scikit-build-core==1.1.2 cmake==4.4.4 ninja==1.13.2 setuptools_scm==10.3.4 dependency_groups==1.3.2
hatch-fancy-pypi-readme==25.1.0 packaging"
DEEPMD_CHECK="from importlib.metadata import version; import torch, deepmd.pt
from deepmd.pt.cxx_op import ENABLE_CUSTOMIZED_OP
assert version('deepmd-kit') == '$DEEPMD_VERSION' and torch.__version__.startswith('2.13.0') and ENABLE_CUSTOMIZED_OP"

pyversion=$("$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version; print(sys.version.split()[0])') || {
    echo "python_env.sh: $python is not Python 3.11; set PYTHON=" >&2; exit 2; }
key=$( { cat requirements.txt; echo "$DEEPMD_VERSION $DEEPMD_BUILD_DEPS $pyversion"; } | sha256sum | cut -c1-16)
cache=${QDTRAPS_ENV_CACHE:-${HOME:-$root}/.cache/aiida-qdtraps/envs}
deps="$cache/deps-$key"
mkdir -p "$cache"

# -- layer 1, under a lock (two checkouts set up at once build it once) -----------------------------------------------
exec 9>"$deps.lock"
flock 9
if [ -f "$deps/.complete" ]; then
    echo "python dependencies: $deps (present, skipped)"
else
    echo "python dependencies: building $deps (requirements.txt, then deepmd-kit $DEEPMD_VERSION)"
    rm -rf "$deps"
    "$python" -m venv "$deps"
    "$deps/bin/python" -m pip install --disable-pip-version-check -r requirements.txt
    if ! "$deps/bin/python" -c "$DEEPMD_CHECK" >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        "$deps/bin/python" -m pip install --disable-pip-version-check $DEEPMD_BUILD_DEPS torch==2.13.0 numpy==1.26.4
        DP_ENABLE_TENSORFLOW=0 DP_ENABLE_PYTORCH=1 DP_VARIANT=cpu CMAKE_ARGS=-DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON \
            CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
            "$deps/bin/python" -m pip install --disable-pip-version-check --no-build-isolation \
            --no-binary deepmd-kit deepmd-kit==$DEEPMD_VERSION torch==2.13.0 numpy==1.26.4
        "$deps/bin/python" -c "$DEEPMD_CHECK"
    fi
    touch "$deps/.complete"
fi
flock -u 9

# -- layer 2: the checkout's .venv -------------------------------------------------------------------------------------
site_of() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
if [ "$(cat "$venv/.qdtraps-deps" 2>/dev/null)" != "$deps" ]; then
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    echo "import site; site.addsitedir('$(site_of "$deps/bin/python")')" > "$(site_of "$venv/bin/python")/_qdtraps_deps.pth"
    echo "$deps" > "$venv/.qdtraps-deps"
fi
# layer 1's console scripts, re-pointed at this interpreter (pip too: `pip install` then installs into .venv, never
# into the shared layer); binaries and other files as links
for script in "$deps"/bin/*; do
    name=$(basename "$script")
    case "$name" in python*|activate*|Activate.ps1) continue ;; esac
    rm -f "$venv/bin/$name"
    if [ -f "$script" ] && head -c 2 "$script" | grep -q '^#!' && grep -qF "$deps/bin/python" "$script"; then
        sed "s|$deps/bin/python|$venv/bin/python|g" "$script" > "$venv/bin/$name"
        chmod +x "$venv/bin/$name"
    else
        ln -s "$script" "$venv/bin/$name"
    fi
done
"$venv/bin/python" -m pip install --disable-pip-version-check --no-deps -q -e .
"$venv/bin/python" -c "$DEEPMD_CHECK" || { echo "python_env.sh: $venv does not import deepmd-kit; rm -rf $deps" >&2; exit 1; }
echo "python environment: $venv (this package, editable) on $deps"
