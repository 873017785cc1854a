#!/usr/bin/env bash
# The full benchmark (issue "The full benchmark, the DRN verdict, and a report"): every shipped
# model, bicubic and the authors' IDN/VDSR weights on Set5, Set14, B100, Urban100 and Manga109 at
# x2/x3/x4 under the standard protocol, the Y-channel models and bicubic also under legacy-y.
#
# usage: SRBENCH_DATA=DATA_ROOT tools/full_benchmark.sh [RESULTS_DIR]   (from the repository root)
#
# Resumable: every per-image result is appended to the store as it is made and `srbench run`
# skips stored keys, so running it again after any interruption continues where it stopped; a
# model x scale without shipped weights yet is named and skipped, and run by the next call.
# Cheapest models first, so that an interrupted run leaves complete rows. Long on two cores
# (VDSR is ~600 GMACs per 720p image): run it with nohup in the background. It may share the
# machine with a training at `nice -n 19` and OMP_NUM_THREADS=1 (it then takes idle cycles only;
# the thread count is recorded with every result, and no latency is taken from these runs).
# When every cell is stored it writes the verdict, the report and the README's table and plot.
# Latency afterwards, on an idle machine: srbench profile --models all --threads 2
set -euo pipefail
results=${1:-results}
srbench=${SRBENCH:-srbench}
python=${PYTHON:-python}  # for tools/: an interpreter with srbench's dependencies
datasets=set5,set14,b100,urban100,manga109
: "${SRBENCH_DATA:?set SRBENCH_DATA to a root holding all five benchmarks (srbench data list)}"
"$srbench" data list

run() {  # protocol model: every scale with weights (no --scales: unshipped scales are skipped)
  "$srbench" run --models "$2" --datasets "$datasets" --protocol "$1" --results-dir "$results"
}
# the authors' weights against their papers first (legacy-y), then cheapest first
for model in bicubic idn.official; do run legacy-y "$model"; done
for model in bicubic srcnn idn drn_s_nodistill drn_s_plain drn_s idn.official edsr_baseline \
             drn_m vdsr vdsr.official; do
  run standard "$model"
done
for model in srcnn idn vdsr vdsr.official; do run legacy-y "$model"; done
# Complete? (the plan from the registry: exit 1 naming every cell still missing)
"$python" tools/benchmark_coverage.py --results-dir "$results" --missing
"$srbench" verdict --results-dir "$results"
"$srbench" report --results-dir "$results"
"$python" tools/make_readme_assets.py --results-dir "$results" --protocol standard --dataset set5 \
  --scale 2 --update-readme README.md
"$python" tools/benchmark_cost.py --results-dir "$results"
