#!/usr/bin/env bash
# A separate virtual environment with the Label Studio *server*, for tests/test_label_studio_server.py
# (#31). label-studio pins its own Django/OpenCV/numpy stack, which clashes with the package's
# test venv, so it lives apart: the test starts `$VENV/bin/label-studio` as a subprocess.
#   tests/tools/label_studio_env.sh [VENV]      (default .venv-label-studio; LABEL_STUDIO_VERSION pins it)
set -euo pipefail
VENV="${1:-.venv-label-studio}"
VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
if [ -x "$VENV/bin/label-studio" ] && [ -f "$VENV/.installed-$VERSION" ]; then
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "label-studio==$VERSION"
touch "$VENV/.installed-$VERSION"
