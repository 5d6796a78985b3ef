"""A pure-JAX ray-cast renderer for MuJoCo scenes, and DM Control from pixels on top of it.

:func:`make_renderer` turns a ``mujoco.MjModel`` and a camera into ``render(data) -> [H, W, 3]``,
a function of MJX data (``geom_xpos``, ``geom_xmat``, ``cam_xpos``, ``cam_xmat``, ``xpos``,
``xmat``, ``subtree_com``) and nothing else: no OpenGL, no host callbacks. It runs wherever JAX
runs (CPU, GPU, TPU), inside the same jitted program as the physics, and vmaps over envs (and
over seeds x envs, nested in any order) like any other JAX function. :class:`PixelEnv` puts it
behind a registered env: ``wmjax.envs.make("dmc-pixels/CartpoleSwingup")``.

What it draws, per pixel, following MuJoCo's own OpenGL renderer (``render_gl3.c``) closely
enough that a 64x64 frame differs from ``mujoco.Renderer``'s by about 0.01 (of 1) per pixel on
average on the DM Control tasks (edges and reflections are most of it):

- One ray from the camera as MuJoCo's pinhole (``cam_fovy`` is the vertical field of view; the
  camera looks down its ``-z`` axis, ``+y`` up), intersected with every visible geom (groups 0-2
  as MuJoCo's default, alpha > 0): planes, spheres, capsules, ellipsoids, cylinders and boxes.
  ``mjx.ray`` has no cylinders (acrobot, finger and pendulum decorations) and returns no
  surface normal, so the intersections are written here, vectorised over pixels and geoms.
- The nearest hit takes the geom's own colour (its material's ``mat_rgba`` when the geom keeps
  MuJoCo's default rgba, as ``mjv_updateScene`` does), modulated on planes by their 2-D texture
  (DM Control's checkered floor), mip-mapped so that the far floor does not alias at 64x64.
- Lighting is OpenGL's fixed-function model as MuJoCo sets it up: the headlight (a directional
  light along the view) plus each active model light (directional or spot, point too, in its
  mode: fixed, tracking, tracking the centre of mass or targeting a body), each with ambient,
  Lambert diffuse and Blinn-Phong specular terms, attenuation and spot cone, plus the
  material's emission. With ``shadows=True`` (MuJoCo's default), a shadow-casting light is a
  separate pass as in MuJoCo, and lights only what no geom hides from it (one shadow ray per
  pixel, where MuJoCo uses a shadow map).
- Rays that hit nothing show the skybox (a cube-map texture, filtered to the pixel size), or
  black when the model has none.

Not drawn: the floor's reflections (DM Control's floors reflect 20%), tendons (ball-in-cup's
string), transparency (alpha below 1 is drawn opaque), fog and haze, meshes, height fields and
SDFs (a model with a visible one is refused, naming the geoms), textures on geoms other than
planes, and MuJoCo's multisampling: geoms thinner than a pixel (cart-pole's rails at 64x64)
mostly vanish (``supersample=2`` averages 2x2 rays per pixel, at 4x the cost).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from wmjax.envs.base import State
from wmjax.envs.wrappers import RegisteredEnv
from wmjax.nets.cnn import num_stages
from wmjax.types import Spec

__all__ = [
    "PixelEnv", "pixel_wrapper", "make_renderer", "camera_names", "resolve_camera",
    "check_image_size",
    "ray_plane", "ray_sphere", "ray_capsule", "ray_ellipsoid", "ray_cylinder", "ray_box",
]

_PLANE = int(mujoco.mjtGeom.mjGEOM_PLANE)
_SPHERE = int(mujoco.mjtGeom.mjGEOM_SPHERE)
_CAPSULE = int(mujoco.mjtGeom.mjGEOM_CAPSULE)
_ELLIPSOID = int(mujoco.mjtGeom.mjGEOM_ELLIPSOID)
_CYLINDER = int(mujoco.mjtGeom.mjGEOM_CYLINDER)
_BOX = int(mujoco.mjtGeom.mjGEOM_BOX)
_TYPE_NAMES = {int(v): k.removeprefix("mjGEOM_").lower()
               for k, v in mujoco.mjtGeom.__members__.items()}

_MINVAL = 1e-12           # a denominator below this is treated as zero (float32 rays)
_VISIBLE_GROUPS = 3       # MuJoCo's default mjvOption shows geom groups 0, 1 and 2
_DEFAULT_RGBA = np.array([0.5, 0.5, 0.5, 1.0], np.float32)   # a geom's rgba when none is given
_MIP_BASE = 256           # plane textures are resampled to 256x256, then halved per mip level


# ---------------------------------------------------------------------------------------------
# Ray-geom intersections in the geom's own frame. Each takes the geom's ``size`` (MuJoCo's
# meaning for that type), the ray's origin ``pnt`` and direction ``vec``, each with the 3
# components first (``[3]`` for one ray, or ``[3, ...]`` for any batch that broadcasts: the
# renderer passes ``[3, G]`` sizes and origins with ``[3, R, G]`` directions, components apart,
# which vectorises far better on CPUs than ``[..., 3]``), and returns the distance along ``vec``
# (in units of |vec|) to the first surface in front of the origin, or ``inf`` for a miss. The
# origin is taken to be outside the geom (the camera, or a point just off a surface), so the
# nearer root of each quadratic is the one that counts. Capsules and cylinders test their
# round side first and then only the end that the side's hit lies beyond (as Inigo Quilez's
# intersectors): half the work of testing both ends.


def _safe_div(x, y):
  return x / jnp.where(jnp.abs(y) < _MINVAL, jnp.where(y < 0, -_MINVAL, _MINVAL), y)


def _dot(a, b):
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _front(t):
  """``t`` where it is a hit in front of the origin, else ``inf``."""
  return jnp.where(t >= 0, t, jnp.inf)


def _round_side(radius, pnt, vec):
  """The nearer root ``t`` for a ray and the infinite cylinder ``x^2 + y^2 = radius^2``,
  whether the ray meets that cylinder at all, and the ``z`` of that root."""
  a = vec[0] ** 2 + vec[1] ** 2
  b = pnt[0] * vec[0] + pnt[1] * vec[1]
  c = pnt[0] ** 2 + pnt[1] ** 2 - radius**2
  det = b * b - a * c
  slanted = a > _MINVAL
  t = _safe_div(-b - jnp.sqrt(jnp.maximum(det, 0.0)), a)
  # A ray along the axis meets the end it comes from: z beyond that end.
  z = jnp.where(slanted, pnt[2] + t * vec[2], jnp.where(pnt[2] > 0, jnp.inf, -jnp.inf))
  return t, slanted & (det >= 0) | ~slanted & (c <= 0), z


def _ray_sphere_at(centre_z, radius, pnt, vec):
  """A sphere of ``radius`` at ``(0, 0, centre_z)``."""
  oz = pnt[2] - centre_z
  a = _dot(vec, vec)
  b = pnt[0] * vec[0] + pnt[1] * vec[1] + oz * vec[2]
  c = pnt[0] ** 2 + pnt[1] ** 2 + oz**2 - radius**2
  det = b * b - a * c
  t = _safe_div(-b - jnp.sqrt(jnp.maximum(det, 0.0)), a)
  return jnp.where(det >= 0, _front(t), jnp.inf)


def ray_plane(size, pnt, vec):
  """A plane ``z = 0`` seen from its front (``+z``) side, within ``|x| <= size[0]``,
  ``|y| <= size[1]`` (a size of 0 or less is unbounded, as MuJoCo draws it)."""
  t = -_safe_div(pnt[2], vec[2])
  within = [(size[i] <= 0) | (jnp.abs(pnt[i] + t * vec[i]) <= size[i]) for i in (0, 1)]
  return jnp.where((vec[2] < -_MINVAL) & (t >= 0) & within[0] & within[1], t, jnp.inf)


def ray_sphere(size, pnt, vec):
  """A sphere of radius ``size[0]`` at the origin."""
  return _ray_sphere_at(0.0, size[0], pnt, vec)


def ray_ellipsoid(size, pnt, vec):
  """An axis-aligned ellipsoid with semi-axes ``size`` (a unit sphere once scaled)."""
  scaled = [pnt[i] / size[i] for i in range(3)], [vec[i] / size[i] for i in range(3)]
  return _ray_sphere_at(0.0, 1.0, *scaled)


def ray_capsule(size, pnt, vec):
  """A capsule along ``z``: radius ``size[0]``, cylinder half-length ``size[1]``, round caps.

  The round side is hit where ``|z| <= half``; otherwise the ray can only enter through the
  half-sphere at the end its side hit lies beyond (or miss).
  """
  radius, half = size[0], size[1]
  t, hit, z = _round_side(radius, pnt, vec)
  t_cap = _ray_sphere_at(jnp.where(z > 0, half, -half), radius, pnt, vec)
  return jnp.where(hit, jnp.where(jnp.abs(z) <= half, _front(t), t_cap), jnp.inf)


def ray_cylinder(size, pnt, vec):
  """A solid cylinder along ``z``: radius ``size[0]``, half-height ``size[1]``, flat caps.

  The round side solves ``|pnt_xy + t vec_xy|^2 = r^2``, kept where ``|z| <= half``;
  otherwise the ray can only enter through the flat cap ``z = +-half`` at the end its side
  hit lies beyond, kept where ``|xy| <= r`` there. (``mjx.ray`` has no cylinders.)
  """
  radius, half = size[0], size[1]
  t, hit, z = _round_side(radius, pnt, vec)
  t_cap = _safe_div(jnp.where(z > 0, half, -half) - pnt[2], vec[2])
  rim = (pnt[0] + t_cap * vec[0]) ** 2 + (pnt[1] + t_cap * vec[1]) ** 2
  t_cap = jnp.where((rim <= radius**2) & (jnp.abs(vec[2]) > _MINVAL), _front(t_cap), jnp.inf)
  return jnp.where(hit, jnp.where(jnp.abs(z) <= half, _front(t), t_cap), jnp.inf)


def ray_box(size, pnt, vec):
  """An axis-aligned box with half-sizes ``size`` (the slab method)."""
  near, far = -jnp.inf, jnp.inf
  for i in range(3):
    inv = _safe_div(1.0, vec[i])
    t0, t1 = (-size[i] - pnt[i]) * inv, (size[i] - pnt[i]) * inv
    near, far = jnp.maximum(near, jnp.minimum(t0, t1)), jnp.minimum(far, jnp.maximum(t0, t1))
  return jnp.where((far >= near) & (far >= 0), jnp.where(near >= 0, near, far), jnp.inf)


_RAY_FNS = {_PLANE: ray_plane, _SPHERE: ray_sphere, _CAPSULE: ray_capsule,
            _ELLIPSOID: ray_ellipsoid, _CYLINDER: ray_cylinder, _BOX: ray_box}


def _normal(geom_type: int, size, q):
  """The outward surface normal (unnormalised) ``[3, ...]`` at the point ``q [3, ...]`` on a
  geom's surface, in the geom's frame; ``size [3, ...]``."""
  zero = jnp.zeros_like(q[0])
  if geom_type == _PLANE:
    return jnp.stack([zero, zero, jnp.ones_like(zero)])
  if geom_type == _SPHERE:
    return q
  if geom_type == _ELLIPSOID:
    return q / jnp.square(size)
  if geom_type == _CAPSULE:   # away from the nearest point of the segment
    return jnp.stack([q[0], q[1], q[2] - jnp.clip(q[2], -size[1], size[1])])
  if geom_type == _CYLINDER:   # the side or a cap, whichever surface q is nearer to
    radial = jnp.sqrt(q[0] ** 2 + q[1] ** 2)
    on_cap = jnp.abs(jnp.abs(q[2]) - size[1]) < jnp.abs(radial - size[0])
    return jnp.stack([jnp.where(on_cap, 0.0, q[0]), jnp.where(on_cap, 0.0, q[1]),
                      jnp.where(on_cap, jnp.sign(q[2]), 0.0)])
  if geom_type == _BOX:   # the face whose slab q is furthest out in
    rel = jnp.abs(q) / size
    x_face = (rel[0] >= rel[1]) & (rel[0] >= rel[2])
    y_face = ~x_face & (rel[1] >= rel[2])
    z_face = ~x_face & ~y_face
    return jnp.stack([jnp.where(x_face, jnp.sign(q[0]), 0.0),
                      jnp.where(y_face, jnp.sign(q[1]), 0.0),
                      jnp.where(z_face, jnp.sign(q[2]), 0.0)])
  raise ValueError(f"no normal for geom type {geom_type}")


def _power(x, exponent):
  """``x ** exponent`` for ``x >= 0``: by repeated squaring when the exponent is a small whole
  number known at trace time (cheaper than ``exp(e log x)`` on CPUs), else ``jnp.power``."""
  if isinstance(exponent, (int, float, np.number)) and float(exponent).is_integer() \
      and 0 <= exponent <= 1024:
    e, out, square = int(exponent), jnp.ones_like(x), x
    while e:
      if e & 1:
        out = out * square
      e >>= 1
      if e:
        square = square * square
    return out
  return jnp.power(x, exponent)


# ---------------------------------------------------------------------------------------------
# The model's static facts, read once with numpy.


def camera_names(mj_model: mujoco.MjModel) -> list[str]:
  """The names of the model's cameras, in index order (``''`` for an unnamed camera)."""
  return [mujoco.mj_id2name(mj_model, mujoco.mjtObj.mjOBJ_CAMERA, i) or ""
          for i in range(mj_model.ncam)]


