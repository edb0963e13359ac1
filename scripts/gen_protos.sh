#!/usr/bin/env bash
# The one proto build: protos/faceauth/**.proto -> common/faceauth/** (messages, gRPC stubs, .pyi).
# Generated files are committed and never edited by hand; tests/unit/test_protos.py fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-common}
python=${PYTHON:-.venv/bin/python}
mapfile -t protos < <(find protos -name '*.proto' | sort)
"$python" -m grpc_tools.protoc -I protos \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  "${protos[@]}"
