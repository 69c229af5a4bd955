#!/usr/bin/env bash
# One GPU session's worth of checks, in one call: install, `mflows doctor`, the test suite and
# the GPU benchmarks, everything written under $OUT (default ./gpu-check).
#
# Prepare on a machine with a network first (the GPU machine has none), from the project root:
#   echo "/.whl/" >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl \
#       beartype ase hatchling trove-classifiers tomlkit pyyaml
# then run `bash benchmarks/gpu_check.sh` on the GPU machine with `.whl` carried along.
# Budget: about 3 min install + doctor, 3-4 min suite, 3-5 min benchmarks on an H200.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
if [[ -d .whl ]]; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation . 2>&1 | tail -3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1

echo "== doctor"
timeout 300 mflows doctor > "$OUT/doctor.txt" 2>&1
echo "doctor rc=$?" | tee -a "$OUT/doctor.txt"
tail -5 "$OUT/doctor.txt"

echo "== test suite"
# As the README's test command: each file on one worker, so module fixtures are built once.
# No -x: one failure must not hide the others (the timeout bounds the run).
timeout "${SUITE_TIMEOUT:-330}" python3 -m pytest -q -p no:cacheprovider -n "${WORKERS:-8}" \
    --dist loadfile --timeout 300 > "$OUT/pytest.txt" 2>&1
echo "pytest rc=$?" | tee -a "$OUT/pytest.txt"
tail -15 "$OUT/pytest.txt"

echo "== benchmarks"
timeout "${BENCH_TIMEOUT:-240}" python3 benchmarks/run.py \
    --only forward,train,train_step,divergence,sample --systems ka3-n44 --sizes 32x3 \
    --json "$OUT/bench-gpu.json" > "$OUT/bench.txt" 2>&1
echo "bench rc=$?" | tee -a "$OUT/bench.txt"
timeout "${SAMPLE_TIMEOUT:-240}" python3 benchmarks/run.py --only sample_batch \
    --systems ka3-n44 --sizes 32x3 --sample-chunks 1,16,64,256,1024,auto \
    --sample-count 1024 --no-naive --json "$OUT/sample-batch-gpu.json" \
    > "$OUT/sample-batch.txt" 2>&1
echo "sample_batch rc=$?" | tee -a "$OUT/sample-batch.txt"
grep -E "^(forward|train|divergence|sample)" "$OUT/bench.txt" "$OUT/sample-batch.txt"
