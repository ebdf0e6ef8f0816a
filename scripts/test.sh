#!/usr/bin/env bash
# Install everything, then run the whole test suite (unit, integration,
# containerd and end-to-end tests on a local lab). Needs root.
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/python scripts/genproto.py --check
exec .venv/bin/pytest -q --durations=25 "$@"
