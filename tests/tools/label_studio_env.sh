#!/usr/bin/env bash
# A separate virtual environment with the Label Studio *server*, for tests/test_label_studio_server.py
# (#31). label-studio pins its own Django/OpenCV/numpy stack, which clashes with the package's
# test venv, so it lives apart: the test starts `$VENV/bin/label-studio` as a subprocess.
#   tests/tools/label_studio_env.sh [VENV]      (default .venv-label-studio; LABEL_STUDIO_VERSION pins it)
# It also starts the server once on 127.0.0.1 to apply Django's migrations into $VENV/template
# (SQLite, with the test's user and token), which the test copies: a first start takes minutes
# on a 2-core machine, a start on a migrated database about 25 s.
set -euo pipefail
VENV="${1:-.venv-label-studio}"
VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
TOKEN="0123456789abcdef0123456789abcdef01234567"  # the test's (tests/test_label_studio_server.py)
if [ -x "$VENV/bin/label-studio" ] && [ -f "$VENV/.installed-$VERSION" ]; then
    exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "label-studio==$VERSION"

TEMPLATE="$VENV/template"
rm -rf "$TEMPLATE" && mkdir -p "$TEMPLATE/home"
PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOME="$TEMPLATE/home" LABEL_STUDIO_BASE_DATA_DIR="$TEMPLATE/data" DJANGO_DB=sqlite LATEST_VERSION_CHECK=false \
    COLLECT_ANALYTICS=false SENTRY_DSN= FRONTEND_SENTRY_DSN= \
    "$VENV/bin/label-studio" start --no-browser --port "$PORT" --internal-host 127.0.0.1 --data-dir "$TEMPLATE/data" \
    --username test@example.com --password test-pass-123 --user-token "$TOKEN" --enable-legacy-api-token \
    > "$TEMPLATE/migrate.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 900); do
    if "$VENV/bin/python" -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$SERVER" 2>/dev/null; then
        tail -20 "$TEMPLATE/migrate.log" >&2; echo "label_studio_env.sh: the server exited while migrating" >&2; exit 1
    fi
    sleep 2
done
kill "$SERVER"; wait "$SERVER" || true
touch "$VENV/.installed-$VERSION"
