"""Image encoder and decoder (flax.linen, channels-last), as in DreamerV3.

The encoder halves the resolution with stride-2 convolutions (doubling channels) until it
reaches ``min_resolution``; the decoder mirrors it with transposed convolutions. Both take any
number of leading batch axes.

On a CPU (``conv_impl="auto"``) the 4x4 stride-2 convolutions run in a form built for XLA's CPU
backend, with the parameters and products of ``flax.linen.Conv`` / ``ConvTranspose`` (equal to
float rounding, ``tests/nets/test_cnn.py``), so checkpoints move between devices unchanged.
Inside a loop (``lax.scan``: every training loop here) XLA:CPU runs a convolution's kernel
gradient, and a convolution of a dilated input (a transposed convolution), 10-35x slower than
alone: on 64x64 frames, batch 100, one kernel gradient took 700 ms in a scan and 20 ms alone.
So in the CPU form:

- a transposed convolution is an ordinary 3x3 stride-1 convolution to the four output phases,
  then depth-to-space (its 3x3 kernel built from the 4x4 one);
- a kernel's gradient is one matrix product of input patches and output gradients;
- an input's gradient is the other convolution: a stride-2 convolution's is the transposed
  convolution with the kernel flipped in space and its channel axes swapped, and the converse.

A 64x64 VAE gradient (depth 16, batch 100) inside a scan takes 0.24 s in this form and 6.7 s
in XLA's (``benchmarks/conv_forms.py``; ``benchmarks/results/conv_forms-cpu.json``). On a
GPU or TPU, or with ``conv_impl="xla"``, XLA's own convolutions run (flax's layers' ops).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from wmjax.nets.mlp import get_activation

__all__ = ["ConvEncoder", "ConvDecoder", "num_stages", "CONV_IMPLS"]

CONV_IMPLS = ("auto", "cpu", "xla")


def num_stages(shape: tuple[int, ...], min_resolution: int, what: str = "image") -> int:
  """Stride-2 stages ``n >= 1`` that take ``min(H, W)`` of ``shape = (H, W, C)`` to at most
  ``min_resolution``: 4 for 64x64 (to 4x4), 2 for MinAtar's 10x10 (to 3x3), 5 for 84x84.

  Any size works whose smaller side is at least ``2 * min_resolution``; sizes that are
  ``min_resolution`` times a power of two (16, 32, 64, ...) need no cropping in the decoder.
  Raises ``ValueError`` for a smaller image.
  """
  height, width = int(shape[0]), int(shape[1])
  small = min(height, width)
  if min_resolution < 1 or small < 2 * min_resolution:
    raise ValueError(
        f"{what} of shape {tuple(shape)}: the CNN needs height and width of at least "
        f"{2 * min_resolution} pixels (2 x min_resolution {min_resolution}); images are "
        "channels last [H, W, C], e.g. 64x64x3")
  n = 1
  while -(-small // 2**n) > min_resolution:
    n += 1
  return n


def _use_cpu_form(impl: str, kernel: int) -> bool:
  """Whether the CPU form runs (see the module docstring; 4x4 kernels only)."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"unknown conv_impl {impl!r}; accepted: {', '.join(CONV_IMPLS)} (auto: "
                     "the CPU form on a CPU, XLA's convolutions elsewhere)")
  if kernel != 4:
    return False
  return impl == "cpu" or (impl == "auto" and jax.default_backend() == "cpu")


_NHWC = ("NHWC", "HWIO", "NHWC")


def _flip_swap(w: jax.Array) -> jax.Array:
  """The kernel of the adjoint: flipped in space, input and output channels swapped."""
  return jnp.flip(w, (0, 1)).swapaxes(2, 3)


def _xla_conv(x: jax.Array, v: jax.Array) -> jax.Array:
  """``nn.Conv(strides=2, padding="SAME")``'s product: ``[B, H, W, C]`` -> ``[B, ceil(H/2),
  ceil(W/2), O]``."""
  return jax.lax.conv_general_dilated(x, v, (2, 2), "SAME", dimension_numbers=_NHWC)


