import jax
import jax.numpy as jnp
import numpy as np

from wmjax.replay import add_sequence, init_buffer
from wmjax.types import Spec, Transition


def _seq(t, offset):
  obs = jnp.arange(t, dtype=jnp.float32)[:, None] + offset + jnp.zeros((t, 3))
  return Transition(obs=obs, action=jnp.zeros((t, 1)), reward=obs[:, 0], next_obs=obs + 1,
                    terminated=jnp.zeros(t))


def test_add_sequence_appends_valid_prefix_and_overwrites_tail():
  buf = init_buffer(Spec(obs_shape=(3,), action_shape=(1,)), capacity=20)
  valid = jnp.array([1, 1, 1, 0, 0], jnp.float32)   # episode ended after 3 steps
  buf = jax.jit(add_sequence)(buf, _seq(5, 0.0), valid)
  assert int(buf.size) == 3
  buf = add_sequence(buf, _seq(5, 100.0), jnp.ones(5))
  assert int(buf.size) == 8
  np.testing.assert_allclose(np.asarray(buf.data.reward[:8]),
                             [0, 1, 2, 100, 101, 102, 103, 104])


def test_add_sequence_vmaps_over_seeds():
  spec = Spec(obs_shape=(3,), action_shape=(1,))
  bufs = jax.vmap(lambda _: init_buffer(spec, 10))(jnp.arange(2))
  seqs = jax.vmap(lambda o: _seq(4, o))(jnp.array([0.0, 50.0]))
  valid = jnp.array([[1, 1, 1, 1], [1, 1, 0, 0]], jnp.float32)
  bufs = jax.vmap(add_sequence)(bufs, seqs, valid)
  np.testing.assert_array_equal(np.asarray(bufs.size), [4, 2])
