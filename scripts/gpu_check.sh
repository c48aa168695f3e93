#!/usr/bin/env bash
# The GPU check, in one command of at most 9 minutes on a lent NVIDIA machine (16 cores, CUDA's
# compiler, no package index), from the bundle that scripts/gpu_bundle.sh packs here into .gpu/:
#
#   1. env      the bundled wheels into a folder on PYTHONPATH (the image holds the rest)
#   2. build    `r1local accelerate --backend cuda --sdist .gpu/llama_cpp_python-*.tar.gz`:
#               llama-cpp-python with CUDA for this card's architecture only, then the placement check
#   3. server   llama-server from the same sources, linked to that build's ggml (same kernels)
#   4. proxy    DeepSeek-R1-Distill-Qwen 1.5B- and 7B-shaped Q4_K_M models, random weights, made from
#               the bundled tokenizer
#   5. tests    the GPU tests (-m gpu: placement, greedy output equal to the CPU, serving, step-down)
#   6. bench    `r1local bench` on the 1.5B proxy with every layer on the GPU
#   7. serve    r1local serve and llama-server side by side at 1, 8 and 32 clients (tokens/s, time to
#               first token, VRAM)
#
# Each stage stops when its share of GPU_CHECK_BUDGET_S (540 s) is spent, and the next one goes on,
# so a partial run still reports. The table and the logs land in $OUT (or gpu-check/). Builds, the
# environment and the proxies are kept under GPU_CHECK_STATE (/tmp/r1local-gpu-check), so a second
# call on the same warm machine skips what is done.
#
# GPU_CHECK_BACKEND=cpu is the dry run on a machine without a GPU: the same stages from the same
# bundle, with llama-cpp-python built for the CPU (pip, as its own install does) and no GPU tests.
set -uo pipefail
cd "$(dirname "$0")/.."
backend=${GPU_CHECK_BACKEND:-cuda}
budget=${GPU_CHECK_BUDGET_S:-540}
out=${OUT:-$PWD/gpu-check}
state=${GPU_CHECK_STATE:-/tmp/r1local-gpu-check}
python=${PYTHON:-python3}
bundle=$PWD/.gpu
jobs=$(nproc)
start=$(date +%s)
mkdir -p "$out" "$state/logs"
: >"$out/steps.log"

elapsed() { echo $(($(date +%s) - start)); }
note() { echo "[$(elapsed)s] $*" | tee -a "$out/steps.log"; }
# stage NAME SHARE_S COMMAND...: run it with at most its share (of a 540 s budget), or what is left less
# 10 s kept for the table
stage() {
  local name=$1 share=$2
  shift 2
  share=$((share * budget / 540))  # the shares are set for the 540 s budget and scale with it
  local left=$((budget - $(elapsed) - 10))
  local limit=$((share < left ? share : left))
  if [ "$limit" -le 5 ]; then
    note "$name: skipped, the budget is spent"
    echo "skipped" >"$state/logs/$name.status"
    return 1
  fi
  note "$name: up to ${limit}s"
  local t0=$(date +%s) rc=0
  timeout --kill-after=5 "$limit" bash -c '"$@"' "$name" "$@" >"$state/logs/$name.log" 2>&1 || rc=$?
  local took=$(($(date +%s) - t0))
  case $rc in
    0) echo "done in ${took}s" >"$state/logs/$name.status" ;;
    124 | 137) echo "stopped at its share (${limit}s)" >"$state/logs/$name.status" ;;
    *) echo "failed (exit $rc) after ${took}s" >"$state/logs/$name.status" ;;
  esac
  note "$name: $(cat "$state/logs/$name.status")"
  tail -3 "$state/logs/$name.log" | sed 's/^/    /' | tee -a "$out/steps.log"
  return $rc
}

sdist=$(ls "$bundle"/llama_cpp_python-*.tar.gz 2>/dev/null | head -1)
if [ -z "$sdist" ] || [ ! -f "$bundle/r1-tokenizer.gguf" ]; then
  echo "no bundle in .gpu/: run scripts/gpu_bundle.sh on a machine with a package index first" >&2
  exit 2
