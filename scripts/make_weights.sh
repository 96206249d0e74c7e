#!/usr/bin/env bash
# Reproduces a shipped weights file from its config, in one command:
#   bash scripts/make_weights.sh nano_he      # -> resources/weights/nano_he.pt
# trains resources/configs/<name>.yaml into runs/<name> (resuming if a checkpoint is
# there), takes the weights of the best point of the validation curve
# (runs/<name>/validation.csv; the last step when the config validates nothing), tunes
# the appearance settings (center-ness weight, HE re-ranking) on the config's held-out
# validation sequences (never the test sequences) from re-ranking off, changing one only
# for more than MIN_GAIN (default 0.005, five times what another float path moves the
# 8-restart AUC), and copies the result with its logs into resources/weights/.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: scripts/make_weights.sh CONFIG_NAME (e.g. nano_he)}"
threads="${THREADS:-1}"
run="runs/$name"
python main.py train "resources/configs/$name.yaml" --out "$run" --threads "$threads"
chosen="$run/weights.pt"
if [ -f "$run/validation.csv" ]; then
    step=$(python -c "import csv,sys; rows=list(csv.DictReader(open(sys.argv[1]))); print(max(rows, key=lambda r: float(r['overall']))['step'])" "$run/validation.csv")
    chosen="$run/weights_step$step.pt"
    cp "$run/validation.csv" "resources/weights/$name.validation.csv"
fi
cp "$chosen" "$run/shipped.pt"
# Appearance settings only, each sequence also tracked from 7 later frames: the split's
# videos are temporally strided, so the motion priors (window, penalty k, size lr) stay
# NanoTrack v3's (model/training/tune.py says why).
OMP_NUM_THREADS="$threads" python main.py tune "$run/shipped.pt" --dataset ../shared/data/train --validation \
    --start he_rerank=0 --restarts 8 --settings centerness_weight,he_rerank --min-gain "${MIN_GAIN:-0.005}" \
    2> >(tee "resources/weights/$name.tuning.log" >&2)
cp "$run/shipped.pt" "resources/weights/$name.pt"
cp "$run/log.csv" "resources/weights/$name.train_log.csv"
echo "wrote resources/weights/$name.pt (from $chosen)"
