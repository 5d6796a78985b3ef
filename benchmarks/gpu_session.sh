#!/usr/bin/env bash
# One lent-GPU session, as one command (see ../shared/gpu/README.md for the wheels it needs):
#   1. the benchmark suite alone on the GPU (benchmarks/run_all.py, --budget-s BENCH_S);
#   2. then, side by side until TOTAL_S: MBPO and brax's SAC on brax/halfcheetah (2 seeds,
#      50k env steps, as experiments/mbpo_vs_sac.py) and a MuZero connect-four run sized for a GPU.
# Everything lands under $OUT: the benchmark JSON/markdown, and runs.tgz (run folders without
# checkpoints, plus every log). Plots are drawn afterwards on the CPU side from these files.
#
#   OUT=/tmp/out BENCH_S=120 TOTAL_S=540 bash benchmarks/gpu_session.sh
set -u
OUT=${OUT:-/tmp/wmjax-gpu}
BENCH_S=${BENCH_S:-120}
TOTAL_S=${TOTAL_S:-540}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false WMJAX_CACHE=/tmp/wmjax-cache
T0=$(date +%s)
mkdir -p "$OUT" runs/gpu/logs
left() { echo $((T0 + TOTAL_S - $(date +%s))); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > runs/gpu/logs/gpu.txt 2>&1
python3 -c "import jax; print(jax.__version__, jax.devices())" >> runs/gpu/logs/gpu.txt 2>&1

timeout "$BENCH_S" python3 benchmarks/run_all.py --budget-s $((BENCH_S - 20)) \
  --only envs pets dreamer muzero agents --max-seconds 10 --no-plot --out-dir "$OUT" \
  --note "lent GPU session; benchmarks alone on the GPU, before the training runs" \
  > runs/gpu/logs/bench.log 2>&1
echo "benchmarks done at $(( $(date +%s) - T0 )) s" >> runs/gpu/logs/gpu.txt

W="python3 -m wmjax.cli"
timeout "$(left)" $W train mbpo --env brax/halfcheetah --steps 50000 --seeds 2 \
  --out runs/gpu/mbpo-halfcheetah --no-progress > runs/gpu/logs/mbpo-halfcheetah.log 2>&1 &
timeout "$(left)" $W train sac --env brax/halfcheetah --steps 50000 --seeds 2 \
  --out runs/gpu/sac-halfcheetah --no-progress > runs/gpu/logs/sac-halfcheetah.log 2>&1 &
timeout "$(left)" $W train muzero --env pgx/connect_four --steps 50000000 \
  --set num_envs=1024 --set batch_size=1024 --set updates_per_iteration=32 \
  --set replay_capacity=327680 --set net=resnet --set channels=64 --set blocks=4 \
  --set num_simulations=32 --set eval_every=20 --set target_update_interval=200 \
  --out runs/gpu/muzero-connect-four --no-progress > runs/gpu/logs/muzero-connect-four.log 2>&1 &
wait
echo "training done at $(( $(date +%s) - T0 )) s" >> runs/gpu/logs/gpu.txt
tar czf "$OUT/runs.tgz" --exclude=checkpoints runs/gpu
ls -la "$OUT"
