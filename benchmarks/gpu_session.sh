#!/usr/bin/env bash
# One lent-GPU session, as one command: the GPU figures and runs issue 18 asks for (see
# ../shared/gpu/README.md for the wheels it needs; git history has the scripts earlier sessions
# ran for MBPO, SAC, MuZero and MOPO). In order, each alone on the GPU so that its timings are
# its own, all within TOTAL_S:
#   1. dmc-pixels rendering frames/s at 1, 16, 64 and 1,024 envs (render_throughput.py), and
#      whether vmapped pixel runs compile to slow grouped convolutions (vmapped_convs.py);
#   2. pixel cartpole swing-up (64x64) with the CPU run's settings (the xsmall-cpu preset at
#      action repeat 8, 2 seeds, 100k env steps: 2,875 updates of 258 GFLOP per seed, about
#      7 CPU-hours per seed on the 2-core CPU) at model_lr 1e-3, the learning rate that moved
#      first on the H200 (2026-11-30): one vmapped program of 2 runs, stopping cleanly
#      (--minutes) if it runs out of time (4 runs took 0.31 s per update, 15 min for 2,875);
#   3. (THROUGHPUT=1 only; measured on the H200) pixel Dreamer with DreamerV3's small model at
#      its train ratio 512 (the small-gpu preset): updates/s and the training iteration's env
#      steps/s (dreamer_throughput.py);
#   4. MinAtar Breakout with the xsmall-cpu preset (action repeat 1, 2 seeds) for the time left:
#      the first stretch of its 500k agent steps (125k updates at train ratio 256).
# Everything lands under $OUT (8 files at most come back): session.txt (versions, progress),
# bench.log, the two benchmark JSONs, one log per run, and runs.tgz (the run folders without
# checkpoints). Plots are drawn afterwards on the CPU side from these files.
# Seen on an H200 (2026-11-30): the render step's 40 s budget went to building and compiling, so
# it measured one env only (now 80 s, 1,024 envs second); the pixel sweep ran at 0.31 s per
# update of its 4 runs, so 5 minutes reached 28k env steps. A second device call made within
# the warm machine's 30 s continued it with `--resume` (runs/ is ignored, so it stays there).
#
#   OUT=/tmp/out TOTAL_S=560 bash benchmarks/gpu_session.sh
#   QUICK=1 OUT=/tmp/out bash benchmarks/gpu_session.sh     # the same steps, tiny, on a CPU
set -u
OUT=${OUT:-/tmp/wmjax-gpu}
TOTAL_S=${TOTAL_S:-560}
QUICK=${QUICK:-0}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false WMJAX_CACHE=/tmp/wmjax-cache
T0=$(date +%s)
RUNS=runs/gpu
mkdir -p "$OUT" $RUNS
S="$OUT/session.txt"
left() { echo $((T0 + TOTAL_S - $(date +%s))); }
log() { echo "$* at $(( $(date +%s) - T0 )) s" >> "$S"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$S" 2>&1
python3 -c "import jax, flax, optax, chex, orbax.checkpoint as o, brax, mujoco, pgx
print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__,
      'chex', chex.__version__, 'brax', brax.__version__, 'mujoco', mujoco.__version__,
      'pgx', pgx.__version__)" >> "$S" 2>&1 || { log "imports failed"; exit 1; }
log "start"

if [ "$QUICK" = 1 ]; then
  RENDER=(--render-batches 1 16 --render-size 16 --max-seconds 2 --budget-s 60)
  DREAMER=(--env fast/PointMassPixels --sizes debug --starts 64 --batches 4 --repeats 2)
  PIXELS=(--env 'dmc-pixels/CartpoleSwingup?image_size=16' --preset xsmall-cpu
          --set action_repeat=8 --set size=debug --set replay_capacity=2000 --set prefill=100 --set seq_len=16
          --set eval_episodes=1 --steps 400)
  BREAKOUT=(--env minatar/Breakout --preset xsmall-cpu --set size=debug --set prefill=100 --set seq_len=16
            --set eval_episodes=1 --set eval_every=2 --steps 400)
  CONVS=(--size debug --batch 2 --seq-len 8 --image 16 --runs 1 2 --repeats 2)
  RUN_MIN=1
  RESERVE_S=60