def resolve_camera(mj_model: mujoco.MjModel, camera: int | str) -> int:
  """The index of ``camera`` (a name or an index) in the model; a clear error listing the
  model's cameras if it has no such camera."""
  names = camera_names(mj_model)
  listing = ", ".join(f"{i}: {n!r}" if n else f"{i}: (unnamed)" for i, n in enumerate(names))
  listing = listing or "none"
  if isinstance(camera, bool) or not isinstance(camera, (int, np.integer, str)):
    raise ValueError(f"camera must be a camera's name or index, got {camera!r}. This model's "
                     f"cameras: {listing}.")
  if isinstance(camera, str):
    if camera in names and camera:
      return names.index(camera)
    raise ValueError(f"camera {camera!r} is not in this model. Its cameras (index: name): "
                     f"{listing}.")
  if not 0 <= int(camera) < len(names):
    raise ValueError(f"camera index {int(camera)} is out of range: this model has "
                     f"{len(names)} camera(s) (index: name): {listing}.")
  return int(camera)


def _geom_name(mj_model, i: int) -> str:
  return mujoco.mj_id2name(mj_model, mujoco.mjtObj.mjOBJ_GEOM, i) or f"geom {i}"


def _rgb_texture_of(mj_model, matid: int) -> int:
  """The RGB texture of material ``matid``, or -1 (``mat_texid`` has one column per texture
  role since MuJoCo 3.2)."""
  if matid < 0 or mj_model.ntex == 0:
    return -1
  texid = np.asarray(mj_model.mat_texid)
  if texid.ndim == 1:
    return int(texid[matid])
  for role in (mujoco.mjtTextureRole.mjTEXROLE_RGB, mujoco.mjtTextureRole.mjTEXROLE_RGBA):
    if int(texid[matid, int(role)]) >= 0:
      return int(texid[matid, int(role)])
  return -1