def _xla_conv_transpose(x: jax.Array, w: jax.Array) -> jax.Array:
  """``nn.ConvTranspose(strides=2, padding="SAME")``'s product: ``[B, H, W, C]`` ->
  ``[B, 2H, 2W, O]``."""
  return jax.lax.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=_NHWC)


def _same_pads(size: int, kernel: int = 4, stride: int = 2) -> tuple[int, int]:
  """XLA's 'SAME' padding of one side (the output is ``ceil(size / stride)``)."""
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def _kernel_grad(x: jax.Array, g: jax.Array) -> jax.Array:
  """The gradient of ``_xla_conv(x, v)``'s 4x4 kernel for output gradient ``g``: input patches
  ``[N, 16 C]`` times ``g [N, O]`` -> ``[4, 4, C, O]``."""
  b, h, w, c = x.shape
  oh, ow = g.shape[1:3]
  xp = jnp.pad(x, ((0, 0), _same_pads(h), _same_pads(w), (0, 0)))
  cols = [xp[:, u:u + 2 * oh - 1:2, t:t + 2 * ow - 1:2] for u in range(4) for t in range(4)]
  patches = jnp.stack(cols, 3).reshape(-1, 16 * c)
  return (patches.T @ g.reshape(-1, g.shape[-1])).reshape(4, 4, c, g.shape[-1])


# A 4-tap stride-2 'SAME' transposed convolution in 1-D (lax.conv_transpose's padding 2, 2):
# y[2m] = x[m-1] k[0] + x[m] k[2] and y[2m+1] = x[m] k[1] + x[m+1] k[3]. _PHASE[a, t, i] = 1
# where output phase a takes kernel tap i from input offset t - 1.
_PHASE = np.zeros((2, 3, 4), np.float32)
_PHASE[0, 0, 0] = _PHASE[0, 1, 2] = _PHASE[1, 1, 1] = _PHASE[1, 2, 3] = 1.0


@jax.custom_vjp
def _cpu_conv(x: jax.Array, v: jax.Array) -> jax.Array:
  return _xla_conv(x, v)


def _cpu_conv_fwd(x, v):
  return _xla_conv(x, v), (x, v)


def _cpu_conv_bwd(res, g):
  x, v = res
  dx = _cpu_conv_transpose(g, _flip_swap(v))[:, :x.shape[1], :x.shape[2]]
  return dx, _kernel_grad(x, g)


@jax.custom_vjp
def _cpu_conv_transpose(x: jax.Array, w: jax.Array) -> jax.Array:
  """:func:`_xla_conv_transpose` as a 3x3 stride-1 convolution to the four output phases."""
  b, h, wd, c = x.shape
  o = w.shape[-1]
  w3 = jnp.einsum("aup,bvq,pqio->uviabo", _PHASE, _PHASE, w).reshape(3, 3, c, 4 * o)
  y = jax.lax.conv_general_dilated(x, w3, (1, 1), "SAME", dimension_numbers=_NHWC)
  return y.reshape(b, h, wd, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * wd, o)


def _cpu_conv_transpose_fwd(x, w):
  return _cpu_conv_transpose(x, w), (x, w)


def _cpu_conv_transpose_bwd(res, g):
  # The transposed convolution is the adjoint of u -> _xla_conv(u, v), v = _flip_swap(w):
  # <g, T x> = <_xla_conv(g, v), x>.
  x, w = res
  return _cpu_conv(g, _flip_swap(w)), _flip_swap(_kernel_grad(g, x))


_cpu_conv.defvjp(_cpu_conv_fwd, _cpu_conv_bwd)
_cpu_conv_transpose.defvjp(_cpu_conv_transpose_fwd, _cpu_conv_transpose_bwd)


class _Conv(nn.Module):
  """``nn.Conv`` (``transpose``: ``nn.ConvTranspose``) with ``(k, k)`` kernels, stride 2 and
  'SAME' padding: the same parameters (``kernel [k, k, C, O]``, ``bias [O]``) and products,
  in the CPU form where :func:`_use_cpu_form`."""

  features: int
  kernel: int
  transpose: bool
  use_bias: bool
  conv_impl: str

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.param("kernel", nn.initializers.lecun_normal(),
                   (self.kernel, self.kernel, x.shape[-1], self.features))
    if _use_cpu_form(self.conv_impl, self.kernel):
      y = (_cpu_conv_transpose if self.transpose else _cpu_conv)(x, w)
    else:
      y = (_xla_conv_transpose if self.transpose else _xla_conv)(x, w)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return y


