#!/usr/bin/env bash
# Packs what the lent GPU machine lacks into .gpu/ (ignored by git, at most 60 MiB), so that
# scripts/gpu_check.sh runs there in one command with no package index:
#
#   .gpu/llama_cpp_python-VERSION.tar.gz   the installed version's source, trimmed to what the CPU and
#                                          CUDA builds and llama-server need
#   .gpu/wheels/                           CPython 3.12 manylinux wheels of r1local's dependencies that
#                                          the machine's image does not hold (scripts/gpu_image_packages.txt)
#   .gpu/r1-tokenizer.gguf                 the R1 distill's tokenizer and chat template, no tensors:
#                                          the proxy models are made from it there
#
# Run it here, in the project's virtual environment:  scripts/gpu_bundle.sh  (GPU_BUNDLE_DIR: another folder)
set -euo pipefail
cd "$(dirname "$0")/.."
# pip, quiet but for real problems (a pip.conf may name find-links folders that are missing here)
pip_download() { "$python" -m pip download --quiet "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
LIMIT_MIB=${GPU_BUNDLE_LIMIT_MIB:-60}
bundle=${GPU_BUNDLE_DIR:-$PWD/.gpu}
python=${PYTHON:-python}
version=$("$python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$bundle"
rm -rf "$bundle/wheels" "$bundle"/llama_cpp_python-*.tar.gz

echo "llama-cpp-python $version: source"
sdist="$work/sdist/llama_cpp_python-$version.tar.gz"
pip_download --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work/sdist"
tar xzf "$sdist" -C "$work"
top="$work/llama_cpp_python-$version"
lc="$top/vendor/llama.cpp"
# what no build here needs: model files, docs, tests, examples, the web UI's sources (its CMake file
# stays: llama-server's build adds it, and makes nothing of it without LLAMA_BUILD_UI), and every ggml
# backend but the CPU, CUDA and RPC ones (ggml adds a backend's folder only when it is turned on)
rm -rf "$top"/{.git,examples,docker,docs,tests} "$lc"/{.git,models,docs,tests,benches,media,examples,.github,ci,pocs} \
  "$lc"/tools/ui/{src,tests,package-lock.json} "$lc"/tools/server/{tests,webui} "$lc"/tools/mtmd/{tests,test-3.mp4}
for backend in "$lc"/ggml/src/ggml-*/; do
  case "$(basename "$backend")" in ggml-cpu | ggml-cuda | ggml-rpc | ggml-blas) ;; *) rm -rf "$backend" ;; esac
done
tar czf "$bundle/llama_cpp_python-$version.tar.gz" -C "$work" "llama_cpp_python-$version"

echo "wheels for CPython 3.12 (manylinux x86_64), less what the image holds"
# r1local's runtime dependencies but llama-cpp-python (built there from the source above, so its
# own are named here), and what the check itself uses: gguf writes the proxy models, openai and
# pexpect drive the tests
requirements=$("$python" - "$top/pyproject.toml" <<'EOF'
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
deps = [d for d in deps if not d.startswith("llama-cpp-python") and "python_version <" not in d]
deps += tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print("\n".join(deps + ["gguf>=0.17,<1", "openai>=1.50,<4", "pexpect>=4.8,<5"]))
EOF
)
echo "$requirements" > "$work/requirements.txt"
platforms=""
for n in 2_17 2_27 2_28 2_31 2_34; do platforms="$platforms --platform manylinux_${n}_x86_64"; done
pip_download --only-binary=:all: --python-version 3.12 --implementation cp \
  $platforms --platform manylinux2014_x86_64 --platform linux_x86_64 -d "$work/wheels" -r "$work/requirements.txt"
mkdir -p "$bundle/wheels"
"$python" - "$work/wheels" "$bundle/wheels" <<'EOF'
import re, shutil, sys
from pathlib import Path
image = {w for line in Path("scripts/gpu_image_packages.txt").read_text().splitlines()
         if not line.startswith("#") for w in line.split()}
normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()
image = {normal(n) for n in image}
from_image = []
for wheel in sorted(Path(sys.argv[1]).glob("*.whl")):
    name = normal(wheel.name.split("-")[0])
    if name in image:
        from_image.append(name)
    else:
        shutil.copy(wheel, sys.argv[2])
# what the check takes from the image, for the dry run on a machine without it (gpu_dry_run.sh)
Path(sys.argv[2]).parent.joinpath("from-image.txt").write_text("\n".join(from_image) + "\n")
EOF

echo "the R1 tokenizer"
"$python" scripts/make_tiny_model.py --tokenizer-only --out "$bundle/r1-tokenizer.gguf" >/dev/null

du -b "$bundle"/*.tar.gz "$bundle"/*.gguf "$bundle"/wheels | awk '{printf "  %6.1f MiB  %s\n", $1 / 1048576, $2}'
ls "$bundle/wheels" | sed 's/-[0-9].*//' | tr '\n' ' ' | fold -s -w 100 | sed 's/^/    /'
echo
size=$(du -sb "$bundle" | cut -f1)
awk -v s="$size" -v l="$LIMIT_MIB" 'BEGIN { printf "bundle: %.1f MiB (limit %d MiB)\n", s / 1048576, l }'
if [ "$size" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "the bundle is over its limit: the device takes at most 64 MiB with the working tree" >&2
  exit 1
fi
