"""wmjax.envs.render: ray-geom intersections, frames of MJX data, the dmc-pixels/ suite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from wmjax import envs
from wmjax.envs import registry, render

SCENE = """
<mujoco>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <camera name="eye" pos="0 -4 0.5" xyaxes="1 0 0 0 0.2 1"/>
    <geom name="floor" type="plane" size="3 3 .1" pos="0 0 -1" rgba=".2 .3 .4 1"/>
    <geom type="sphere" size=".3" pos="1 0 0" rgba="1 0 0 1"/>
    <geom type="capsule" size=".2 .4" pos="-1 0 0" euler="30 40 0"/>
    <geom type="ellipsoid" size=".3 .2 .4" pos="0 1 0" euler="10 0 50"/>
    <geom type="cylinder" size=".25 .35" pos="0 -1 0" euler="60 20 0"/>
    <geom type="box" size=".2 .3 .4" pos="0 0 .8" euler="0 45 20"/>
  </worldbody>
</mujoco>
"""
RAY_FNS = {int(mujoco.mjtGeom.mjGEOM_PLANE): render.ray_plane,
           int(mujoco.mjtGeom.mjGEOM_SPHERE): render.ray_sphere,
           int(mujoco.mjtGeom.mjGEOM_CAPSULE): render.ray_capsule,
           int(mujoco.mjtGeom.mjGEOM_ELLIPSOID): render.ray_ellipsoid,
           int(mujoco.mjtGeom.mjGEOM_CYLINDER): render.ray_cylinder,
           int(mujoco.mjtGeom.mjGEOM_BOX): render.ray_box}


def _cartpole():
  """The Playground cart-pole's ``mujoco.MjModel`` (its vector env's model)."""
  return envs.make("dmc/CartpoleSwingup").mj_model


def _data(mj_model, qpos):
  """MJX data of ``mj_model`` at ``qpos`` (forward kinematics by MuJoCo itself)."""
  data = mujoco.MjData(mj_model)
  data.qpos[:] = qpos
  mujoco.mj_forward(mj_model, data)
  return mjx.put_data(mj_model, data)


def test_ray_cylinder_hand_computed_cases():
  size = jnp.array([1.0, 2.0, 0.0])   # radius 1, half-height 2, along z
  s2 = np.sqrt(2.0)
  cases = [  # (origin, direction, distance)
      ((3.0, 0.0, 0.0), (-1.0, 0.0, 0.0), 2.0),           # round side, head on
      ((0.5, 0.0, 5.0), (0.0, 0.0, -1.0), 3.0),           # top cap, along the axis
      ((0.5, 0.0, -5.0), (0.0, 0.0, 1.0), 3.0),           # bottom cap
      ((2.0, 0.0, 4.0), (-1 / s2, 0.0, -1 / s2), 2 * s2),   # above the side: enters the top cap
      ((3.0, 0.0, 3.0), (-1 / s2, 0.0, -1 / s2), 2 * s2),   # slanted onto the side at z = 1
      ((3.0, 0.0, 5.0), (0.0, 0.0, -1.0), np.inf),        # beside it, parallel to the axis
      ((3.0, 0.0, 0.0), (1.0, 0.0, 0.0), np.inf),         # pointing away
      ((3.0, 0.0, 2.5), (-1.0, 0.0, 0.0), np.inf),        # passes above the top
  ]
  origins = jnp.array([c[0] for c in cases])
  directions = jnp.array([c[1] for c in cases])
  got = jax.jit(jax.vmap(render.ray_cylinder, in_axes=(None, 0, 0)))(size, origins, directions)
  np.testing.assert_allclose(np.asarray(got), [c[2] for c in cases], rtol=1e-5)
  # One ray at a time gives the same.
  assert float(render.ray_cylinder(size, origins[3], directions[3])) == pytest.approx(2 * s2)


def test_intersections_match_mujoco_mj_ray():
  """Every primitive (posed, in one scene) against MuJoCo's own ray caster, on random rays."""
  model = mujoco.MjModel.from_xml_string(SCENE)
  data = mujoco.MjData(model)
  mujoco.mj_forward(model, data)
  rng = np.random.default_rng(0)
  n = 300
  origins = rng.normal(size=(n, 3))
  origins = 4.0 * origins / np.linalg.norm(origins, axis=1, keepdims=True)
  directions = rng.normal(scale=0.8, size=(n, 3)) - origins
  directions /= np.linalg.norm(directions, axis=1, keepdims=True)

  expected = np.empty(n)
  geom_id = np.zeros(1, np.int32)
  for i in range(n):
    expected[i] = mujoco.mj_ray(model, data, origins[i], directions[i], None, 1, -1, geom_id)
  expected[expected < 0] = np.inf

  got = np.full(n, np.inf)
  for g in range(model.ngeom):
    rot, pos = data.geom_xmat[g].reshape(3, 3), data.geom_xpos[g]
    pnt, vec = (origins - pos) @ rot, directions @ rot   # into the geom's frame
    fn = jax.vmap(RAY_FNS[int(model.geom_type[g])], in_axes=(None, 0, 0))
    got = np.minimum(got, np.asarray(fn(jnp.asarray(model.geom_size[g], jnp.float32),
                                        jnp.asarray(pnt, jnp.float32),
                                        jnp.asarray(vec, jnp.float32))))
  hits = np.isfinite(expected)
  assert hits.sum() > 100   # most rays hit something
  np.testing.assert_array_equal(np.isfinite(got), hits)
  np.testing.assert_allclose(got[hits], expected[hits], atol=1e-4)


