"""``--grid name=v1,v2,...``: hyperparameter points (vmapped in one program) and static
combinations (one program each) of a sweep."""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import typing

from wmjax.train.overrides import parse_value

__all__ = ["Grid", "parse_grid", "grid_label"]


@dataclasses.dataclass(frozen=True)
class Grid:
  """A parsed ``--grid``: the hyperparameter points (vmapped) and the static combinations
  (compiled one by one), each a dict field -> value."""

  points: tuple[dict, ...]
  static: tuple[dict, ...]
  hyper_fields: tuple[str, ...]
  static_fields: tuple[str, ...]


def _split_values(text: str, is_tuple: bool = False) -> list[str]:
  """``a,b,c``; tuple-valued settings separate their values with ``|`` (``64,64|128,128``), so
  a tuple setting without ``|`` is one value (``128,128``)."""
  if is_tuple:
    parts = text.split("|")
  else:
    parts = text.split("|") if "|" in text else text.split(",")
  values = [p.strip() for p in parts if p.strip()]
  if not values:
    raise ValueError(f"no values in {text!r}")
  return values


def _unique(values: list) -> list:
  """``values`` without repeats, in order: a repeated value would be a second program (or
  point) with the same label, writing into the same folder."""
  out = []
  for v in values:
    if v not in out:
      out.append(v)
  return out


def parse_grid(items: list[str], config, hyper) -> Grid:
  """Parses ``--grid name=v1,v2,...`` items against a config dataclass and a Hyper NamedTuple.

  A name that is neither gets an error listing both sets of fields (and the close ones).
  """
  config_fields = {f.name for f in dataclasses.fields(config)}
  hints = typing.get_type_hints(type(config))
  hyper_values: dict[str, list[float]] = {}
  static_values: dict[str, list] = {}
  for item in items:
    if "=" not in item:
      raise ValueError(f"--grid takes name=value1,value2,..., got {item!r}")
    name, text = (s.strip() for s in item.split("=", 1))
    if name in hyper_values or name in static_values:
      raise ValueError(f"--grid {name} is given twice")
    try:
      if name in hyper._fields:
        hyper_values[name] = _unique([float(v) for v in _split_values(text)])
      elif name in config_fields:
        default = getattr(config, name)
        is_tuple = isinstance(default, tuple) or "tuple" in str(hints.get(name))
        static_values[name] = _unique([parse_value(v, hints.get(name), default)
                                       for v in _split_values(text, is_tuple)])
      else:
        every = sorted(config_fields | set(hyper._fields))
        close = difflib.get_close_matches(name.split(".")[-1], every, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"--grid {name}: not a field of {type(config).__name__} or {type(hyper).__name__}."
            f"{hint} Hyperparameters (vmapped in one program): {', '.join(hyper._fields)}. "
            f"Static settings (one program per value): {', '.join(sorted(config_fields))}.")
    except ValueError as e:
      raise ValueError(f"--grid {item}: {e}") from e

  def product(values: dict) -> tuple[dict, ...]:
    names = list(values)
    return tuple(dict(zip(names, combo, strict=True)) for combo in itertools.product(
        *(values[n] for n in names)))
  return Grid(points=product(hyper_values), static=product(static_values),
              hyper_fields=tuple(hyper_values), static_fields=tuple(static_values))


def grid_label(d: dict) -> str:
  if not d:
    return "base"
  text = "_".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                  for k, v in d.items())
  return "".join(c if c.isalnum() or c in "=_,.-" else "-" for c in text)