def _down(size: int, n: int) -> int:
  """A side after ``n`` stride-2 'SAME' convolutions: ``ceil(size / 2**n)``."""
  return -(-size // 2**n)


class ConvEncoder(nn.Module):
  """Images ``[..., H, W, C]`` (floats in ``[0, 1]``) -> features ``[..., F]``.

  ``n`` (:func:`num_stages`) stride-2 'SAME' convolutions with ``depth * 2**i`` channels
  (``i = 0 .. n-1``), each followed by a LayerNorm over channels (if ``layer_norm``) and the
  activation; ``F = ceil(H / 2**n) * ceil(W / 2**n) * depth * 2**(n-1)``.
  """

  depth: int = 16
  kernel: int = 4
  min_resolution: int = 4
  activation: str = "silu"
  layer_norm: bool = True
  conv_impl: str = "auto"   # auto (the CPU form on a CPU) | cpu | xla: see the module docstring

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    if images.ndim < 3:
      raise ValueError(f"ConvEncoder takes images [..., H, W, C], got shape {images.shape}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
      raise ValueError(
          f"ConvEncoder takes float images in [0, 1], got dtype {images.dtype}; "
          "convert (e.g. uint8 / 255) first.")
    height, width, channels = images.shape[-3:]
    n = num_stages(images.shape[-3:], self.min_resolution)
    act = get_activation(self.activation)
    lead = images.shape[:-3]
    x = images.reshape((-1, height, width, channels)) - 0.5
    for i in range(n):
      x = _Conv(self.depth * 2**i, self.kernel, False, not self.layer_norm, self.conv_impl,
                name=f"conv_{i}")(x)
      if self.layer_norm:
        x = nn.LayerNorm(name=f"norm_{i}")(x)
      x = act(x)
    return x.reshape((*lead, -1))


class ConvDecoder(nn.Module):
  """Features ``[..., F]`` -> images ``[..., H, W, C]`` for ``out_shape = (H, W, C)``.

  A Dense layer to ``(ceil(H / 2**n), ceil(W / 2**n), depth * 2**(n-1))`` (the encoder's last
  grid), then ``n`` stride-2 transposed convolutions halving channels and doubling resolution;
  the last outputs ``C`` channels with no norm or activation. Where ``H`` or ``W`` is not that
  grid times ``2**n`` (MinAtar's 10x10 from 3x3: 12x12) the top-left ``H x W`` is kept. Adds
  0.5, so it predicts images on the ``[0, 1]`` scale (the caller's loss is MSE; output is not
  clipped).
  """

  out_shape: tuple[int, int, int]
  depth: int = 16
  kernel: int = 4
  min_resolution: int = 4
  activation: str = "silu"
  layer_norm: bool = True
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    if len(self.out_shape) != 3:
      raise ValueError(f"ConvDecoder out_shape must be (H, W, C), got {self.out_shape}")
    height, width, channels = self.out_shape
    n = num_stages(self.out_shape, self.min_resolution, what="ConvDecoder out_shape")
    act = get_activation(self.activation)
    lead = features.shape[:-1]
    h, w = _down(height, n), _down(width, n)
    x = nn.Dense(h * w * self.depth * 2 ** (n - 1), name="project")(
        features.reshape((-1, features.shape[-1])))
    x = x.reshape((-1, h, w, self.depth * 2 ** (n - 1)))
    for i in range(n - 1):
      x = _Conv(self.depth * 2 ** (n - 2 - i), self.kernel, True, not self.layer_norm,
                self.conv_impl, name=f"deconv_{i}")(x)
      if self.layer_norm:
        x = nn.LayerNorm(name=f"norm_{i}")(x)
      x = act(x)
    x = _Conv(channels, self.kernel, True, True, self.conv_impl, name=f"deconv_{n - 1}")(x)
    x = x[:, :height, :width]
    return x.reshape((*lead, height, width, channels)) + 0.5