def _texture_image(mj_model, texid: int) -> np.ndarray:
  """Texture ``texid`` as float32 ``[height, width, 3]`` in ``[0, 1]``, row 0 first in memory."""
  width, height = int(mj_model.tex_width[texid]), int(mj_model.tex_height[texid])
  channels = int(mj_model.tex_nchannel[texid]) if hasattr(mj_model, "tex_nchannel") else 3
  adr = int(mj_model.tex_adr[texid])
  data = np.asarray(mj_model.tex_data[adr:adr + width * height * channels], np.float32)
  image = data.reshape(height, width, channels) / 255.0
  if channels == 1:
    image = np.repeat(image, 3, axis=-1)
  return image[..., :3]


def _box_downsample(image: np.ndarray, factor: int) -> np.ndarray:
  """Averages ``factor x factor`` blocks of ``image [H, W, C]`` (H, W divisible by factor)."""
  if factor <= 1:
    return image
  h, w, c = image.shape
  return image.reshape(h // factor, factor, w // factor, factor, c).mean(axis=(1, 3))


def _checker_colours(image: np.ndarray) -> np.ndarray | None:
  """``[2, 3]``: the colours of a texture that is a 2x2 checkerboard (MuJoCo's ``builtin=
  "checker"``, DM Control's floor), the top-left and bottom-right quadrants' colour first;
  None for any other texture. Thin marks (``mark="edge"``: one-texel lines along the squares'
  edges) are ignored: each quadrant's most common colour must cover 90% of it."""
  h, w, _ = image.shape
  if h % 2 or w % 2 or h < 2:
    return None
  colours = []
  for rows, cols in ((slice(0, h // 2), slice(0, w // 2)), (slice(h // 2, h), slice(w // 2, w)),
                     (slice(0, h // 2), slice(w // 2, w)), (slice(h // 2, h), slice(0, w // 2))):
    texels = image[rows, cols].reshape(-1, 3)
    values, counts = np.unique(texels, axis=0, return_counts=True)
    if counts.max() < 0.9 * len(texels):
      return None
    colours.append(values[np.argmax(counts)])
  if not (np.allclose(colours[0], colours[1]) and np.allclose(colours[2], colours[3])):
    return None
  return np.stack([colours[0], colours[2]]).astype(np.float32)


def _filtered_squares(q, width):
  """The mean over ``[q - width/2, q + width/2]`` of the square wave that is +1 on even unit
  squares (``floor(q)`` even) and -1 on odd ones: a box-filtered checker, exactly."""
  def tri(x):   # its integral, up to sign and scale: slope -1/2 on even squares, +1/2 on odd
    return jnp.abs(x / 2 - jnp.floor(x / 2) - 0.5)
  return 2.0 * (tri(q - width / 2) - tri(q + width / 2)) / width


def _mip_pyramid(image: np.ndarray) -> np.ndarray:
  """``image`` resampled to ``_MIP_BASE`` squared, then halved by 2x2 means down to 1x1: the
  levels flattened one after another, ``[sum_l 4**(8-l), 3]``."""
  h, w, _ = image.shape
  # Area-weighted resampling to the base size: each base texel averages the texels it covers.
  rows = (np.arange(_MIP_BASE * 4) * h // (_MIP_BASE * 4))
  cols = (np.arange(_MIP_BASE * 4) * w // (_MIP_BASE * 4))
  level = _box_downsample(image[rows][:, cols], 4)
  levels = [level]
  while level.shape[0] > 1:
    level = _box_downsample(level, 2)
    levels.append(level)
  return np.concatenate([lv.reshape(-1, 3) for lv in levels]).astype(np.float32)


def _mip_offsets() -> np.ndarray:
  """Where each level of a :func:`_mip_pyramid` starts in its flat array."""
  sizes = [_MIP_BASE >> lv for lv in range(int(math.log2(_MIP_BASE)) + 1)]
  return np.concatenate([[0], np.cumsum([s * s for s in sizes])[:-1]]).astype(np.int32)


_MIP_OFFSETS = _mip_offsets()


def _skybox(mj_model, texels_per_radian: float):
  """The skybox's six faces ``[6, S, S, 3]`` (OpenGL cube-map order +x, -x, +y, -y, +z, -z,
  with OpenGL's ``+y`` as MuJoCo's ``+z``), box-filtered to about one texel per pixel; None if
  the model has no skybox. A skybox that is one image rather than six faces is drawn as its mean
  colour (a face of that colour)."""
  skies = [i for i in range(mj_model.ntex)
           if int(mj_model.tex_type[i]) == int(mujoco.mjtTexture.mjTEXTURE_SKYBOX)]
  if not skies:
    return None
  image = _texture_image(mj_model, skies[0])
  height, width, _ = image.shape
  if height != 6 * width:
    return np.broadcast_to(image.mean(axis=(0, 1)), (6, 1, 1, 3)).astype(np.float32)
  faces = image.reshape(6, width, width, 3)
  # A face spans 90 degrees, about (pi / 2) * texels_per_radian pixels of the camera.
  factor = 1
  while width % (factor * 2) == 0 and width / factor > (math.pi / 2) * texels_per_radian:
    factor *= 2
  return np.stack([_box_downsample(f, factor) for f in faces]).astype(np.float32)


def _light_facts(mj_model):
  """Per active light, as numpy arrays: whether it is directional or a spot (else a point
  light), its mode, body, target body, position and direction, colours, attenuation, cone and
  whether it casts shadows."""
  active = np.asarray(mj_model.light_active, bool)
  ids = np.nonzero(active)[0]
  if hasattr(mj_model, "light_type"):
    kinds = np.asarray(mj_model.light_type, np.int32)[ids]
    directional = kinds == int(mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
    spot = kinds == int(mujoco.mjtLightType.mjLIGHT_SPOT)
  else:   # MuJoCo before 3.3: a flag for directional lights; the others are spots
    directional = np.asarray(mj_model.light_directional, bool)[ids]
    spot = ~directional
  return {
      "directional": directional, "spot": spot,
      "mode": np.asarray(mj_model.light_mode, np.int32)[ids],
      "body": np.asarray(mj_model.light_bodyid, np.int32)[ids],
      "target": np.asarray(mj_model.light_targetbodyid, np.int32)[ids],
      "pos": np.asarray(mj_model.light_pos, np.float32)[ids],
      "dir": np.asarray(mj_model.light_dir, np.float32)[ids],
      "pos0": np.asarray(mj_model.light_pos0, np.float32)[ids],
      "poscom0": np.asarray(mj_model.light_poscom0, np.float32)[ids],
      "dir0": np.asarray(mj_model.light_dir0, np.float32)[ids],
      "ambient": np.asarray(mj_model.light_ambient, np.float32)[ids],
      "diffuse": np.asarray(mj_model.light_diffuse, np.float32)[ids],
      "specular": np.asarray(mj_model.light_specular, np.float32)[ids],
      "attenuation": np.asarray(mj_model.light_attenuation, np.float32)[ids],
      "cutoff": np.asarray(mj_model.light_cutoff, np.float32)[ids],
      "castshadow": np.asarray(mj_model.light_castshadow, bool)[ids],
      "exponent": np.asarray(mj_model.light_exponent, np.float32)[ids],
  }


def _light_pose(lights, i: int, data):
  """World position and direction of active light ``i`` from MJX ``data`` (what
  ``mj_camlight`` computes for lights; MJX data does not carry it)."""
  body, mode = int(lights["body"][i]), int(lights["mode"][i])
  xpos, xmat = data.xpos[body], data.xmat[body]
  pos = xpos + xmat @ lights["pos"][i]
  direction = xmat @ lights["dir"][i]
  if mode == int(mujoco.mjtCamLight.mjCAMLIGHT_TRACK):
    pos, direction = xpos + lights["pos0"][i], jnp.asarray(lights["dir0"][i])
  elif mode == int(mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM):
    pos = data.subtree_com[body] + lights["poscom0"][i]
    direction = jnp.asarray(lights["dir0"][i])
  elif mode in (int(mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY),
                int(mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODYCOM)) and lights["target"][i] >= 0:
    target = int(lights["target"][i])
    goal = (data.xpos[target] if mode == int(mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY)
            else data.subtree_com[target])
    direction = goal - pos
  return pos, direction / jnp.maximum(jnp.linalg.norm(direction), _MINVAL)


def _sample_cube(faces, dirs):
  """Colours ``[3, R]`` of the cube map ``faces [6, S, S, 3]`` (nearest texel) along world
  directions ``dirs [3, R]`` (MuJoCo's ``z`` up: OpenGL's ``(x, y, z)`` is MuJoCo's
  ``(x, z, -y)``)."""
  gx, gy, gz = dirs[0], dirs[2], -dirs[1]
  ax, ay, az = jnp.abs(gx), jnp.abs(gy), jnp.abs(gz)
  major_x = (ax >= ay) & (ax >= az)
  major_y = ~major_x & (ay >= az)
  # OpenGL's table: face, then (sc, tc, ma) for each major axis.
  face = jnp.where(major_x, jnp.where(gx > 0, 0, 1),
                   jnp.where(major_y, jnp.where(gy > 0, 2, 3), jnp.where(gz > 0, 4, 5)))
  sc = jnp.where(major_x, -jnp.sign(gx) * gz, jnp.where(major_y, gx, jnp.sign(gz) * gx))
  tc = jnp.where(major_x, -gy, jnp.where(major_y, jnp.sign(gy) * gz, -gy))
  ma = jnp.maximum(jnp.where(major_x, ax, jnp.where(major_y, ay, az)), _MINVAL)
  size = faces.shape[1]
  s = jnp.clip(((sc / ma + 1.0) * 0.5 * size).astype(jnp.int32), 0, size - 1)
  t = jnp.clip(((tc / ma + 1.0) * 0.5 * size).astype(jnp.int32), 0, size - 1)
  flat = jnp.asarray(faces.reshape(-1, 3).T)                   # [3, 6 * S * S]
  return flat[:, (face * size + t) * size + s]


# ---------------------------------------------------------------------------------------------
# The renderer.


def make_renderer(mj_model: mujoco.MjModel, camera: int | str = 0, height: int = 64,
                  width: int = 64, *, dtype=jnp.float32, shadows: bool = True,
                  supersample: int = 1, tile_rays: int | None = None) -> Callable:
  """``render(data) -> [height, width, 3]``: the scene of MJX ``data`` from ``camera``.

  Args:
    mj_model: the ``mujoco.MjModel`` the MJX data belongs to (read once, with numpy: geoms,
      materials, textures, lights, cameras).
    camera: the camera's name or index in the model (``cam_xpos``, ``cam_xmat``,
      ``cam_fovy``).
    height, width: the image size in pixels (any positive size).
    dtype: ``jnp.float32`` (values in ``[0, 1]``) or ``jnp.uint8`` (``0..255``).
    shadows: as MuJoCo's renderer with its shadow flag on (the default there and in DM
      Control): a light that casts shadows lights only what no geom hides from it (one shadow
      ray per pixel and such light: about 1.4x the cost), in a pass of its own. False: every
      light lights everything, in one pass, as with MuJoCo's shadow flag off.
    supersample: rays per pixel along each axis, averaged (1: one ray through each pixel's
      centre; 2: 2x2 rays, smoother edges at 4x the cost).
    tile_rays: trace the rays in tiles of at most this many, one tile after another (a
      ``lax.map``), so that a large vmapped batch of frames works in cache: on a 2-core CPU,
      tiles of 512 gave 1.15x the frames/s at 64 envs but 0.4x at one env. None (the default):
      all rays at once.

  Returns:
    ``render(data)``: pure JAX, jittable and vmappable over any leading axes of ``data``
    (vmap once per axis). ``data`` needs ``geom_xpos``, ``geom_xmat``, ``cam_xpos``,
    ``cam_xmat``, ``xpos``, ``xmat`` and ``subtree_com``, as after ``mjx.forward`` or
    ``mjx.step``.

  Raises:
    ValueError: a camera the model lacks (listing those it has), a size that is not a
      positive integer, an unknown dtype, or a visible geom of a type this renderer cannot draw
      (meshes, height fields, SDFs), all before anything is traced or compiled.
  """
  cam = resolve_camera(mj_model, camera)
  for name, value in (("height", height), ("width", width), ("supersample", supersample)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  height, width, supersample = int(height), int(width), int(supersample)
  dtype = jnp.dtype(dtype)
  if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.uint8)):
    raise ValueError(f"dtype must be float32 (values in [0, 1]) or uint8, got {dtype}")
  scene = _Scene(mj_model)

  # Camera rays in the camera frame: MuJoCo's pinhole, fovy vertical, looking down -z.
  half_h = math.tan(math.radians(float(mj_model.cam_fovy[cam])) / 2)
  half_w = half_h * width / height
  rows, cols = height * supersample, width * supersample
  ys = half_h * (1 - 2 * (np.arange(rows) + 0.5) / rows)
  xs = half_w * (2 * (np.arange(cols) + 0.5) / cols - 1)
  grid_x, grid_y = np.meshgrid(xs, ys)
  cam_dirs = np.stack([grid_x, grid_y, -np.ones_like(grid_x)], -1).reshape(-1, 3)
  cam_dirs = (cam_dirs / np.linalg.norm(cam_dirs, axis=-1, keepdims=True)).astype(np.float32)
  pixel_angle = 2 * half_h / rows          # radians per (super)pixel at the image centre
  if tile_rays is None:
    tile_rays = rows * cols
  if isinstance(tile_rays, bool) or not isinstance(tile_rays, (int, np.integer)) \
      or tile_rays < 1:
    raise ValueError(f"tile_rays must be a positive integer or None, got {tile_rays!r}")
  tiles = -(-(rows * cols) // int(tile_rays))   # the fewest equal tiles of at most tile_rays
  while (rows * cols) % tiles:
    tiles += 1
  sky = _skybox(mj_model, 1.0 / pixel_angle)

  def render(data) -> jax.Array:
    """The ``[height, width, 3]`` image of one MJX ``data`` (vmap for batches)."""
    origin, cam_mat = data.cam_xpos[cam], data.cam_xmat[cam]      # [3], [3, 3]
    xpos, xmat = data.geom_xpos[scene.geom_ids], data.geom_xmat[scene.geom_ids]
    pnt = jnp.einsum("gji,gj->ig", xmat, origin - xpos)          # [3, G] in the geom frames
    poses = [_light_pose(scene.lights, i, data) for i in range(len(scene.lights["mode"]))]

    def trace(tile_dirs):
      """Colours ``[3, r]`` of the rays ``tile_dirs [3, r]`` (camera frame)."""
      dirs = cam_mat @ tile_dirs                                   # [3, r] world directions
      # Written as products that XLA fuses into the intersections, not as a matrix product
      # whose [3, r, G] result would be written out.
      vec = _rotate_into(xmat, dirs)                               # [3, r, G]
      dist = scene.distances(pnt, vec)                             # [r, G]
      best = jnp.argmin(dist, axis=-1)                             # [r] index into the geoms
      t = jnp.min(dist, axis=-1)
      hit = jnp.isfinite(t)
      t = jnp.where(hit, t, 0.0)
      point = origin[:, None] + t * dirs                           # [3, r] world
      rot = xmat.reshape(-1, 9)[best].T                            # [9, r] geom -> world
      rel = point - xpos.T[:, best]
      local = jnp.stack([sum(rot[3 * j + i] * rel[j] for j in range(3)) for i in range(3)])
      n_local = scene.normals(best, local)
      normal = jnp.stack([sum(rot[3 * i + j] * n_local[j] for j in range(3)) for i in range(3)])
      normal = normal / jnp.maximum(jnp.sqrt(_dot(normal, normal)), _MINVAL)
      facing = _dot(normal, dirs)
      normal = jnp.where(facing > 0, -normal, normal)              # seen from inside: flip
      tex = None
      if scene.textured:
        # A pixel's footprint along the most stretched direction filters the texture.
        footprint = t * pixel_angle / jnp.maximum(jnp.abs(facing), 0.05)
        tex = scene.texture(best, local, footprint)
      lit = scene.shade(poses, best, point, normal, dirs, cam_mat[:, 2], tex, xpos, xmat,
                        shadows)
      background = _sample_cube(sky, dirs) if sky is not None else jnp.zeros_like(dirs)
      return jnp.where(hit, lit, background)

    if tiles == 1:
      image = trace(jnp.asarray(cam_dirs.T))                       # [3, R]
    else:   # one tile of rays after another: a batch of frames stays in cache on CPUs
      tiled = jnp.asarray(cam_dirs.T.reshape(3, tiles, -1).transpose(1, 0, 2))
      image = jnp.moveaxis(jax.lax.map(trace, tiled), 0, 1).reshape(3, -1)
    image = image.reshape(3, height, supersample, width, supersample).mean(axis=(2, 4))
    image = jnp.moveaxis(image, 0, -1)
    if dtype == jnp.uint8:
      return jnp.round(image * 255.0).astype(jnp.uint8)
    return image.astype(jnp.float32)

  return render


class _Scene:
  """What the renderer reads from a model once: visible geoms grouped by type, their colours
  and materials, plane textures, lights. Its methods are the per-frame JAX work."""

  def __init__(self, mj_model: mujoco.MjModel):
    rgba = np.asarray(mj_model.geom_rgba, np.float32).copy()
    matid = np.asarray(mj_model.geom_matid, np.int32)
    # mjv_updateScene: a geom with a material and the default rgba takes the material's rgba.
    use_mat = (matid >= 0) & np.all(rgba == _DEFAULT_RGBA, axis=1)
    rgba[use_mat] = np.asarray(mj_model.mat_rgba, np.float32)[matid[use_mat]]
    group = np.asarray(mj_model.geom_group)
    visible = (group >= 0) & (group < _VISIBLE_GROUPS) & (rgba[:, 3] > 0)
    types = np.asarray(mj_model.geom_type, np.int32)
    unsupported = [i for i in np.nonzero(visible)[0] if int(types[i]) not in _RAY_FNS]
    if unsupported:
      listed = ", ".join(f"{_geom_name(mj_model, i)!r} ({_TYPE_NAMES[int(types[i])]})"
                         for i in unsupported[:8])
      raise ValueError(
          "this renderer draws planes, spheres, capsules, ellipsoids, cylinders and boxes; the "
          f"model has visible geoms of other types: {listed}. Put them in geom group 3 or "
          "above (hidden), or give them rgba alpha 0.")
    order = [i for t in _RAY_FNS for i in np.nonzero(visible & (types == t))[0]]
    if not order:
      raise ValueError("the model has no visible geoms (groups 0-2 with alpha > 0) to render")
    self.geom_ids = np.asarray(order, np.int32)                        # [G]
    self.types = types[self.geom_ids]
    self.spans = [(t, np.nonzero(self.types == t)[0]) for t in _RAY_FNS]
    self.spans = [(t, pos) for t, pos in self.spans if pos.size]      # positions in [G]
    self.sizes = np.asarray(mj_model.geom_size, np.float32)[self.geom_ids]   # [G, 3]
    self.rgb = rgba[self.geom_ids, :3]                                 # [G, 3]
    gmat = matid[self.geom_ids]
    self.specular = np.full(len(order), 0.5, np.float32)   # MuJoCo's defaults without material
    self.shininess = np.full(len(order), 0.5, np.float32)
    self.emission = np.zeros(len(order), np.float32)
    has = gmat >= 0
    if has.any():
      self.specular[has] = np.asarray(mj_model.mat_specular)[gmat[has]]
      self.shininess[has] = np.asarray(mj_model.mat_shininess)[gmat[has]]
      self.emission[has] = np.asarray(mj_model.mat_emission)[gmat[has]]
    self._init_textures(mj_model, gmat)
    self._init_lights(mj_model)

  def _init_textures(self, mj_model, gmat):
    """The 2-D textures on planes (checkerboards' two colours, or mip pyramids), and each
    plane's texture coordinates."""
    images, index = [], {}
    self.tex_of = np.full(len(self.geom_ids), -1, np.int32)
    self.tex_scale = np.zeros((len(self.geom_ids), 2), np.float32)   # coordinates per metre
    self.tex_origin = np.zeros((len(self.geom_ids), 2), np.float32)  # where they are 0
    for k, g in enumerate(self.geom_ids):
      if int(mj_model.geom_type[g]) != _PLANE or gmat[k] < 0:
        continue
      texid = _rgb_texture_of(mj_model, int(gmat[k]))
      if texid < 0 or int(mj_model.tex_type[texid]) != int(mujoco.mjtTexture.mjTEXTURE_2D):
        continue
      if texid not in index:
        index[texid] = len(images)
        images.append(_texture_image(mj_model, texid))
      self.tex_of[k] = index[texid]
      # As MuJoCo draws planes (render_gl3.c, measured against its frames): texture
      # coordinates (s, t) = 0.5 * repeat * (x, -y) from the plane's corner (-size_x, size_y),
      # x and y in metres (texuniform) or in half-sizes.
      repeat = np.asarray(mj_model.mat_texrepeat[gmat[k]], np.float32)
      bounded = self.sizes[k, :2] > 0
      if not bool(mj_model.mat_texuniform[gmat[k]]):
        repeat = repeat / np.where(bounded, self.sizes[k, :2], 1.0)
      self.tex_scale[k] = 0.5 * repeat * np.array([1.0, -1.0], np.float32)
      self.tex_origin[k] = np.where(bounded, self.sizes[k, :2], 0.0) * np.array([-1.0, 1.0])
    # Checkerboards (DM Control's floors) are evaluated in closed form, box-filtered over each
    # pixel's footprint: no texture lookups, which are slow on CPUs. Other textures are looked
    # up in mip pyramids.
    checkers = [_checker_colours(image) for image in images]
    self.checkers = np.stack(checkers) if images and all(
        c is not None for c in checkers) else None                    # [T, 2, 3]
    self.textures = None if not images or self.checkers is not None else np.stack(
        [_mip_pyramid(image) for image in images])                    # [T, texels, 3]
    self.textured = bool(images)

  def _init_lights(self, mj_model):
    self.lights = _light_facts(mj_model)
    head = mj_model.vis.headlight
    self.headlight = None
    if bool(head.active):   # a directional light along the camera's view, never shadowed
      self.headlight = tuple(np.asarray(x, np.float32)
                             for x in (head.ambient, head.diffuse, head.specular))

  def distances(self, pnt, vec):
    """Ray distances ``[R, G]`` to every visible geom: origins ``pnt`` ``[3, G]`` (one for all
    rays) or ``[3, R, G]``, directions ``vec [3, R, G]``, in the geoms' frames, components
    first; ``inf`` for misses."""
    out = []
    for geom_type, pos in self.spans:   # each type's geoms are contiguous: slices, no gathers
      span = slice(int(pos[0]), int(pos[-1]) + 1)
      size = jnp.asarray(self.sizes[span].T)                       # [3, g]
      out.append(_RAY_FNS[geom_type](size, pnt[..., span], vec[..., span]))
    return jnp.concatenate(out, axis=-1)

  def normals(self, best, local):
    """Unnormalised normals ``[3, R]`` in the frames of the geoms ``best [R]`` hit at
    ``local [3, R]``."""
    size = jnp.asarray(self.sizes.T)[:, best]
    kind = jnp.asarray(self.types)[best]
    normal = jnp.zeros_like(local)
    for geom_type, _ in self.spans:
      normal = jnp.where(kind == geom_type, _normal(geom_type, size, local), normal)
    return normal

  def texture(self, best, local, footprint):
    """Texture colours ``[3, R]`` (ones for untextured geoms) at ``local [3, R]`` on geoms
    ``best``, filtered for a pixel that covers ``footprint [R]`` metres (checkerboards in
    closed form, other textures through their mip pyramids)."""
    tex = jnp.asarray(self.tex_of)[best]
    scale = jnp.asarray(self.tex_scale.T)[:, best]
    origin = jnp.asarray(self.tex_origin.T)[:, best]
    u = (local[0] - origin[0]) * scale[0]
    v = (local[1] - origin[1]) * scale[1]
    if self.checkers is not None:   # squares of half a texture: 2 per unit of u and v
      width = 2.0 * footprint * jnp.maximum(jnp.abs(scale[0]), jnp.abs(scale[1])) + 1e-4
      odd = 0.5 - 0.5 * _filtered_squares(2.0 * u, width) * _filtered_squares(2.0 * v, width)
      even_rgb, odd_rgb = (jnp.asarray(self.checkers[:, i].T)[:, jnp.maximum(tex, 0)]
                           for i in (0, 1))
      return jnp.where(tex >= 0, even_rgb + odd * (odd_rgb - even_rgb), 1.0)
    levels = len(_MIP_OFFSETS)
    texels = footprint * jnp.maximum(jnp.abs(scale[0]), jnp.abs(scale[1])) * _MIP_BASE
    level = jnp.clip(jnp.log2(jnp.maximum(texels, 1.0)), 0.0, levels - 1.0)
    lo = jnp.floor(level).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, levels - 1)
    frac = level - lo
    flat = jnp.asarray(self.textures.reshape(-1, 3).T)          # [3, T * texels]
    per_texture = self.textures.shape[1]

    def texel(lv):
      side = _MIP_BASE >> lv
      iu = jnp.clip(jnp.floor((u - jnp.floor(u)) * side), 0, side - 1).astype(jnp.int32)
      iv = jnp.clip(jnp.floor((v - jnp.floor(v)) * side), 0, side - 1).astype(jnp.int32)
      index = jnp.maximum(tex, 0) * per_texture + jnp.asarray(_MIP_OFFSETS)[lv] + iv * side + iu
      return flat[:, index]

    colour = (1 - frac) * texel(lo) + frac * texel(hi)
    return jnp.where(tex >= 0, colour, 1.0)

  def shade(self, poses, best, point, normal, dirs, backward, tex, xpos, xmat, shadows: bool):
    """The colours ``[3, R]`` of the surface ``point``s ``[3, R]`` with unit ``normal``s,
    lit as MuJoCo's renderer lights them: OpenGL's fixed-function model (a local viewer,
    colour material for ambient and diffuse, one colour for all terms, so a texture ``tex
    [3, R]`` modulates the specular highlight too), in passes that are each clamped to
    ``[0, 1]`` and added: one for the emission, the headlight and the lights without shadows,
    then one per shadow-casting light (render_gl3.c's shadow passes); ``poses`` are the
    lights' world (position, direction). The headlight is a
    directional light along the camera's view: it shines towards ``-backward [3]`` (the
    camera's ``z`` axis)."""
    base = jnp.asarray(self.rgb.T)[:, best]                      # [3, R]
    spec = jnp.asarray(self.specular)[best]
    shine = (128.0 * float(self.shininess[0]) if np.all(self.shininess == self.shininess[0])
             else 128.0 * jnp.asarray(self.shininess)[best])
    to_eye = -dirs

    def term(to_light, ambient, diffuse, specular):
      """The colour ``[3, R]`` one light adds at full strength; ``to_light [3, R]``."""
      lambert = _dot(normal, to_light)
      half = to_light + to_eye
      half = half / jnp.maximum(jnp.sqrt(_dot(half, half)), _MINVAL)
      glossy = jnp.where(lambert > 0, jnp.maximum(_dot(normal, half), 0.0), 0.0)
      return ((np.asarray(ambient)[:, None] + jnp.maximum(lambert, 0.0)
               * np.asarray(diffuse)[:, None]) * base
              + _power(glossy, shine) * spec * np.asarray(specular)[:, None])

    passes = [jnp.asarray(self.emission)[best] * base]
    if self.headlight is not None:
      passes[0] = passes[0] + term(backward[:, None], *self.headlight)
    lights = self.lights
    for i, (pos, direction) in enumerate(poses):
      if lights["directional"][i]:
        to_light = jnp.broadcast_to(-direction[:, None], point.shape)
        reach = jnp.full(point.shape[1:], jnp.inf)
        gain = jnp.ones(point.shape[1:])
      else:
        delta = pos[:, None] - point
        reach = jnp.sqrt(_dot(delta, delta))
        to_light = delta / jnp.maximum(reach, _MINVAL)
        a0, a1, a2 = (float(x) for x in lights["attenuation"][i])
        gain = 1.0 / jnp.maximum(a0 + a1 * reach + a2 * reach**2, _MINVAL)
        if lights["spot"][i]:
          cos = -_dot(to_light, direction[:, None])
          cone = _power(jnp.maximum(cos, 0.0), float(lights["exponent"][i]))
          gain = gain * jnp.where(cos >= np.cos(np.deg2rad(lights["cutoff"][i])), cone, 0.0)
      light = term(to_light, lights["ambient"][i], lights["diffuse"][i], lights["specular"][i])
      if shadows and lights["castshadow"][i]:
        gain = gain * self._unoccluded(point + 1e-4 * normal, to_light, reach, xpos, xmat)
        passes.append(gain * light)
      else:
        passes[0] = passes[0] + gain * light
    total = sum(jnp.clip(p, 0.0, 1.0) for p in passes)
    if tex is not None:
      total = total * tex
    return jnp.clip(total, 0.0, 1.0)

  def _unoccluded(self, start, to_light, reach, xpos, xmat):
    """1 where the segment from ``start [3, R]`` towards the light (``to_light [3, R]``,
    ``reach [R]`` long) meets no geom, else 0: one shadow ray per pixel."""
    pnt = (_rotate_into(xmat, start)
           - jnp.einsum("gji,gj->ig", xmat, xpos)[:, None, :])    # [3, R, G]
    vec = _rotate_into(xmat, to_light)
    return (jnp.min(self.distances(pnt, vec), axis=-1) >= reach).astype(jnp.float32)


def _rotate_into(xmat, vectors):
  """``[3, r, G]``: world ``vectors [3, r]`` in the frames of the geoms ``xmat [G, 3, 3]``."""
  return jnp.stack([sum(vectors[j][:, None] * xmat[None, :, j, i] for j in range(3))
                    for i in range(3)])


# ---------------------------------------------------------------------------------------------
# Registered envs seen from a camera.

CNN_MIN_RESOLUTION = 4   # wmjax.nets.cnn's default, which Dreamer's encoder and decoder use
PIXEL_OPTIONS = ("image_size", "camera", "shadows", "supersample")   # make()'s options for these


def check_image_size(image_size) -> tuple[int, int]:
  """``(height, width)`` from an int or a pair, refused unless Dreamer's CNN takes it: at least
  8 pixels a side (:func:`wmjax.nets.cnn.num_stages`; 64x64 as DreamerV3, 84x84 as DrQ)."""
  pair = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else image_size
  if (isinstance(image_size, bool) or not isinstance(pair, (tuple, list)) or len(pair) != 2
      or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair)):
    raise ValueError(f"image_size must be an int or (height, width) of ints, got {image_size!r}")
  height, width = int(pair[0]), int(pair[1])
  try:
    num_stages((height, width, 3), CNN_MIN_RESOLUTION)
  except ValueError as e:
    raise ValueError(f"image_size {(height, width)} cannot be taken by Dreamer's CNN encoder: "
                     f"{e}") from None
  return height, width


def check_no_other_renderer(config_overrides: dict | None) -> None:
  """Refuses MuJoCo Playground's own renderer option (``vision=True``: Madrona, which needs a
  CUDA GPU and the ``madrona_mjx`` package) with what runs instead, before anything is built."""
  if not (config_overrides or {}).get("vision", False):
    return
  backend = jax.default_backend()
  missing = [why for why, bad in (
      (f"this device is {backend}, not a CUDA GPU", backend != "gpu"),
      ("madrona_mjx is not installed", importlib.util.find_spec("madrona_mjx") is None)) if bad]
  where = ("; it cannot run here: " + " and ".join(missing)) if missing else ""
  raise ValueError(
      "config_overrides={'vision': True} asks for MuJoCo Playground's Madrona batch renderer, "
      f"which needs a CUDA GPU and the madrona_mjx package{where}. dmc-pixels/ renders its "
      "own frames with a pure-JAX ray caster on any device: drop 'vision'.")


def pixel_wrapper(*, image_size=(64, 64), camera: int | str = 0, shadows: bool = True,
                  supersample: int = 1) -> Callable[[RegisteredEnv], PixelEnv]:
  """``env -> PixelEnv(env, ...)``, its options checked now, before any env is built (the
  camera, which needs the env's model, is checked when the wrapper is applied)."""
  check_image_size(image_size)
  if not isinstance(shadows, (bool, np.bool_)):
    raise ValueError(f"shadows must be True or False, got {shadows!r}")
  if isinstance(supersample, bool) or not isinstance(supersample, (int, np.integer)) \
      or supersample < 1:
    raise ValueError(f"supersample must be a positive integer, got {supersample!r}")
  if not isinstance(camera, (int, np.integer, str)) or isinstance(camera, bool):
    raise ValueError(f"camera must be a camera's name or index, got {camera!r}")

  def wrap(env: RegisteredEnv) -> PixelEnv:
    return PixelEnv(env, image_size=image_size, camera=camera, shadows=shadows,
                    supersample=supersample)

  return wrap


def _physics(state: State):
  """The MJX data of an env state (MuJoCo Playground's ``data``, brax's ``pipeline_state``)."""
  return state.data if hasattr(state, "data") else state.pipeline_state


class PixelEnv(RegisteredEnv):
  """A registered MJX env seen from one of its model's cameras: observations are rendered
  ``[H, W, 3]`` float32 frames in ``[0, 1]``.

  Each frame is rendered inside ``reset``/``step``, so inside the same jitted program as the
  physics, once per agent step (after the action repeat of the env it wraps, not once per
  repeated physics step). Reward, termination, truncation, episode length and action repeat
  are the wrapped env's. For debugging, ``state.info['vector_obs']`` keeps the wrapped env's
  vector observation and ``state.data`` the true physics state. Made by
  ``wmjax.envs.make("dmc-pixels/<Task>", image_size=(64, 64), camera=0, shadows=True,
  supersample=1)``.
  """

  def __init__(self, env: RegisteredEnv, *, image_size=(64, 64), camera: int | str = 0,
               shadows: bool = True, supersample: int = 1):
    height, width = check_image_size(image_size)
    if not isinstance(shadows, (bool, np.bool_)):
      raise ValueError(f"shadows must be True or False, got {shadows!r}")
    mj_model = env.mj_model
    self.camera = resolve_camera(mj_model, camera)
    self.camera_name = camera_names(mj_model)[self.camera]
    self.image_size = (height, width)
    self.render = make_renderer(mj_model, self.camera, height, width, shadows=bool(shadows),
                                supersample=supersample)
    inner = env.spec
    spec = Spec(obs_shape=(height, width, 3), action_shape=inner.action_shape,
                num_actions=inner.num_actions, action_low=inner.action_low,
                action_high=inner.action_high)
    super().__init__(env, env.name, spec, env.episode_length, env.action_repeat, reward_fn=None)

  def reset(self, rng: jax.Array) -> State:
    return self._observe(self.env.reset(rng))

  def step(self, state: State, action: jax.Array) -> State:
    # The wrapped env steps on its own observation (its scan over repeats carries it).
    return self._observe(self.env.step(state.replace(obs=state.info["vector_obs"]), action))

  def _observe(self, state: State) -> State:
    return state.replace(obs=self.render(_physics(state)),
                         info={**state.info, "vector_obs": state.obs})

  @property
  def observation_size(self) -> tuple[int, int, int]:
    return (*self.image_size, 3)
