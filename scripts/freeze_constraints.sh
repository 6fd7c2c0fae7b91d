#!/usr/bin/env bash
# Regenerate constraints.txt from the current .venv (after installing with every extra).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# The tested set of versions (pip constraints). make setup/train/test install with: pip install -c constraints.txt -e '.[dev]'"
  echo "# torch==2.13.0 resolves to the local CPU build on the dev/CI machines; regenerate with scripts/freeze_constraints.sh."
  .venv/bin/pip freeze --exclude-editable | grep -v -E '^(embedlab|pip|setuptools)==| @ file:' | sed 's/^torch==\([0-9.]*\)+cpu$/torch==\1/'
} > constraints.txt
