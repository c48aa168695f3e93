#!/usr/bin/env bash
# GPU offload tests without a GPU: Mesa's software Vulkan device (lavapipe) stands in for one.
#
# Makes a virtual environment of its own (.venv-vulkan), turns its llama-cpp-python into the
# Vulkan build with `r1local accelerate --backend vulkan` (built once, about 10 minutes on two
# cores, then taken from ~/.cache/r1local/builds), and runs the tests marked `gpu`.
#
# Needs (Debian/Ubuntu): apt-get install mesa-vulkan-drivers libvulkan-dev glslc spirv-headers
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-vulkan
if [ ! -x "$venv/bin/r1local" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet -e '.[test]'
fi
# llama.cpp leaves Vulkan devices of CPU type alone unless they are named
export GGML_VK_VISIBLE_DEVICES=0
"$venv/bin/r1local" accelerate --backend vulkan
"$venv/bin/python" -m pytest -q -m gpu tests/test_gpu_offload.py "$@"
