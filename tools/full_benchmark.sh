#!/usr/bin/env bash
# The full benchmark (issue "The full benchmark, the DRN verdict, and a report"): every shipped
# model, bicubic and the authors' IDN/VDSR weights on Set5, Set14, B100, Urban100 and Manga109 at
# x2/x3/x4 under the standard protocol, the Y-channel models and bicubic also under legacy-y,
# then every model's efficiency numbers (CPU latency at 720p, fp32, 2 threads).
#
# usage: SRBENCH_DATA=DATA_ROOT tools/full_benchmark.sh [RESULTS_DIR]
#
# Resumable: every per-image result is appended to the store as it is made and `srbench run`
# skips stored keys, so running it again after any interruption continues where it stopped.
# Cheapest models first, so that an interrupted run leaves complete rows. Long on two cores
# (VDSR is ~600 GMACs per 720p image): run it with nohup in the background.
set -euo pipefail
results=${1:-results}
srbench=${SRBENCH:-srbench}
datasets=set5,set14,b100,urban100,manga109
: "${SRBENCH_DATA:?set SRBENCH_DATA to a root holding all five benchmarks (srbench data list)}"
"$srbench" data list

# cheapest first; every name is one model x weights in the store
standard=(bicubic srcnn idn drn_s_nodistill drn_s_plain drn_s idn.official edsr_baseline drn_m
          vdsr vdsr.official)
legacy=(bicubic srcnn idn idn.official vdsr vdsr.official)

for model in "${standard[@]}"; do
  "$srbench" run --models "$model" --datasets "$datasets" --scales 2,3,4 \
    --protocol standard --results-dir "$results"
done
for model in "${legacy[@]}"; do
  "$srbench" run --models "$model" --datasets "$datasets" --scales 2,3,4 \
    --protocol legacy-y --results-dir "$results"
done
# Efficiency: latency of every model (params/MACs were counted by the runs above).
"$srbench" profile --models all --scales 2,3,4 --sizes 720p,256 --threads 2 \
  --output "$results/profile.jsonl"
"$srbench" verdict --results-dir "$results"