fi
export PYTHONPATH="$state/site:$PWD/src" PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export R1LOCAL_TOKENIZER_GGUF="$bundle/r1-tokenizer.gguf" CMAKE_BUILD_PARALLEL_LEVEL=$jobs
export R1LOCAL_PEERS_CACHE="$state/peers" HF_HUB_OFFLINE=1
models="$state/models"
shapes=${GPU_CHECK_SHAPES:-1.5b 7b}  # the proxies made and benched; the 1.5B is also served
note "GPU check: backend $backend, $jobs cores, budget ${budget}s, $(basename "$sdist")"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1 >"$state/logs/device.txt"
else
  echo "no GPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $jobs cores" >"$state/logs/device.txt"
fi
note "$(cat "$state/logs/device.txt")"

install_env() {
  [ -f "$state/site/.done" ] && return 0
  "$python" -m pip install -q --no-deps --no-compile --upgrade --target "$state/site" "$bundle"/wheels/*.whl &&
    touch "$state/site/.done"
}
build_llama_cpp() {
  if [ "$backend" = cpu ]; then
    "$python" -c 'import llama_cpp' 2>/dev/null ||
      "$python" -m pip install --no-deps --no-build-isolation --target "$state/site" "$sdist"
  else
    "$python" -m r1local accelerate --backend "$backend" --sdist "$sdist"
  fi
}
build_server() {
  local bin
  bin=$("$python" scripts/build_peers.py --installed-ggml --sdist "$sdist" --jobs "$jobs" | tail -1) &&
    ln -sfn "$bin" "$state/peers/bin"
}
make_proxies() {
  mkdir -p "$models"
  for shape in $shapes; do
    "$python" scripts/make_proxy_model.py --shape "$shape" --threads "$jobs" --out "$models/proxy-$shape.gguf" || return
  done
}
bench_proxies() {
  for shape in $shapes; do
    [ -f "$models/proxy-$shape.gguf" ] || continue
    "$python" -m r1local bench "$models/proxy-$shape.gguf" $([ "$backend" = cpu ] || echo --gpu-layers -1) \
      --pp 512 --tg 128 -r 3 --json >"$state/bench-$shape.json" || return
  done
}
serve_side_by_side() {
  "$python" scripts/bench_compare.py --models "$models/proxy-1.5b.gguf" --skip-single \
    --peers r1local,llama-server --peer-bin "$state/peers/bin" --concurrency "${GPU_CHECK_CLIENTS:-1,8,32}" \
    --serve-rounds 1 --requests 16 --max-tokens 128 --quiet-wait 0 --threads "$jobs" \
    $([ "$backend" = cpu ] || echo --gpu-layers 99) --out "$state/serve"
}

# the stages run in child shells (timeout runs programs): they get the functions and settings this way
export -f install_env build_llama_cpp build_server make_proxies bench_proxies serve_side_by_side
export backend python state sdist bundle jobs models shapes

stage env 40 install_env || { note "the environment could not be set up: stopping"; exit 1; }
if stage build 330 build_llama_cpp; then
  stage server 100 build_server
  stage proxy 120 make_proxies
  if [ "$backend" = cpu ]; then
    note "tests: none without a GPU (the GPU tests need a device)"
    echo "not run: no GPU" >"$state/logs/tests.status"
  else
    stage tests 60 "$python" -m pytest -q -m gpu tests/test_gpu_offload.py -p no:cacheprovider
  fi
  stage bench 60 bench_proxies
  stage serve 200 serve_side_by_side
fi

"$python" scripts/gpu_check_table.py --state "$state" --backend "$backend" --seconds "$(elapsed)" >"$out/table.md"
tar czf "$out/logs.tar.gz" -C "$state" logs $(cd "$state" && ls -d serve 2>/dev/null)
note "done: $out/table.md"
cat "$out/table.md"
