#!/usr/bin/env bash
# Installs what the tests need, then runs them: scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
exec .venv/bin/python -m pytest "$@"
