#!/usr/bin/env bash
# Regenerate tests/fixtures/ (TFLite models + inputs) with pinned TensorFlow/LiteRT.
#
#   scripts/make_fixtures.sh                 # all fixtures
#   scripts/make_fixtures.sh --only conv_ops # extra args go to make_fixtures.py
#   scripts/make_fixtures.sh --sparse        # tests/fixtures/sparse/ instead, with
#                                            # scripts/fixtures/make_sparse_fixtures.py
#
# The venv comes from scripts/fixtures/venv.sh (pinned by scripts/fixtures/requirements.txt).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$root/scripts/fixtures/venv.sh" | tail -n1)"
if [[ "${1:-}" == "--sparse" ]]; then
  shift
  exec "$python" "$root/scripts/fixtures/make_sparse_fixtures.py" \
    --out "$root/tests/fixtures/sparse" "$@"
fi
exec "$python" "$root/scripts/make_fixtures.py" --out "$root/tests/fixtures" "$@"
