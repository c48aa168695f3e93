#!/usr/bin/env bash
# The GPU check, for a Linux machine with an NVIDIA GPU and the CUDA toolkit but no package index.
#
#   1. On a machine with the index, same OS release and Python version as the GPU machine:
#        scripts/gpu_check.sh --prepare      # every wheel and the llama-cpp-python source -> wheelhouse/
#   2. Copy the checkout, wheelhouse/ included, to the GPU machine and run:
#        scripts/gpu_check.sh                # pip reads wheelhouse/ only
#
# Step 2 installs r1local into .venv-gpu, builds llama-cpp-python with CUDA for this card's
# architecture only (`r1local accelerate --backend cuda --source ...`, which also verifies the
# placement), runs the GPU tests (tests/test_gpu_offload.py), `r1local bench` on the
# DeepSeek-R1-Distill-Qwen-1.5B-shaped proxy with every layer on the GPU, and serves the proxy
# side by side with llama-server built with CUDA from the same llama.cpp sources at 1, 4, 8, 16
# and 32 clients. Logs and one table (gpu-check/table.md) land in gpu-check/.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels="$PWD/wheelhouse"
out="$PWD/gpu-check"

if [ "${1:-}" = "--prepare" ]; then
  mkdir -p "$wheels"
  python3 -m pip download --quiet -d "$wheels" '.[test,bench]' pip setuptools wheel scikit-build-core cmake ninja
  version=$(ls "$wheels"/llama_cpp_python-*.tar.gz | sed 's/.*llama_cpp_python-\(.*\)\.tar\.gz/\1/')
  echo "wheelhouse ready: $(ls "$wheels" | wc -l) files, llama-cpp-python $version source"
  exit 0
fi

export PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheels" PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$out"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$out/steps.log"; }

stamp "install r1local from wheelhouse/ (builds the CPU llama-cpp-python once)"
[ -x .venv-gpu/bin/r1local ] || python3 -m venv .venv-gpu
. .venv-gpu/bin/activate
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) pip install --quiet -e '.[test,bench]' > "$out/install.log" 2>&1

stamp "r1local accelerate: the CUDA build for this card"
sdist=$(ls "$wheels"/llama_cpp_python-*.tar.gz)
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) r1local accelerate --backend cuda --source "$sdist" 2>&1 | tee "$out/accelerate.log"

stamp "GPU tests"
python -m pytest -q -m gpu tests/test_gpu_offload.py 2>&1 | tee "$out/tests.log"

stamp "r1local bench on the 1.5B proxy, every layer on the GPU"
proxy=$(python scripts/make_proxy_model.py --threads "$(nproc)" | tail -1 | cut -d" " -f1)
r1local bench "$proxy" --gpu-layers -1 --pp 512 --tg 128 -r 3 --json > "$out/bench.json"

stamp "side by side with llama-server (CUDA, same sources) at 1/4/8/16/32 clients"
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')
python scripts/bench_compare.py --models "$proxy" --gpu-layers 99 --concurrency 1,4,8,16,32 \
  --peers r1local,llama-server --peer-cmake "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$arch" --jobs "$(nproc)" \
  --rounds 1 --repetitions 3 --serve-rounds 1 --requests 64 --quiet-wait 0 --out "$out" 2>&1 | tee "$out/compare.log"

{
  echo "# GPU check: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1), $(nproc) cores"
  echo
  echo "r1local bench, 1.5B proxy Q4_K_M, all layers on the GPU: $(python -c "import json; r = json.load(open('$out/bench.json')); print(f\"pp512 {r['pp_tokens_per_s']['median']:.0f} tok/s, tg128 {r['tg_tokens_per_s']['median']:.0f} tok/s\")")"
  echo
  cat "$out/benchmarks.md"
  echo
  echo "GPU tests: $(tail -1 "$out/tests.log")"
  echo "Total: $(( $(date +%s) - start )) s"
} > "$out/table.md"
stamp "done: $out/table.md"
cat "$out/table.md"
