#!/usr/bin/env bash
# Create/refresh .venv with every service and the dev tools, then prove the models load.
# Idempotent: when nothing it depends on changed since the last successful run, it only re-checks
# that the venv's Python works (about a second).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
venv=.venv
stamp="$venv/.faceauth-setup"
inputs=(scripts/setup.sh scripts/check_models.py requirements-dev.txt recognition-service/requirements-nodeps.txt
        common/pyproject.toml recognition-service/pyproject.toml liveness-service/pyproject.toml auth-web/pyproject.toml)
want=$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)

# auth-web's translation catalogues (.po → .mo, not committed): compiled on every run, also when nothing else
# changed (a fresh clone, an edited .po). A fraction of a second.
compile_translations() {
  "$venv/bin/pybabel" -q compile -d auth-web/auth_web/translations
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  compile_translations
  exit 0
fi

if ! command -v "$python" >/dev/null; then
  echo "setup: $python not found; install Python 3.11 or set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
echo "setup: creating/updating $venv (first run downloads TensorFlow and dlib; a few minutes)"
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade 'pip>=24' 'setuptools<81' wheel
"${pip[@]}" install -r requirements-dev.txt
# face_recognition declares a dependency on `dlib` (source-only, ~7 min to build); dlib-bin provides
# the same module, so face_recognition goes in without its declared dependencies.
"${pip[@]}" install --no-deps -r recognition-service/requirements-nodeps.txt
"${pip[@]}" install --no-deps -e common -e recognition-service -e liveness-service -e auth-web
"$venv/bin/python" scripts/check_models.py
compile_translations
echo "$want" > "$stamp"
echo "setup: ok ($venv)"
