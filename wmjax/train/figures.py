"""The figures the driver's hooks draw besides the curve: Dreamer's reconstructions and
open-loop predictions, World Models' VAE reconstructions and a dreamed rollout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from wmjax.models import rssm
from wmjax.nets import heads
from wmjax.replay.sequences import sample_sequences

if TYPE_CHECKING:
  from wmjax.agents import dreamer as dreamer_lib
  from wmjax.agents import worldmodels as wm_lib

__all__ = ["save_dreamer_reconstructions", "save_vae_reconstructions", "save_dream"]


_RECONSTRUCTION_FNS: dict = {}   # (id of the agent, shapes) -> (agent, jitted function)


def _reconstruction_fn(dreamer, sequences: int, seq_len: int, context: int,
                       run: int | None = None):
  """One jitted program per agent and shape: replayed sequences, their posterior
  reconstructions and open-loop predictions (compiled once, not traced at every evaluation).
  Keyed by the agent's identity (it holds arrays, so it cannot be hashed)."""
  key = (id(dreamer), sequences, seq_len, context, run)
  if key not in _RECONSTRUCTION_FNS:
    if len(_RECONSTRUCTION_FNS) >= 8:
      _RECONSTRUCTION_FNS.pop(next(iter(_RECONSTRUCTION_FNS)))
    _RECONSTRUCTION_FNS[key] = (dreamer, _make_reconstruction_fn(dreamer, sequences, seq_len,
                                                                 context, run))
  return _RECONSTRUCTION_FNS[key][1]


def _make_reconstruction_fn(dreamer, sequences: int, seq_len: int, context: int,
                            run: int | None):
  wm = dreamer.world_model

  def arrays(params, buffer, key):
    if run is not None:   # one run of a run axis, taken inside the program: no copy of the replay
      params, buffer = jax.tree.map(lambda x: x[run], (params, buffer))
    key_sample, key_observe, key_imagine = jax.random.split(key, 3)
    batch = sample_sequences(buffer, key_sample, sequences, seq_len)
    obs = batch["obs"].astype(jnp.float32)
    is_image = obs.ndim == 5
    if is_image:
      obs = obs / 255.0
    is_first = batch["is_first"].at[:, 0].set(1.0)
    embed = wm.encode(params, obs)
    posts, _ = wm.observe(params, key_observe, embed, batch["action"], is_first)
    recon = wm.decode(params, rssm.features(posts))
    start = jax.tree.map(lambda x: x[:, context - 1], posts)
    states = wm.imagine_actions(params, key_imagine, start, batch["action"][:, context - 1:-1])
    openloop = wm.decode(params, rssm.features(states))[:, 1:]
    predicted = jnp.concatenate([recon[:, :context], openloop], 1)
    if not is_image:
      recon, predicted = heads.symexp(recon), heads.symexp(predicted)
    return obs, recon, predicted

  return jax.jit(arrays)