def test_frame_shape_dtype_and_range():
  model = mujoco.MjModel.from_xml_string(SCENE)
  data = _data(model, [])
  frame = jax.jit(render.make_renderer(model, "eye", 16, 32))(data)
  assert frame.shape == (16, 32, 3) and frame.dtype == jnp.float32
  assert 0.0 <= float(frame.min()) and float(frame.max()) <= 1.0
  as_bytes = jax.jit(render.make_renderer(model, 0, 16, 32, dtype=jnp.uint8))(data)
  assert as_bytes.dtype == jnp.uint8
  np.testing.assert_array_equal(np.asarray(as_bytes), np.round(np.asarray(frame) * 255))
  # The red sphere is in view: some pixels are far redder than green or blue.
  red = np.asarray(frame)
  assert ((red[..., 0] > 0.5) & (red[..., 1] < 0.2)).sum() >= 3


def test_textured_floors_checker_in_closed_form_and_any_other_image():
  """A checkerboard floor is drawn from its two colours; another texture (a gradient) through
  mip-mapped lookups: both give finite frames whose floor shows the texture's colours."""
  frames = []
  for builtin in ("checker", "gradient"):
    model = mujoco.MjModel.from_xml_string(f"""
        <mujoco><asset>
          <texture name="t" type="2d" builtin="{builtin}" rgb1="1 0 0" rgb2="0 0 1" width="64"
                   height="64"/>
          <material name="m" texture="t" texrepeat="2 2" texuniform="true"/></asset>
          <worldbody><camera name="down" pos="0 0 3"/>
            <geom type="plane" size="2 2 .1" material="m"/></worldbody></mujoco>""")
    frame = np.asarray(jax.jit(render.make_renderer(model, 0, 16, 16, shadows=False))(
        _data(model, [])))
    assert np.isfinite(frame).all() and frame[..., 1].max() < 0.05   # red and blue only
    frames.append(frame)
  checker, gradient = frames
  assert checker[..., 0].max() > 0.5 and checker[..., 2].max() > 0.5   # both squares in view
  assert gradient[..., 0].std() > 0.05 or gradient[..., 2].std() > 0.05


def test_pole_pixels_move_with_the_pole_angle():
  model = _cartpole()
  draw = jax.jit(render.make_renderer(model, "fixed", 64, 64))

  def pole_column(angle):
    frame = np.asarray(draw(_data(model, [0.0, angle])))
    upper = frame[:28]   # above the cart (it is at the image's centre row)
    orange = (upper[..., 0] > 0.5) & (upper[..., 0] > upper[..., 1] + 0.15) & (
        upper[..., 1] > upper[..., 2] + 0.1)
    assert orange.sum() >= 3
    return np.nonzero(orange)[1].mean()

  upright, right, left = pole_column(0.0), pole_column(0.6), pole_column(-0.6)
  assert abs(upright - 31.5) < 2                  # upright: over the cart, mid-image
  assert right > upright + 3 and left < upright - 3   # hinge about +y: tips to +x, the right


