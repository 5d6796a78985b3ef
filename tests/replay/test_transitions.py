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


def test_ring_wraps_and_keeps_the_newest_rows():
  from wmjax.replay import add_batch, init_ring

  ring = init_ring((3,), (1,), capacity=6)
  ring = jax.jit(add_batch)(ring, _seq(4, 0.0))
  ring = add_batch(ring, _seq(4, 10.0))
  assert int(ring.size) == 6 and int(ring.index) == 2
  # Rows 0-1 were overwritten by the second batch's last two rows.
  np.testing.assert_allclose(np.asarray(ring.data.reward), [12, 13, 2, 3, 10, 11])


def test_ring_packs_only_valid_rows_and_samples_only_written_ones():
  from wmjax.replay import add_batch, init_ring, sample_rows

  ring = init_ring((3,), (1,), capacity=10)
  valid = jnp.array([1, 0, 1, 0, 1], bool)
  ring = jax.jit(add_batch)(ring, _seq(5, 1.0), valid)
  assert int(ring.size) == 3 and int(ring.index) == 3
  np.testing.assert_allclose(np.asarray(ring.data.reward[:4]), [1, 3, 5, 0])
  drawn = sample_rows(ring, jax.random.PRNGKey(0), 200)
  assert set(np.asarray(drawn.reward).tolist()) == {1.0, 3.0, 5.0}
