#!/usr/bin/env bash
# Reproduces a shipped weights file from its config, in one command:
#   bash scripts/make_weights.sh nano_he      # -> resources/weights/nano_he.pt
# trains resources/configs/<name>.yaml into runs/<name> (resuming if a checkpoint is
# there; the validation curve goes to runs/<name>/validation.csv), tunes the tracking
# settings on the config's held-out validation sequences (never the test sequences),
# and copies the result with its training log into resources/weights/.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: scripts/make_weights.sh CONFIG_NAME (e.g. nano_he)}"
threads="${THREADS:-1}"
python main.py train "resources/configs/$name.yaml" --out "runs/$name" --threads "$threads"
python main.py tune "runs/$name/weights.pt" --dataset ../shared/data/train --validation
cp "runs/$name/weights.pt" "resources/weights/$name.pt"
cp "runs/$name/log.csv" "resources/weights/$name.train_log.csv"
if [ -f "runs/$name/validation.csv" ]; then cp "runs/$name/validation.csv" "resources/weights/$name.validation.csv"; fi
echo "wrote resources/weights/$name.pt"
