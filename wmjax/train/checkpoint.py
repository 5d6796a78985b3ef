"""Orbax checkpoints of a whole training state (a pytree of arrays), saved asynchronously.

A checkpoint can be unusable: a file truncated, overwritten or deleted, or a step folder whose
save never finished (a process killed during an asynchronous save leaves orbax's
``<step>.orbax-checkpoint-tmp`` folder, which orbax already ignores; a step folder without the
marks orbax writes when it commits one, ``commit_success.txt`` and the commit time in
``_CHECKPOINT_METADATA``, is treated the same). :meth:`Checkpointer.restore` then falls back to
the newest checkpoint that restores, with a :class:`CheckpointFallbackWarning` naming each step
skipped, why, and the step used; if none restores it raises :class:`UnrestorableCheckpointError`
(it never starts afresh by itself). The steps skipped are set aside as ``<step>.bad`` (kept for
inspection) when this checkpointer next saves, since the run will write those steps again.

Corruption is found where orbax or TensorStore fail to read a checkpoint: data that still
decodes (a flipped bit inside an array's bytes) is not detected, as orbax keeps no checksums.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import pathlib
import warnings

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from jax.sharding import SingleDeviceSharding

__all__ = ["Checkpointer", "CheckpointFallbackWarning", "UnrestorableCheckpointError",
           "CheckpointLayoutError"]

# What orbax writes into a step folder when it commits it (orbax.checkpoint._src.path.atomicity).
_COMMIT_FILE = "commit_success.txt"
_STEP_METADATA = "_CHECKPOINT_METADATA"


class CheckpointFallbackWarning(UserWarning):
  """The latest checkpoint(s) could not be restored; an earlier one was used."""


class UnrestorableCheckpointError(FileNotFoundError):
  """Checkpoints exist but none of them can be restored."""


class CheckpointLayoutError(ValueError):
  """The checkpoints hold a training state of another layout than the one being restored: a run
  written by another version of wmjax (or of its agent)."""


def _paths(tree) -> dict[str, tuple]:
  """``{path: shape}`` of a pytree's leaves, paths written alike for NamedTuple fields, dict keys
  and sequence indices (as orbax's metadata writes them)."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    parts = []
    for k in path:
      for attr in ("name", "key", "idx"):
        if hasattr(k, attr):
          parts.append(str(getattr(k, attr)))
          break
    out["/".join(parts)] = tuple(getattr(leaf, "shape", ()))
  return out


@contextlib.contextmanager
def _quiet(logger: str):
  """Holds back ``logger``'s messages below ERROR inside the block."""
  log = logging.getLogger(logger)
  level = log.level
  log.setLevel(logging.ERROR)
  try:
    yield
  finally:
    log.setLevel(level)


def _layout_difference(step_dir: pathlib.Path, abstract) -> str | None:
  """How the state saved in ``step_dir`` differs in layout from ``abstract``, or None (also
  when the saved layout cannot be read: the restore itself then says what is wrong)."""
  try:
    # The item folder has no step metadata of its own (that is one level up), and orbax
    # warns of it on every read: the warning says nothing to a user, so it is held back here.
    with _quiet("absl"):
      metadata = ocp.StandardCheckpointer().metadata(step_dir / "default")
    tree = getattr(metadata, "item_metadata", metadata)
    saved = _paths(getattr(tree, "tree", tree))
  except Exception:  # no readable metadata: nothing to compare
    return None
  if not saved:
    return None
  wanted = _paths(_fill_empty(abstract))
  only_saved = sorted(set(saved) - set(wanted))
  missing = sorted(set(wanted) - set(saved))
  shapes = sorted(p for p in set(saved) & set(wanted) if tuple(saved[p]) != wanted[p])
  if not (only_saved or missing or shapes):
    return None
  def listed(paths):
    return ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
  parts = []
  if missing:
    parts.append(f"fields this version expects but the checkpoint lacks: {listed(missing)}")
  if only_saved:
    parts.append(f"fields only in the checkpoint: {listed(only_saved)}")
  if shapes:
    parts.append("other shapes: " + listed([f"{p} {tuple(saved[p])} (now {wanted[p]})"
                                             for p in shapes]))
  return "; ".join(parts)


def _empty(x) -> bool:
  return hasattr(x, "shape") and math.prod(x.shape) == 0


def _fill_empty(tree):
  """Orbax cannot save zero-size arrays: each is stored as one element of its dtype instead."""
  def fill(x):
    if not _empty(x):
      return x
    if isinstance(x, jax.ShapeDtypeStruct):
      return jax.ShapeDtypeStruct((1,), x.dtype)
    return jnp.zeros((1,), x.dtype)
  return jax.tree.map(fill, tree)


def _unfinished(step_dir: pathlib.Path) -> str | None:
  """Why ``step_dir`` is a save that never committed, or None if it looks committed.

  Orbax writes ``_CHECKPOINT_METADATA`` (with the start time) first and, on commit, adds the
  commit time to it and writes ``commit_success.txt``. A folder with neither mark is unfinished;
  one without ``_CHECKPOINT_METADATA`` at all is left for the restore itself to judge.
  """
  if not step_dir.is_dir():
    return "its folder is missing"
  if (step_dir / _COMMIT_FILE).exists():
    return None
  meta = step_dir / _STEP_METADATA
  if not meta.exists():
    return None
  try:
    committed = json.loads(meta.read_text()).get("commit_timestamp_nsecs") is not None
  except (OSError, ValueError, AttributeError):
    committed = False
  return None if committed else (f"unfinished save (no {_COMMIT_FILE} and no commit time in "
                                 f"{_STEP_METADATA})")


def _describe(error: BaseException) -> str:
  """A one-line account of a restore error: the innermost cause (TensorStore's outer message is
  a page of array spec saying little)."""
  inner, seen = error, {id(error)}
  while (nxt := inner.__cause__ or inner.__context__) is not None and id(nxt) not in seen:
    inner = nxt
    seen.add(id(inner))
  text = " ".join(str(inner).split())
  return f"{type(inner).__name__}: {text[:300]}{' ...' if len(text) > 300 else ''}"


class Checkpointer:
  """Keeps the last ``max_to_keep`` good checkpoints under ``directory``, by iteration."""

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 2):
    self.directory = pathlib.Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)
    self._skipped: dict[int, str] = {}   # steps restore() found bad: step -> reason

  def save(self, step: int, state) -> None:
    if self._skipped:
      self._set_aside_skipped()
    self._manager.save(step, args=ocp.args.StandardSave(_fill_empty(state)))

  def latest_step(self) -> int | None:
    """The newest step on disk, whether or not it restores (see :meth:`restore`)."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  @property
  def skipped_steps(self) -> dict[int, str]:
    """Steps the last :meth:`restore` skipped as unrestorable, with the reason."""
    return dict(self._skipped)

  def restore(self, abstract_state, step: int | None = None, sharding=None):
    """Restores ``step`` into the structure of ``abstract_state``: ``(step, state)``.

    Arrays land where ``abstract_state``'s leaves say (their ``.sharding``), else on
    ``sharding`` (a ``jax.sharding.Sharding`` for every leaf, e.g. the run axis split over a
    mesh), else on the first local device: never on the devices the checkpoint was saved from,
    so a run saved split over several devices restores in a process with other devices (a
    ``wmjax eval`` of a sweep's run, or ``--resume`` with another ``--devices``).

    With ``step`` None, restores the newest checkpoint that restores: each newer one that is
    unfinished or fails to read is skipped with a :class:`CheckpointFallbackWarning`, and the
    step returned is the one actually restored. Raises :class:`UnrestorableCheckpointError` if
    there are checkpoints but none restores (or the ``step`` asked for does not), and
    FileNotFoundError if there is none.
    """
    self._manager.wait_until_finished()   # a save of this process still in flight
    steps = [step] if step is not None else sorted(self._manager.all_steps(), reverse=True)
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    target = sharding if sharding is not None else SingleDeviceSharding(jax.local_devices()[0])

    def placed(x):
      x = ocp.utils.to_shape_dtype_struct(x)
      if getattr(x, "sharding", None) is None:
        x = jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=target)
      return x
    abstract = jax.tree.map(placed, abstract_state)
    skipped: dict[int, str] = {}
    layouts: dict[int, str] = {}
    for candidate in steps:
      reason = _unfinished(self.directory / str(candidate))
      if reason is None:
        layout = _layout_difference(self.directory / str(candidate), abstract)
        if layout is not None:
          layouts[candidate] = reason = f"another layout ({layout})"
      if reason is None:
        try:
          restored = self._manager.restore(
              candidate, args=ocp.args.StandardRestore(_fill_empty(abstract)))
        except Exception as e:  # any failure to read means this checkpoint is unusable
          reason = _describe(e)
        else:
          self._skipped = skipped
          if skipped:
            warnings.warn(self._fallback_message(skipped, candidate),
                          CheckpointFallbackWarning, stacklevel=2)
          # Zero-size arrays (e.g. MJX's actuator activations of a model without any) come back
          # empty.
          return candidate, jax.tree.map(
              lambda a, r: jnp.zeros(a.shape, a.dtype) if _empty(a) else r, abstract, restored)
      skipped[candidate] = reason
    self._skipped = skipped if step is None else {}
    if layouts and set(layouts) == set(skipped):
      newest = max(layouts)
      raise CheckpointLayoutError(
          f"the checkpoints in {self.directory} hold a training state of another layout than "
          f"this version of wmjax builds for this run ({layouts[newest]}): the run was written "
          "by an earlier version (or with other settings), and cannot be resumed or evaluated "
          "by this one. Nothing was changed.")
    lines = "\n".join(f"  step {s}: {r}" for s, r in skipped.items())
    if step is not None:
      raise UnrestorableCheckpointError(
          f"checkpoint step {step} in {self.directory} cannot be restored:\n{lines}")
    raise UnrestorableCheckpointError(
        f"no checkpoint in {self.directory} can be restored:\n{lines}\nNothing was changed. To "
        f"start the run afresh, move {self.directory} aside (or delete it) and resume again; to "
        "keep its progress, put a good copy of a checkpoint there.")

  def _fallback_message(self, skipped: dict[int, str], used: int) -> str:
    lines = "; ".join(f"step {s}: {r}" for s, r in skipped.items())
    names = ", ".join(f"{s}.bad" for s in sorted(skipped))
    return (f"checkpoint(s) {sorted(skipped)} in {self.directory} cannot be restored ({lines}); "
            f"restored step {used} instead. The bad step folder(s) are kept as {names} when "
            "the run saves those steps again.")

  def _set_aside_skipped(self) -> None:
    """Renames the step folders :meth:`restore` skipped to ``<step>.bad`` (orbax ignores such
    names), so that the run can save those steps again."""
    self._manager.wait_until_finished()
    for step in sorted(self._skipped):
      source = self.directory / str(step)
      if not source.exists():
        continue
      target = self.directory / f"{step}.bad"
      n = 1
      while target.exists():
        target = self.directory / f"{step}.bad{n}"
        n += 1
      source.rename(target)
    self._skipped = {}
    self._manager.reload()

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
