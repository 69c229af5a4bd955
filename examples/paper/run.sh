#!/usr/bin/env bash
# The comparison of the eRSI paper (eRSI vs eFM vs RSI), end to end, with the `mflows` CLI:
#
#   1. Monte Carlo training data and an independent Monte Carlo reference (another seed);
#   2. the three methods trained on the same data, batch, seed and number of steps;
#   3. R samples of each with exact log q, energies and log weights;
#   4. one evaluation of the three against the reference (report.json, summary.md, plots);
#   5. the paper's table (table.md) from report.json, the sample files and the runs.
#
# Usage (from the repository root):
#
#   examples/paper/run.sh examples/paper/configs/ipl-n10.env [OUT]
#
# OUT defaults to paper-<system>. Settings come from the .env file; any of them can be
# overridden from the environment (EPOCHS=2 R_ERSI=8 R_BASE=8 ... for a smoke test).
# Every step is resumable: rerun the same command after an interruption and finished work is
# kept (finished datasets, runs and sample files are skipped; interrupted ones are resumed).
# Heavy steps run under `nice -n ${NICE:-5}`.
#
# METHODS="ersi" / METHODS="efm rsi" restricts training and sampling to some methods, so that
# two processes (or machines sharing OUT) can work on different methods at the same time once
# the data exist; steps 4-5 run when the sample files of all three methods are there. Never
# run two processes on the same method.
#
# METHODS may also name `coupling`: the augmented coupling flow (one-pass exact likelihood,
# examples/configs/coupling_${CONFIG_TAG}.toml), trained by its own objective, epochs and batch
# (COUPLING_EPOCHS, COUPLING_BATCH override the config's) on the same data, sampled with
# R_COUPLING, and evaluated with the others (or, METHODS=coupling, alone: the evaluation then
# holds its row only).
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1" ]]; then
    echo "usage: $0 SETTINGS.env [OUT]   (settings: examples/paper/configs/*.env)" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=/dev/null
source "$1"
OUT="${2:-${OUT:-paper-$SYSTEM}}"
NICE="${NICE:-5}"
RUN=(nice -n "$NICE")
read -r -a METHODS <<<"${METHODS:-ersi efm rsi}"
for m in "${METHODS[@]}"; do
    if [[ ! $m =~ ^(ersi|efm|rsi|coupling)$ ]]; then
        echo "$0: METHODS may name ersi, efm, rsi and coupling; got '$m'." >&2
        exit 2
    fi
done
declare -A LABEL=([ersi]=eRSI [efm]=eFM [rsi]=RSI [coupling]=coupling)

mkdir -p "$OUT"/{data,runs,samples}
log() { echo "[$(date -u +%H:%M:%S)] $*  (load: $(cut -d' ' -f1-3 /proc/loadavg))"; }

# ---------------------------------------------------------------- 1. Monte Carlo data
generate() {  # generate OUTFILE SEED CHAINS SAMPLES_PER_CHAIN
    local out="$1" seed="$2" chains="$3" per_chain="$4" extra=()
    if [[ -f "$out" ]]; then
        log "have $out"
        return
    fi
    [[ -d "$out.checkpoint" ]] && extra+=(--resume)  # an interrupted run: continue it
    log "generate $out"
    "${RUN[@]}" mflows generate --system "$SYSTEM" --temperature "$TEMPERATURE" \
        --chains "$chains" --samples-per-chain "$per_chain" \
        --sweeps-between "$SWEEPS_BETWEEN" --equilibration "$EQUILIBRATION" \
        --anneal-from "$ANNEAL_FROM" --seed "$seed" --no-progress --out "$out" "${extra[@]}"
}
DATA="$OUT/data/train.npz"
REF="$OUT/data/reference.npz"
generate "$DATA" "$DATA_SEED" "$CHAINS" "$SAMPLES_PER_CHAIN"
generate "$REF" "$REF_SEED" "$REF_CHAINS" "$REF_SAMPLES_PER_CHAIN"

