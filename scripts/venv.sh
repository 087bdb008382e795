#!/usr/bin/env bash
# Creates (or refreshes) .cache/venv from tests/py/requirements.txt: the Python confluent-kafka consumer
# the tests cross-check with, also used by `make bench`. Prints the interpreter's path.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! cmp -s tests/py/requirements.txt .cache/venv/.requirements 2>/dev/null; then
  rm -rf .cache/venv
  python3 -m venv .cache/venv
  .cache/venv/bin/pip install -q --disable-pip-version-check -r tests/py/requirements.txt >&2
  cp tests/py/requirements.txt .cache/venv/.requirements
fi
echo "$ROOT/.cache/venv/bin/python"