def save_dreamer_reconstructions(dreamer: dreamer_lib.Dreamer, state, key, path, *,
                                 sequences: int = 4, context: int = 5,
                                 run: int | None = None) -> dict:
  """Draws what the world model sees for replayed sequences of one seed: the observations, the
  decoder's reconstructions from the posterior, and open-loop predictions after ``context``
  observed steps (the real actions, no more observations). Returns the errors it drew.
  ``run``: ``state`` holds a run axis (leading axis: runs); draw that run (sliced inside the
  jitted program, so the replay buffer is not copied)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  count = state.buffer.count if run is None else state.buffer.count[run]
  seq_len = min(int(count), 48)
  fn = _reconstruction_fn(dreamer, sequences, seq_len, context, run)
  obs, recon, predicted = (np.asarray(x) for x in fn(state.params["model"], state.buffer, key))
  is_image = obs.ndim == 5
  errors = {"recon_mse": float(np.mean((recon - obs) ** 2)),
            "openloop_mse": float(np.mean((predicted[:, context:] - obs[:, context:]) ** 2))}
  if is_image:
    frames = min(seq_len, 12)
    times = np.linspace(0, seq_len - 1, frames).astype(int)
    rows = []
    for s in range(min(sequences, 2)):
      for arr in (obs, recon, predicted):
        rows.append(np.concatenate([np.clip(arr[s, t], 0, 1) for t in times], 1))
    grid = np.concatenate(rows, 0)
    fig, ax = plt.subplots(figsize=(frames * 0.9, len(rows) * 0.95))
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid,
              cmap="gray" if grid.shape[-1] == 1 else None, interpolation="nearest")
    height = obs.shape[2]
    ax.set_yticks([height * (i + 0.5) for i in range(len(rows))])
    ax.set_yticklabels(["observed", "reconstructed", f"open loop (after {context})"] *
                       (len(rows) // 3), fontsize=7)
    ax.set_xticks([obs.shape[3] * (i + 0.5) for i in range(frames)])
    ax.set_xticklabels([str(t) for t in times], fontsize=7)
    ax.set_xlabel("time step")
  else:
    dims = min(obs.shape[-1], 6)
    fig, axes = plt.subplots(dims, 1, figsize=(7, 1.3 * dims), sharex=True, squeeze=False)
    for d in range(dims):
      ax = axes[d, 0]
      ax.plot(obs[0, :, d], color="black", label="observed")
      ax.plot(recon[0, :, d], color="tab:blue", linestyle="--", label="reconstructed")
      ax.plot(predicted[0, :, d], color="tab:red", alpha=0.8, label=f"open loop (after {context})")
      ax.axvline(context - 1, color="gray", linewidth=0.6)
      ax.set_ylabel(f"obs[{d}]", fontsize=7)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    axes[-1, 0].set_xlabel("time step")
  fig.suptitle(f"world model: reconstruction MSE {errors['recon_mse']:.4f}, open-loop MSE "
               f"{errors['openloop_mse']:.4f}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return errors


def save_vae_reconstructions(wm: wm_lib.WorldModels, state, path, *, frames: int = 12) -> float:
  """Draws ``frames`` random-policy frames of one seed (top) above V's reconstructions from the
  posterior mean (bottom); returns their per-pixel MSE."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  obs = np.asarray(state.data.obs)
  episodes, length = obs.shape[:2]
  rng = np.random.default_rng(0)
  picks = [(rng.integers(episodes), rng.integers(length)) for _ in range(frames)]
  images = np.stack([obs[e, t] for e, t in picks]).astype(np.float32) / 255.0
  mean, _ = wm.vae.encode(state.vae_params, images)
  recon = np.clip(np.asarray(wm.vae.decode(state.vae_params, mean)), 0.0, 1.0)
  mse = float(np.mean((recon - images) ** 2))
  grid = np.concatenate([np.concatenate(list(images), 1), np.concatenate(list(recon), 1)], 0)
  fig, ax = plt.subplots(figsize=(frames * 0.8, 2.0))
  ax.imshow(grid, interpolation="nearest")
  height = images.shape[1]
  ax.set_yticks([height * 0.5, height * 1.5])
  ax.set_yticklabels(["observed", "VAE"], fontsize=8)
  ax.set_xticks([])
  ax.set_title(f"V: observations (top) and reconstructions (bottom), per-pixel MSE {mse:.5f}",
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return mse


def save_dream(wm: wm_lib.WorldModels, state, key, gif_path, png_path, *, scale: int = 8) -> dict:
  """A real episode of the CMA-ES mean controller and a dream by M from the same first frame,
  with the same controller acting on the dream: ``gif_path`` animates them side by side (real
  left, decoded dream right), ``png_path`` shows every 5th step as a strip. Returns both
  returns."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from PIL import Image, ImageDraw

  ctrl = wm.controller_mean(state.es)
  trace = jax.device_get(jax.jit(wm.dream_rollout)(ctrl, state.vae_params, state.mdn_params,
                                                   key))
  real, dream = np.asarray(trace["real"]), np.asarray(trace["dream"])
  real_ret = np.cumsum(trace["real_rewards"])
  dream_ret = np.cumsum(trace["dream_rewards"])
  frames = []
  for t in range(real.shape[0]):
    pair = np.concatenate([real[t], np.ones((real.shape[1], 1, 3)), dream[t]], 1)
    img = Image.fromarray((np.clip(pair, 0, 1) * 255).astype(np.uint8)).resize(
        (pair.shape[1] * scale, pair.shape[0] * scale), Image.NEAREST)
    canvas = Image.new("RGB", (img.width, img.height + 28), (255, 255, 255))
    canvas.paste(img, (0, 28))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), f"real t={t} R={real_ret[t]:.1f}", fill=(0, 0, 0))
    draw.text((img.width // 2 + 4, 2), f"dream R={dream_ret[t]:.1f}", fill=(0, 0, 0))
    frames.append(canvas)
  frames[0].save(gif_path, save_all=True, append_images=frames[1:], duration=120, loop=0)
  times = np.arange(0, real.shape[0], 5)
  grid = np.concatenate([np.concatenate([real[t] for t in times], 1),
                         np.concatenate([dream[t] for t in times], 1)], 0)
  fig, ax = plt.subplots(figsize=(len(times) * 0.8, 2.0))
  ax.imshow(np.clip(grid, 0, 1), interpolation="nearest")
  height, width = real.shape[1:3]
  ax.set_yticks([height * 0.5, height * 1.5])
  ax.set_yticklabels(["real", "dream"], fontsize=8)
  ax.set_xticks([width * (i + 0.5) for i in range(len(times))])
  ax.set_xticklabels([str(t) for t in times], fontsize=7)
  ax.set_xlabel("time step")
  ax.set_title(f"controller in reality (return {real_ret[-1]:.1f}) and in M's dream from the "
               f"same first frame (return {dream_ret[-1]:.1f})", fontsize=8)
  fig.tight_layout()
  fig.savefig(png_path, dpi=110)
  plt.close(fig)
  return {"real_return": float(real_ret[-1]), "dream_return": float(dream_ret[-1])}
