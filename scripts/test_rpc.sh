#!/usr/bin/env bash
# The several-PC tests on loopback: builds llama.cpp's RPC backend and rpc-server for the installed
# llama-cpp-python once (into build/rpc, or R1LOCAL_RPC_BUILD), then runs two workers and a server
# against them. Usage: scripts/test_rpc.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export R1LOCAL_RPC_BUILD=${R1LOCAL_RPC_BUILD:-$PWD/build/rpc}
"$PY" -c "from r1local.rpc import build; print('RPC build:', build.ensure_built(print))"
exec "$PY" -m pytest -q -m "not slow" tests/test_rpc.py tests/test_rpc_plan.py "$@"