else
  RENDER=(--render-batches 1 1024 64 16 --max-seconds 3 --budget-s 80)
  DREAMER=(--env dmc-pixels/CartpoleSwingup --sizes small --starts 1024 --batches 16
           --repeats 3 --max-seconds 10)
  PIXELS=(--env dmc-pixels/CartpoleSwingup --preset xsmall-cpu --set action_repeat=8
          --set replay_capacity=20000 --steps 12500)
  BREAKOUT=(--env minatar/Breakout --preset xsmall-cpu --set eval_every=25 --steps 500000)
  CONVS=(--runs 1 4 --repeats 3 --max-seconds 10)
  RUN_MIN=0
  RESERVE_S=$(( ${THROUGHPUT:-0} == 1 ? 200 : 90 ))
fi

# 1. Rendering, alone on the GPU.
[ "${SKIP_BENCH:-0}" = 1 ] || timeout 120 python3 benchmarks/render_throughput.py \
  --render-tasks dmc-pixels/CartpoleSwingup "${RENDER[@]}" \
  --out "$OUT/render_throughput-gpu.json" > "$OUT/bench.log" 2>&1
log "render done (rc $?)"

# 1b. Are vmapped pixel runs slow on the GPU (grouped convolutions)? 1 and 4 xsmall runs,
# vmapped against mapped in sequence, one update each (the 4-run sweep below took 0.31 s).
[ "${SKIP_BENCH:-0}" = 1 ] || timeout 150 python3 benchmarks/vmapped_convs.py "${CONVS[@]}" \
  --out "$OUT/vmapped_convs-gpu.json" >> "$OUT/bench.log" 2>&1
log "vmapped convs done (rc $?)"

# 2. The pixel cartpole sweep, alone on the GPU. It stops itself (evaluated, logged) after the
# chunk that ends past its budget; the budget keeps RESERVE_S for that chunk and step 3.
W="python3 -m wmjax.cli"
MIN=$(python3 -c "print(max($RUN_MIN, ($(left) - $RESERVE_S) / 60))")
log "pixel sweep gets $MIN minutes"
timeout "$(( $(left) - 30 ))" $W sweep dreamer "${PIXELS[@]}" --seeds 2 --minutes "$MIN" \
  --grid model_lr=1e-3 --out $RUNS/dreamer-pixel-cartpole --no-progress \
  > "$OUT/pixel-cartpole.log" 2>&1
log "pixel sweep done (rc $?)"
tar czf "$OUT/runs.tgz" --exclude=checkpoints $RUNS

# 3. DreamerV3's small pixel model at train ratio 512, alone on the GPU.
[ "${SKIP_BENCH:-0}" = 1 ] || [ "${THROUGHPUT:-0}" != 1 ] || timeout "$(( $(left) - 30 ))" python3 \
  benchmarks/dreamer_throughput.py "${DREAMER[@]}" \
  --out "$OUT/dreamer_throughput-pixels-gpu.json" >> "$OUT/bench.log" 2>&1
log "dreamer throughput done (rc $?)"

# 4. Breakout with what is left (125k updates do not fit: its first stretch of the curve).
if [ "$(left)" -gt 100 ]; then
  MIN=$(python3 -c "print(max($RUN_MIN, ($(left) - 60) / 60))")
  log "breakout gets $MIN minutes"
  timeout "$(( $(left) - 15 ))" $W train dreamer "${BREAKOUT[@]}" --seeds 2 --minutes "$MIN" \
    --out $RUNS/dreamer-minatar-breakout --no-progress > "$OUT/breakout.log" 2>&1
  log "breakout done (rc $?)"
fi
tar czf "$OUT/runs.tgz" --exclude=checkpoints $RUNS
log "archived"
ls -la "$OUT"