def test_colours_follow_the_models_rgba_under_the_light():
  """The cart's face towards the camera: its material's colour lit by the headlight (ambient +
  diffuse, normal along the view) plus the headlight's specular highlight."""
  model = _cartpole()
  cart = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "cart")
  mat = model.geom_matid[cart]
  head = model.vis.headlight

  def expected():
    rgb = model.mat_rgba[mat, :3]
    lit = rgb * (head.ambient + head.diffuse) + model.mat_specular[mat] * head.specular
    return np.clip(lit, 0.0, 1.0)

  centre = (32, 32)   # the cart is at the image centre at qpos 0
  frame = jax.jit(render.make_renderer(model, "fixed", 64, 64))(_data(model, [0.0, 0.0]))
  np.testing.assert_allclose(np.asarray(frame)[centre], expected(), atol=0.02)
  model.mat_rgba[mat] = [0.1, 0.8, 0.3, 1.0]   # another colour: the renderer reads it
  frame = jax.jit(render.make_renderer(model, "fixed", 64, 64))(_data(model, [0.0, 0.0]))
  np.testing.assert_allclose(np.asarray(frame)[centre], expected(), atol=0.02)


_REFERENCE = textwrap.dedent("""
    import sys, numpy as np, mujoco
    from mujoco_playground import registry
    model = registry.load("CartpoleSwingup", config_overrides={"impl": "jax"}).mj_model
    data = mujoco.MjData(model)
    data.qpos[:] = [0.3, 0.5]
    mujoco.mj_forward(model, data)
    renderer = mujoco.Renderer(model, 32, 32)
    renderer.update_scene(data, camera=0)
    np.save(sys.argv[1], renderer.render())
""")


def test_frame_matches_mujocos_own_renderer(tmp_path):
  """Against ``mujoco.Renderer`` (OpenGL through EGL, in a subprocess); skipped where no
  headless OpenGL is available."""
  out = tmp_path / "reference.npy"
  run = subprocess.run([sys.executable, "-c", _REFERENCE, str(out)], capture_output=True,
                       timeout=120, env={**os.environ, "MUJOCO_GL": "egl"})
  if run.returncode != 0 or not out.exists():
    pytest.skip("MuJoCo's renderer cannot run headless here (no EGL)")
  reference = np.load(out).astype(np.float32) / 255.0
  model = _cartpole()
  frame = np.asarray(jax.jit(render.make_renderer(model, 0, 32, 32))(_data(model, [0.3, 0.5])))
  error = np.abs(frame - reference)
  assert error.mean() < 0.03           # about 0.01 measured; edges are most of it
  assert np.median(error) < 0.02


def test_vmap_equals_one_by_one_in_any_nesting():
  model = _cartpole()
  draw = render.make_renderer(model, 0, 16, 16)
  grid = [[_data(model, [0.2 * i - 0.1 * j, 0.7 * i + 0.4 * j]) for j in range(3)]
          for i in range(2)]
  stacked = jax.tree.map(lambda *x: jnp.stack(x), *[jax.tree.map(lambda *y: jnp.stack(y), *row)
                                                    for row in grid])   # [2 seeds, 3 envs]
  one_by_one = np.stack([[np.asarray(jax.jit(draw)(d)) for d in row] for row in grid])
  seeds_envs = jax.jit(jax.vmap(jax.vmap(draw)))(stacked)
  envs_seeds = jax.jit(jax.vmap(jax.vmap(draw), in_axes=1, out_axes=1))(stacked)
  np.testing.assert_allclose(np.asarray(seeds_envs), one_by_one, atol=1e-5)
  np.testing.assert_allclose(np.asarray(envs_seeds), one_by_one, atol=1e-5)
  assert np.abs(one_by_one[0, 0] - one_by_one[1, 2]).max() > 0.1   # different poses


