"""Conv encoder/decoder: shapes over leading axes, bad shapes refused, an autoencoder learns."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wmjax.nets.cnn import ConvDecoder, ConvEncoder, num_stages


@pytest.mark.parametrize("shape", [(16, 16, 1), (32, 32, 3), (64, 64, 3)])
def test_shapes_with_leading_axes(shape):
  # Shapes only (eval_shape compiles nothing); the autoencoder test checks the numbers.
  depth = 4
  images = jax.ShapeDtypeStruct((2, 3, *shape), jnp.float32)
  enc, dec = ConvEncoder(depth=depth), ConvDecoder(out_shape=shape, depth=depth)
  key = jax.random.PRNGKey(0)
  enc_params = jax.eval_shape(enc.init, key, jax.ShapeDtypeStruct(shape, jnp.float32))
  features = jax.eval_shape(enc.apply, enc_params, images)
  n = int(np.log2(shape[0] // 4))
  assert features.shape == (2, 3, 4 * 4 * depth * 2 ** (n - 1))
  assert features.dtype == jnp.float32
  dec_params = jax.eval_shape(dec.init, key, features)
  recon = jax.eval_shape(dec.apply, dec_params, features)
  assert recon.shape == (2, 3, *shape) and recon.dtype == jnp.float32
  # Parameters do not depend on the leading axes.
  assert jax.tree.map(lambda x: x.shape, jax.eval_shape(enc.init, key, images)) == jax.tree.map(
      lambda x: x.shape, enc_params)


def test_non_square_and_no_norm():
  images = jax.ShapeDtypeStruct((5, 16, 32, 3), jnp.float32)
  enc = ConvEncoder(depth=2, layer_norm=False, activation="relu")
  params = jax.eval_shape(enc.init, jax.random.PRNGKey(0), images)
  assert "norm_0" not in params["params"]
  features = jax.eval_shape(enc.apply, params, images)
  assert features.shape == (5, 4 * 8 * 4)
  dec = ConvDecoder(out_shape=(16, 32, 3), depth=2, layer_norm=False)
  dec_params = jax.eval_shape(dec.init, jax.random.PRNGKey(1), features)
  assert jax.eval_shape(dec.apply, dec_params, features).shape == (5, 16, 32, 3)


@pytest.mark.parametrize("shape", [(4, 4, 3), (7, 16, 3), (16, 2, 1)])
def test_too_small_an_image_is_refused(shape):
  with pytest.raises(ValueError, match=r"at least 8 pixels.*channels last"):
    jax.eval_shape(ConvEncoder().init, jax.random.PRNGKey(0), jnp.zeros(shape))
  pattern = rf"out_shape of shape \({shape[0]}, {shape[1]}, {shape[2]}\)"
  with pytest.raises(ValueError, match=pattern):
    jax.eval_shape(ConvDecoder(out_shape=shape).init, jax.random.PRNGKey(0), jnp.zeros(8))


@pytest.mark.parametrize("shape,stages,grid", [((10, 10, 4), 2, (3, 3)), ((84, 84, 3), 5, (3, 3)),
                                               ((30, 40, 1), 3, (4, 5)), ((64, 64, 3), 4, (4, 4))])
def test_any_size_from_8_pixels_round_trips(shape, stages, grid):
  """Sizes that are not 4 x 2**n (MinAtar's 10x10, Atari's 84x84) take ceil-sized stages;
  the decoder crops its output back to the image."""
  assert num_stages(shape, 4) == stages
  images = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
  enc = ConvEncoder(depth=2)
  params = jax.eval_shape(enc.init, jax.random.PRNGKey(0), images)
  features = jax.eval_shape(enc.apply, params, images)
  assert features.shape == (2, grid[0] * grid[1] * 2 * 2 ** (stages - 1))
  dec = ConvDecoder(out_shape=shape, depth=2)
  dec_params = jax.eval_shape(dec.init, jax.random.PRNGKey(1), features)
  assert jax.eval_shape(dec.apply, dec_params, features).shape == (2, *shape)


def test_integer_images_are_refused():
  with pytest.raises(ValueError, match="float images"):
    jax.eval_shape(ConvEncoder().init, jax.random.PRNGKey(0), jnp.zeros((16, 16, 3), jnp.uint8))


def test_autoencoder_fits_a_few_images():
  # Four 16x16 images: bright squares at different places.
  images = np.zeros((4, 16, 16, 1), np.float32)
  for i, (r, c) in enumerate([(2, 2), (2, 9), (9, 2), (9, 9)]):
    images[i, r:r + 5, c:c + 5] = 1.0
  images = jnp.asarray(images)
  enc, dec = ConvEncoder(depth=8), ConvDecoder(out_shape=(16, 16, 1), depth=8)
  key_enc, key_dec = jax.random.split(jax.random.PRNGKey(0))

  @jax.jit
  def init(key_enc, key_dec):
    enc_params = enc.init(key_enc, images)
    return {"enc": enc_params, "dec": dec.init(key_dec, enc.apply(enc_params, images))}

  params = init(key_enc, key_dec)
  opt = optax.adam(3e-3)

  def loss_fn(p):
    return jnp.mean((dec.apply(p["dec"], enc.apply(p["enc"], images)) - images) ** 2)

  @jax.jit
  def train(params):
    def body(carry, _):
      params, opt_state = carry
      loss, grad = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = opt.update(grad, opt_state)
      return (optax.apply_updates(params, updates), opt_state), loss
    (params, _), losses = jax.lax.scan(body, (params, opt.init(params)), None, length=150)
    return params, losses

  params, losses = train(params)
  final = float(jax.jit(loss_fn)(params))
  assert final < 0.1 * float(losses[0]), (float(losses[0]), final)   # measured 0.40 -> 0.0007


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("shape", [(8, 8, 3), (5, 7, 4), (3, 3, 6)])
def test_cpu_form_matches_flax_in_a_scan_and_under_vmap(transpose, shape):
  """The CPU form of the 4x4 stride-2 (transposed) convolution has flax's parameters, products
  and gradients, inside lax.scan (where it exists for speed) and vmapped over parameters."""
  import flax.linen as nn

  from wmjax.nets.cnn import _Conv

  key = jax.random.PRNGKey(1)
  x = jax.random.normal(key, (2, *shape))
  layer = nn.ConvTranspose if transpose else nn.Conv
  ref = layer(5, (4, 4), strides=(2, 2), padding="SAME")
  ours = _Conv(5, 4, transpose, True, "cpu")
  params = ref.init(key, x)
  chex.assert_trees_all_equal(params, ours.init(key, x))
  chex.assert_trees_all_close(ours.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)

  def grads(module, params):
    def loss(p, x):
      return jnp.sum(jnp.sin(module.apply(p, x)))

    def body(carry, scale):   # the gradient inside a scan, as in a training loop
      return carry, jax.grad(loss, argnums=(0, 1))(jax.tree.map(lambda a: scale * a, params), x)

    return jax.lax.scan(body, 0, jnp.array([1.0, 2.0]))[1]

  chex.assert_trees_all_close(jax.jit(lambda p: grads(ours, p))(params), grads(ref, params),
                              rtol=1e-4, atol=1e-5)
  stacked = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), params)
  loss = lambda module: (lambda p: jnp.sum(jnp.sin(module.apply(p, x))))
  batched = jax.vmap(jax.grad(loss(ours)))(stacked)
  one = jax.grad(loss(ref))(jax.tree.map(lambda a: 2 * a, params))
  chex.assert_trees_all_close(jax.tree.map(lambda a: a[1], batched), one, rtol=1e-4, atol=1e-5)


def test_conv_impl_is_checked_and_xla_is_flax():
  x = jnp.ones((1, 8, 8, 3))
  with pytest.raises(ValueError, match="conv_impl"):
    ConvEncoder(depth=2, conv_impl="fast").init(jax.random.PRNGKey(0), x)
  a, b = ConvEncoder(depth=2, conv_impl="xla"), ConvEncoder(depth=2, conv_impl="cpu")
  params = a.init(jax.random.PRNGKey(0), x)
  chex.assert_trees_all_equal(params, b.init(jax.random.PRNGKey(0), x))
  chex.assert_trees_all_close(a.apply(params, x), b.apply(params, x), rtol=1e-5, atol=1e-5)
