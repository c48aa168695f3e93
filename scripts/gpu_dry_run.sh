#!/usr/bin/env bash
# The GPU check's dry run on this machine, without a GPU: an environment holding what the lent
# machine's image holds (from the package index), then scripts/gpu_check.sh from the bundle with
# llama-cpp-python built for the CPU. It proves the bundle complete and the command sound, all but
# the GPU itself. Slow on 2 cores (the CPU build of llama.cpp and llama-server): about 30 minutes.
#
#   scripts/gpu_bundle.sh && scripts/gpu_dry_run.sh      # the table lands in gpu-check/table.md
set -euo pipefail
cd "$(dirname "$0")/.."
image=${GPU_DRY_RUN_IMAGE:-/tmp/r1local-gpu-image}
[ -f .gpu/from-image.txt ] || { echo "no bundle: run scripts/gpu_bundle.sh first" >&2; exit 2; }
if [ ! -x "$image/bin/python" ]; then
  # the image's Python is 3.12, as the bundled wheels are
  "${GPU_DRY_RUN_PYTHON:-$(PYENV_VERSION=3.12.1 pyenv which python3.12 2>/dev/null || echo python3.12)}" -m venv "$image"
  # the image's Python packages that the check uses, the build tools it has (CMake, ninja,
  # scikit-build-core) and matplotlib, which draws the serving plot
  "$image/bin/python" -m pip install --quiet -r .gpu/from-image.txt scikit-build-core cmake ninja setuptools wheel \
    pytest nvidia-ml-py matplotlib
fi
export PYTHON="$image/bin/python" GPU_CHECK_BACKEND=cpu
export GPU_CHECK_BUDGET_S=${GPU_CHECK_BUDGET_S:-5400} GPU_CHECK_SHAPES=${GPU_CHECK_SHAPES:-1.5b}
export GPU_CHECK_CLIENTS=${GPU_CHECK_CLIENTS:-1,8} GPU_CHECK_STATE=${GPU_CHECK_STATE:-/tmp/r1local-gpu-dry-run}
exec scripts/gpu_check.sh
