"""One 64x64 frame per DM Control task from ``dmc-pixels/`` (``wmjax.envs.render``, pure JAX),
above the same state drawn by MuJoCo's own OpenGL renderer where one runs headless (EGL).

States: each task's model from its reset pose, 150 MuJoCo steps under random controls (seeded).
Writes ``dmc_pixels.png`` next to this file and prints the mean absolute difference per task.

    MUJOCO_GL=egl python experiments/results/render/dmc_pixels.py
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pathlib  # noqa: E402

import jax  # noqa: E402
import matplotlib  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from mujoco import mjx  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from wmjax import envs  # noqa: E402

TASKS = ("CartpoleSwingup", "PendulumSwingup", "AcrobotSwingup", "FingerSpin", "CheetahRun",
         "WalkerWalk", "ReacherEasy")
SIZE = 64
HERE = pathlib.Path(__file__).resolve().parent


def settled_state(mj_model, seed: int) -> mujoco.MjData:
  rng = np.random.default_rng(seed)
  data = mujoco.MjData(mj_model)
  mujoco.mj_resetData(mj_model, data)
  low, high = mj_model.actuator_ctrlrange.T
  for _ in range(150):
    data.ctrl[:] = rng.uniform(np.where(low < high, low, -1), np.where(low < high, high, 1))
    mujoco.mj_step(mj_model, data)
  return data


def opengl_frame(mj_model, data, camera: int):
  try:
    renderer = mujoco.Renderer(mj_model, SIZE, SIZE)
  except Exception:  # noqa: BLE001 (no headless OpenGL here)
    return None
  renderer.update_scene(data, camera=camera)
  return renderer.render().astype(np.float32) / 255.0


def main() -> None:
  ours, theirs = [], []
  for i, task in enumerate(TASKS):
    env = envs.make(f"dmc-pixels/{task}", image_size=SIZE)
    mj_model = env.mj_model
    data = settled_state(mj_model, seed=i)
    ours.append(np.asarray(jax.jit(env.render)(mjx.put_data(mj_model, data))))
    theirs.append(opengl_frame(mj_model, data, env.camera))
    if theirs[-1] is not None:
      print(f"{task}: mean |JAX - OpenGL| = {np.abs(ours[-1] - theirs[-1]).mean():.4f}")
  rows = [("dmc-pixels (JAX ray caster)", ours)]
  if all(t is not None for t in theirs):
    rows.append(("mujoco.Renderer (OpenGL)", theirs))
  fig, axes = plt.subplots(len(rows), len(TASKS), figsize=(1.6 * len(TASKS), 1.75 * len(rows)),
                           squeeze=False)
  for r, (label, frames) in enumerate(rows):
    for c, frame in enumerate(frames):
      ax = axes[r, c]
      ax.imshow(frame, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(TASKS[c], fontsize=8)
      if c == 0:
        ax.set_ylabel(label, fontsize=7)
  fig.suptitle(f"DM Control from pixels, {SIZE}x{SIZE}, camera 0", fontsize=9)
  fig.tight_layout()
  out = HERE / "dmc_pixels.png"
  fig.savefig(out, dpi=150)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
