#!/usr/bin/env bash
# One lent-GPU session, as one command: the GPU figures the open issues ask for (see
# ../shared/gpu/README.md for the wheels it needs; git history has the script earlier sessions
# ran for MBPO, SAC and MuZero).
#   1. issue 18: dmc-pixels rendering frames/s at 1, 16, 64 and 1,024 envs
#      (render_throughput.py), then pixel Dreamer with DreamerV3's small model at its train ratio
#      512 (the small-gpu preset): updates/s and the training iteration's env steps/s
#      (dreamer_throughput.py);
#   2. side by side until TOTAL_S:
#      issue 18: pixel cartpole swing-up (64x64) with the CPU run's settings (the xsmall-cpu
#      preset at action repeat 8, 2 seeds, 100k env steps: 2,875 updates of 258 GFLOP per seed,
#      about 7 CPU-hours per seed on the 2-core CPU);
#      issue 19: the CPU table's MOPO row on halfcheetah medium
#      (3 seeds, 20k model steps, 25k SAC updates, lambda 0.1, h 5: 33 min on the 2-core CPU) and
#      the lambda x h sweep on medium-replay (2 seeds x lambda 0.1, 0.3 x h 1, 5: 8 runs), for its
#      wall-clock and runs/s.
# The datasets' arrays are not in git: carry them with the wheels, e.g.
#   carry: [".whl", "experiments/results/offline/datasets/brax-halfcheetah-medium",
#           "experiments/results/offline/datasets/brax-halfcheetah-medium-replay"]
# Everything lands under $OUT: the benchmark JSON and runs.tgz (run folders without checkpoints,
# plus every log). Plots are drawn afterwards on the CPU side from these files.
#
#   OUT=/tmp/out TOTAL_S=480 bash benchmarks/gpu_session.sh
#   QUICK=1 OUT=/tmp/out bash benchmarks/gpu_session.sh     # the same steps, tiny, on a CPU
set -u
OUT=${OUT:-/tmp/wmjax-gpu}
TOTAL_S=${TOTAL_S:-480}
QUICK=${QUICK:-0}
DATA=experiments/results/offline/datasets
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false WMJAX_CACHE=/tmp/wmjax-cache
T0=$(date +%s)
RUNS=runs/gpu
mkdir -p "$OUT" $RUNS/logs
left() { echo $((T0 + TOTAL_S - $(date +%s))); }
log() { echo "$* at $(( $(date +%s) - T0 )) s" >> $RUNS/logs/session.txt; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $RUNS/logs/session.txt 2>&1
python3 -c "import jax; print(jax.__version__, jax.devices())" >> $RUNS/logs/session.txt 2>&1

if [ "$QUICK" = 1 ]; then
  RENDER=(--render-batches 1 16 --render-size 16 --max-seconds 2 --budget-s 60)
  DREAMER=(--env fast/PointMassPixels --sizes debug --starts 64 --batches 4 --repeats 2)
  PIXELS=(--env fast/PointMassPixels --preset fast --steps 600)
  MOPO_ROW=(--updates 500 --set model_updates=200 --set model_steps_per_iteration=100
            --set updates_per_iteration=250 --set rollout_batch=500 --set eval_episodes=2)
  SWEEP=(--steps 500 --set model_updates=200 --set model_steps_per_iteration=100
         --set updates_per_iteration=250 --set rollout_batch=500 --set eval_episodes=2)
else
  RENDER=(--render-batches 1 16 64 1024 --max-seconds 5 --budget-s 100)
  DREAMER=(--env dmc-pixels/CartpoleSwingup --sizes small --starts 1024 --batches 16
           --repeats 3 --max-seconds 20)
  PIXELS=(--env dmc-pixels/CartpoleSwingup --preset xsmall-cpu --set action_repeat=8
          --set replay_capacity=20000 --steps 12500)
  MOPO_ROW=(--updates 25000)
  SWEEP=(--steps 25000)
fi

timeout 150 python3 benchmarks/render_throughput.py --render-tasks dmc-pixels/CartpoleSwingup \
  "${RENDER[@]}" --out "$OUT/render_throughput-gpu.json" > $RUNS/logs/render.log 2>&1
log "render done"
timeout 200 python3 benchmarks/dreamer_throughput.py "${DREAMER[@]}" \
  --out "$OUT/dreamer_throughput-pixels-gpu.json" > $RUNS/logs/dreamer.log 2>&1
log "dreamer done"

W="python3 -m wmjax.cli"
timeout "$(left)" $W train dreamer "${PIXELS[@]}" --seeds 2 --out $RUNS/dreamer-pixel-cartpole \
  --no-progress > $RUNS/logs/dreamer-pixel-cartpole.log 2>&1 &
timeout "$(left)" $W train mopo --dataset $DATA/brax-halfcheetah-medium --seeds 3 \
  --preset generic-cpu "${MOPO_ROW[@]}" --out $RUNS/mopo-halfcheetah-medium --no-progress \
  > $RUNS/logs/mopo-halfcheetah-medium.log 2>&1 &
timeout "$(left)" $W sweep mopo --dataset $DATA/brax-halfcheetah-medium-replay --seeds 2 \
  --preset generic-cpu --grid penalty_coef=0.1,0.3 --grid rollout_length=1,5 "${SWEEP[@]}" \
  --out $RUNS/mopo-sweep --no-progress > $RUNS/logs/mopo-sweep.log 2>&1 &
wait
log "training done"
tar czf "$OUT/runs.tgz" --exclude=checkpoints $RUNS
ls -la "$OUT"
