#!/usr/bin/env bash
# Regenerates tests/fixtures/model_explorer/*.nodes.json: how Model Explorer's own TFLite
# adapter (pinned in scripts/model_explorer/requirements.txt) names each op's node, so that
# tests check `qdbg debug --model-explorer` against the viewer without installing it (the
# adapter is a 500 MB library). Run once after changing the models listed below.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${QDBG_MODEL_EXPLORER_VENV:-$HOME/.cache/qdbg/model-explorer-venv}"
req=scripts/model_explorer/requirements.txt
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.req.sha256" 2>/dev/null)" != "$want" ]]; then
  "${QDBG_PYTHON:-python3}" -m venv "$venv" >&2
  "$venv/bin/pip" install -q --no-deps -r "$req" >&2
  echo "$want" > "$venv/.req.sha256"
fi
out=tests/fixtures/model_explorer
mkdir -p "$out"
for model in demo/model.tflite tests/fixtures/corpus/hand_landmark_lite.tflite; do
  "$venv/bin/python" scripts/model_explorer/node_ids.py "$model" "$out/$(basename "$model" .tflite).nodes.json"
done
