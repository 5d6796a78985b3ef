"""Coloured (1/f^beta) Gaussian noise over the time axis, as iCEM samples action sequences.

Written by hand: the idea is the ``colorednoise`` package's (shape white Gaussian Fourier
coefficients by ``f^(-beta/2)`` and transform back), but that package is NumPy-only and normalises
with a Python loop; this version is a pure JAX function whose ``beta`` may be a traced scalar.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from wmjax.types import Array, Key


def colored_noise(key: Key, beta: float | Array, shape: tuple[int, ...]) -> Array:
  """Gaussian noise whose power spectrum along axis ``-2`` (time) goes as ``1 / f^beta``.

  Args:
    key: consumed.
    beta: spectral exponent; ``0`` is white noise, ``1`` pink, ``2`` brown (strongly correlated
      over time). May be a traced scalar.
    shape: at least two axes, ``[..., H, A]`` (e.g. ``[N, H, A]``); samples along the other axes
      are independent.

  Returns:
    float32 ``shape``; every entry has unit variance in expectation (exactly, not only on average
    over time: each frequency has a uniformly random phase), and zero mean.
  """
  real_key, imag_key = jax.random.split(key)
  shape = tuple(int(d) for d in shape)
  if len(shape) < 2:
    raise ValueError(f"colored_noise needs a shape [..., H, A] with a time axis at -2; got {shape}")
  *lead, horizon, size = shape
  num_freqs = horizon // 2 + 1
  freqs = jnp.fft.rfftfreq(horizon)                          # [F] cycles per step
  # The DC bin gets the lowest non-zero frequency's power (as colorednoise's f_min) rather
  # than infinite power.
  freqs = freqs.at[0].set(1.0 / horizon)
  scale = freqs ** (-jnp.asarray(beta, jnp.float32) / 2.0)   # [F]
  # DC (and Nyquist, for even H) coefficients of a real signal are real; sqrt(2) gives them the
  # same variance as a complex coefficient, so beta = 0 is exactly white unit-variance noise.
  real_only = jnp.zeros(num_freqs, bool).at[0].set(True)
  if horizon % 2 == 0:
    real_only = real_only.at[-1].set(True)
  coeff_shape = (*lead, size, num_freqs)
  real = jax.random.normal(real_key, coeff_shape)
  imag = jax.random.normal(imag_key, coeff_shape)
  real = jnp.where(real_only, real * jnp.sqrt(2.0), real)
  imag = jnp.where(real_only, 0.0, imag)
  noise = jnp.fft.irfft(scale * (real + 1j * imag), n=horizon, axis=-1)   # [..., A, H]
  # Var(x_t) = (sum over bins of w_k scale_k^2) / H^2, with w = 2 for real-only bins, 4 otherwise.
  weights = jnp.where(real_only, 2.0, 4.0)
  std = jnp.sqrt(jnp.sum(weights * scale**2)) / horizon
  return jnp.swapaxes(noise / std, -1, -2).astype(jnp.float32)
