#!/usr/bin/env bash
# Kernel flow against the EGNN flow (eRSI) at IPL N = 10, T = 0.1, at equal training time:
# cost and sample quality (ESS, k-hat, reweighted u) on the same Monte Carlo data.
#
#   bash examples/kernel_vs_egnn/compare_ipl_n10.sh [OUT]     (OUT defaults to ./kernel-vs-egnn)
#
# Steps: the quickstart (Monte Carlo data, the EGNN trained 58 epochs, 500 samples with exact
# log q), then the kernel flow trained on the same data for the same number of steps and for
# about the EGNN's training CPU time (5x the epochs: its steps are ~5x cheaper), 2000 samples
# of each kernel run (its exact log q is cheap), and one report over all three.
set -euo pipefail
OUT=${1:-kernel-vs-egnn}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT"
[[ -f "$OUT/qs/samples/samples.npz" ]] || mflows quickstart --out "$OUT/qs"
DATA="$OUT/qs/data/ipl-n10_T0.1.npz"
for EPOCHS in 58 290; do
    RUN="$OUT/kernel-${EPOCHS}ep"
    [[ -f "$RUN/checkpoint.eqx" ]] || mflows train --config "$HERE/examples/configs/kernel_ipl_n10.toml" \
        --data "$DATA" --run-dir "$RUN" --epochs "$EPOCHS" --no-progress
    [[ -f "$RUN.npz" ]] || mflows sample --run "$RUN" -R 2000 --out "$RUN.npz" --no-progress
done
mflows evaluate --samples "kernel-58ep=$OUT/kernel-58ep.npz" \
    --samples "kernel-290ep=$OUT/kernel-290ep.npz" --samples "eRSI=$OUT/qs/samples/samples.npz" \
    --reference "$DATA" --out "$OUT/report"
