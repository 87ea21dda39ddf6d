#!/usr/bin/env bash
# Installs what is needed, then runs a whole cluster: scripts/server.sh [sampan server options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/sampan server "$@"
