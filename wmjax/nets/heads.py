"""Output heads and latent distributions for world models (DreamerV3).

Two-hot regression in symlog space for rewards and values, categorical latents with a uniform
mix and straight-through samples, and the KL divergences of categorical and diagonal Gaussian
latents. Every function is a pure function of arrays over any leading axes; ``K`` is the number
of classes (or bins) on the last axis.

Written by hand: these are a few lines each and no well-kept JAX library ships them (distrax's
``OneHotCategorical`` has no straight-through sample or unimix; DreamerV3's own code is not a
library).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "symlog",
    "symexp",
    "twohot_bins",
    "twohot_encode",
    "twohot_mean",
    "twohot_loss",
    "unimix_logits",
    "sample_onehot_straight_through",
    "categorical_kl",
    "gaussian_kl",
]


def symlog(x: jax.Array) -> jax.Array:
  """``sign(x) * log(1 + |x|)``, elementwise."""
  return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x: jax.Array) -> jax.Array:
  """``sign(x) * (exp(|x|) - 1)``, elementwise; the inverse of :func:`symlog`."""
  return jnp.sign(x) * jnp.expm1(jnp.abs(x))


def twohot_bins(num_bins: int = 255, low: float = -20.0, high: float = 20.0) -> jax.Array:
  """Bin centres ``[num_bins]``, evenly spaced in symlog space (DreamerV3: 255 in [-20, 20])."""
  if num_bins < 2:
    raise ValueError(f"twohot_bins needs num_bins >= 2, got {num_bins}")
  if not high > low:
    raise ValueError(f"twohot_bins needs high > low, got low={low}, high={high}")
  return jnp.linspace(low, high, num_bins, dtype=jnp.float32)


def twohot_encode(y: jax.Array, bins: jax.Array) -> jax.Array:
  """Two-hot encoding of ``y [...]`` (in bin space) over sorted ``bins [K]`` -> ``[..., K]``.

  ``y`` is clipped to ``[bins[0], bins[-1]]``; its weight is split between the two
  neighbouring bins in proportion to closeness, so an exact bin hit gives a one-hot and
  ``sum(encoding * bins) == clip(y)``.
  """
  y = jnp.asarray(y, bins.dtype)
  num_bins = bins.shape[-1]
  y = jnp.clip(y, bins[0], bins[-1])
  # Index of the last bin <= y (a comparison count: cheap for a few hundred bins on any device).
  below = jnp.sum((bins <= y[..., None]).astype(jnp.int32), axis=-1) - 1
  below = jnp.clip(below, 0, num_bins - 2)
  above = below + 1
  lo, hi = bins[below], bins[above]
  w_above = (y - lo) / (hi - lo)
  w_below = 1.0 - w_above
  return (jax.nn.one_hot(below, num_bins, dtype=bins.dtype) * w_below[..., None]
          + jax.nn.one_hot(above, num_bins, dtype=bins.dtype) * w_above[..., None])


def twohot_mean(logits: jax.Array, bins: jax.Array) -> jax.Array:
  """Prediction in the original space: ``symexp(sum(softmax(logits) * bins))``.

  ``logits [..., K]``, ``bins [K]`` -> ``[...]``.
  """
  return symexp(jnp.sum(jax.nn.softmax(logits, axis=-1) * bins, axis=-1))


def twohot_loss(logits: jax.Array, target: jax.Array, bins: jax.Array) -> jax.Array:
  """Cross-entropy of ``logits [..., K]`` against the two-hot of ``symlog(target [...])``.

  ``target`` is in the original space and gets no gradient. Returns ``[...]``.
  """
  target = jax.lax.stop_gradient(twohot_encode(symlog(target), bins))
  return -jnp.sum(target * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def unimix_logits(logits: jax.Array, unimix: float = 0.01) -> jax.Array:
  """Logits of ``(1 - unimix) * softmax(logits) + unimix / K`` over the last axis ``[..., K]``.

  DreamerV3 mixes 1% uniform into every categorical so no probability reaches zero and the
  KL stays bounded. ``unimix`` may be a traced scalar.
  """
  num_classes = logits.shape[-1]
  probs = (1.0 - unimix) * jax.nn.softmax(logits, axis=-1) + unimix / num_classes
  return jnp.log(probs)


def sample_onehot_straight_through(key: jax.Array, logits: jax.Array) -> jax.Array:
  """A one-hot sample ``[..., K]`` of ``Categorical(logits [..., K])``.

  The value is the one-hot sample; the gradient is that of ``softmax(logits)``
  (``sample + probs - stop_gradient(probs)``), as in DreamerV2/V3.
  """
  probs = jax.nn.softmax(logits, axis=-1)
  index = jax.random.categorical(key, logits, axis=-1)
  sample = jax.nn.one_hot(index, logits.shape[-1], dtype=probs.dtype)
  return sample + probs - jax.lax.stop_gradient(probs)


def categorical_kl(logits_p: jax.Array, logits_q: jax.Array) -> jax.Array:
  """``KL(p || q)`` of categoricals over the last axis: ``[..., K], [..., K] -> [...]``.

  Callers sum over latent groups themselves.
  """
  log_p = jax.nn.log_softmax(logits_p, axis=-1)
  log_q = jax.nn.log_softmax(logits_q, axis=-1)
  return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


def gaussian_kl(mean_p: jax.Array, std_p: jax.Array, mean_q: jax.Array,
                std_q: jax.Array) -> jax.Array:
  """Elementwise ``KL(N(mean_p, std_p^2) || N(mean_q, std_q^2))``, all ``[...]`` -> ``[...]``.

  For diagonal Gaussians the caller sums over the latent axis.
  """
  var_ratio = (std_p / std_q) ** 2
  mean_term = ((mean_p - mean_q) / std_q) ** 2
  return 0.5 * (var_ratio + mean_term - 1.0) - jnp.log(std_p / std_q)
