#!/usr/bin/env bash
# MuZero on connect four on one lent GPU: prioritized replay (priority_alpha=1) against uniform
# replay, the same GPU-sized settings, side by side for MIN minutes each (`--minutes`: each run
# stops after the chunk that passes it, evaluated against the random and greedy players and
# checkpointed), then the tactics check of both (experiments/muzero_tactics.py).
# Everything lands under $OUT as runs.tgz (run folders without checkpoints, and the logs).
#
#   OUT=/tmp/out MIN=5.5 bash experiments/gpu_connect_four.sh
# A CPU smoke test of the script itself: EXTRA="--set num_envs=8 ..." (see the tests' sizes).
set -u
OUT=${OUT:-/tmp/wmjax-gpu}
MIN=${MIN:-5.5}
EXTRA=${EXTRA:-}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
mkdir -p "$OUT" runs/gpu/logs
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > runs/gpu/logs/gpu.txt 2>&1
python3 -c "import jax; print(jax.__version__, jax.devices())" >> runs/gpu/logs/gpu.txt 2>&1
T0=$(date +%s)
W="python3 -m wmjax.cli"
SIZE="--env pgx/connect_four --steps 50000000 --set num_envs=1024 --set batch_size=1024
  --set updates_per_iteration=32 --set replay_capacity=327680 --set net=resnet --set channels=64
  --set blocks=4 --set eval_every=40 --set target_update_interval=200 --no-progress
  --minutes $MIN $EXTRA"
# shellcheck disable=SC2086
$W train muzero $SIZE --set priority_alpha=1 --out runs/gpu/c4-prioritized \
  > runs/gpu/logs/c4-prioritized.log 2>&1 &
# shellcheck disable=SC2086
$W train muzero $SIZE --out runs/gpu/c4-uniform > runs/gpu/logs/c4-uniform.log 2>&1 &
wait
echo "training done at $(( $(date +%s) - T0 )) s" >> runs/gpu/logs/gpu.txt
for r in c4-prioritized c4-uniform; do
  timeout "${TACTICS_S:-120}" python3 experiments/muzero_tactics.py runs/gpu/$r \
    --json runs/gpu/$r/tactics.json > runs/gpu/logs/tactics-$r.log 2>&1 &
done
wait
echo "tactics done at $(( $(date +%s) - T0 )) s" >> runs/gpu/logs/gpu.txt
tar czf "$OUT/runs.tgz" --exclude=checkpoints runs/gpu
ls -la "$OUT"