# ---------------------------------------------------------------- 2. training
for m in "${METHODS[@]}"; do
    run_dir="$OUT/runs/$m"
    config="$ROOT/examples/configs/${m}_${CONFIG_TAG}.toml"
    epochs="$EPOCHS" batch=(--set "train.batch_size=$BATCH")
    if [[ $m == coupling ]]; then  # its own schedule unless overridden
        epochs="${COUPLING_EPOCHS:-$(python -c "import tomllib; print(tomllib.load(open('$config', 'rb'))['train']['epochs'])")}"
        batch=()
        [[ -n ${COUPLING_BATCH:-} ]] && batch=(--set "train.batch_size=$COUPLING_BATCH")
    fi
    if [[ -f "$run_dir/checkpoint.json" ]] &&
        python -c "import json,sys; sys.exit(json.load(open('$run_dir/checkpoint.json'))['epoch'] < $epochs)"; then
        log "have $run_dir ($epochs epochs)"
        continue
    fi
    extra=()
    [[ -f "$run_dir/checkpoint.json" ]] && extra+=(--resume)
    log "train ${LABEL[$m]}: $config, $epochs epochs"
    "${RUN[@]}" mflows train --config "$config" --data "$DATA" --run-dir "$run_dir" \
        --epochs "$epochs" --seed "$TRAIN_SEED" "${batch[@]}" --no-progress "${extra[@]}"
done

# ---------------------------------------------------------------- 3. samples
# eRSI last: it is the slowest per sample. An interrupted sampling run can be resumed with
# another R (finished chunks are kept), e.g. a smaller R_ERSI when time runs out.
for m in coupling efm rsi ersi; do
    [[ " ${METHODS[*]} " == *" $m "* ]] || continue
    out="$OUT/samples/$m.npz"
    case $m in
    ersi) r="$R_ERSI" ;;
    coupling) r="${R_COUPLING:-20000}" ;;
    *) r="$R_BASE" ;;
    esac
    if [[ -f "$out" ]]; then
        log "have $out"
        continue
    fi
    extra=()
    [[ -d "$out.parts" ]] && extra+=(--resume)
    log "sample ${LABEL[$m]}: R = $r"
    "${RUN[@]}" mflows sample --run "$OUT/runs/$m" --num-samples "$r" --seed "$SAMPLE_SEED" \
        --chunk-size "$CHUNK" --out "$out" --no-extxyz --no-progress "${extra[@]}"
done

# ---------------------------------------------------------------- 4. evaluation
compared=(ersi efm rsi)
[[ ${METHODS[*]} == coupling ]] && compared=()  # the coupling flow alone
for m in "${compared[@]}"; do
    if [[ ! -f "$OUT/samples/$m.npz" ]]; then
        log "no $OUT/samples/$m.npz yet: evaluation left for a run that has all three methods"
        exit 0
    fi
done
[[ -f "$OUT/samples/coupling.npz" ]] && compared+=(coupling)
if [[ ${#compared[@]} -eq 0 ]]; then
    log "no samples to evaluate yet"
    exit 0
fi
args=()
for m in "${compared[@]}"; do
    args+=(--samples "${LABEL[$m]}=$OUT/samples/$m.npz")
done
[[ " ${compared[*]} " == *" ersi "* ]] && args+=(--audit "eRSI=$OUT/runs/ersi")
[[ " ${compared[*]} " == *" coupling "* ]] && args+=(--audit "coupling=$OUT/runs/coupling")
log "evaluate"
status=0
"${RUN[@]}" mflows evaluate --reference "$REF" --out "$OUT/report" --force "${args[@]}" ||
    status=$?

# ---------------------------------------------------------------- 5. the paper's table
python "$HERE/make_table.py" "$OUT" --out "$OUT/table.md"
log "done: $OUT/table.md, $OUT/report/"
exit "$status"