def _compiles(fn):
  """How many programs ``fn()`` traced or compiled (it is expected to raise ValueError)."""
  events = []

  def listen(name, *_, **__):
    if name.startswith("/jax/core/compile/"):
      events.append(name)

  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    with pytest.raises(ValueError) as info:
      fn()
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
  return len(events), str(info.value)


def test_bad_camera_and_image_size_are_refused_before_compiling():
  model = _cartpole()
  count, message = _compiles(lambda: render.make_renderer(model, "side"))
  assert count == 0 and "'side' is not in this model" in message
  assert "0: 'fixed'" in message and "1: 'lookatcart'" in message
  count, message = _compiles(lambda: render.make_renderer(model, 7))
  assert count == 0 and "out of range" in message and "2 camera(s)" in message
  # Sizes Dreamer's CNN cannot take: refused before the env is even built.
  for size in ((6, 30), 4, (64, 7), (0, 64), "64"):
    count, message = _compiles(lambda s=size: envs.make("dmc-pixels/CartpoleSwingup",
                                                        image_size=s))
    assert count == 0 and "image_size" in message, (size, message)
  with pytest.raises(ValueError, match="'nope' is not in this model.*'fixed'"):
    envs.make("dmc-pixels/CartpoleSwingup", camera="nope")
  with pytest.raises(ValueError, match="Madrona.*CUDA GPU.*pure-JAX"):
    envs.make("dmc-pixels/CartpoleSwingup", config_overrides={"vision": True})


def test_unsupported_geoms_are_named():
  model = mujoco.MjModel.from_xml_string("""
      <mujoco><asset><mesh name="tetra" vertex="0 0 0 1 0 0 0 1 0 0 0 1"/></asset>
        <worldbody><camera name="c" pos="0 -3 0"/><geom name="thing" type="mesh" mesh="tetra"/>
        </worldbody></mujoco>""")
  with pytest.raises(ValueError, match="'thing' \\(mesh\\)"):
    render.make_renderer(model, 0)


def test_pixel_env_steps_under_jit_and_vmap_as_its_vector_task():
  assert "dmc-pixels/CartpoleSwingup" in envs.names()
  env = envs.make("dmc-pixels/CartpoleSwingup", image_size=16, episode_length=3)
  assert env.spec.obs_shape == (16, 16, 3) and env.spec.action_shape == (1,)
  assert env.observation_size == (16, 16, 3) and env.camera_name == "fixed"
  vector = env.env   # the dmc/ task it renders
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  actions = jnp.array([[[0.5], [-1.0]], [[1.0], [0.2]], [[-0.3], [0.0]], [[0.1], [0.1]]])

  @jax.jit
  def rollout(keys, actions):
    def body(carry, action):
      pixels, state = carry
      pixels = jax.vmap(env.step)(pixels, action)
      state = jax.vmap(vector.step)(state, action)
      return (pixels, state), (pixels.obs, pixels.reward, state.reward, pixels.done,
                               pixels.info["truncated"], pixels.info["vector_obs"], state.obs,
                               jax.vmap(env.render)(pixels.data))

    start = (jax.vmap(env.reset)(keys), jax.vmap(vector.reset)(keys))
    return start[0].obs, jax.lax.scan(body, start, actions)[1]

  first, (obs, reward, vector_reward, done, truncated, vector_obs, true_obs, redrawn) = rollout(
      keys, actions)
  assert first.shape == (2, 16, 16, 3) and obs.shape == (4, 2, 16, 16, 3)
  assert obs.dtype == jnp.float32 and 0 <= float(obs.min()) and float(obs.max()) <= 1
  np.testing.assert_allclose(np.asarray(reward), np.asarray(vector_reward), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(vector_obs), np.asarray(true_obs), rtol=1e-6)
  assert np.asarray(done)[:, :].tolist() == [[0, 0], [0, 0], [1, 1], [1, 1]]
  assert np.asarray(truncated)[2].tolist() == [1, 1]   # a time limit, not a termination
  # Each observation is the frame of the true physics state it comes with.
  np.testing.assert_allclose(np.asarray(obs), np.asarray(redrawn), atol=1e-6)
  assert registry._PIXEL_OPTIONS == render.PIXEL_OPTIONS   # make() hands these to PixelEnv
