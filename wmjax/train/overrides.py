"""``--set key=value`` overrides onto a frozen config dataclass and a Hyper NamedTuple."""

from __future__ import annotations

import dataclasses
import difflib
import typing

__all__ = ["apply_overrides", "parse_literal", "parse_value", "validate_hyper"]


def parse_value(text: str, annotation, default):
  """Parses ``text`` to the type of a field (by its annotation, else its default's type)."""
  hint = str(annotation)
  if text.lower() in ("none", "null") and ("None" in hint or default is None):
    return None
  if isinstance(default, bool) or hint == "bool":
    if text.lower() in ("1", "true", "yes", "on"):
      return True
    if text.lower() in ("0", "false", "no", "off"):
      return False
    raise ValueError(f"expected true/false, got {text!r}")
  if isinstance(default, tuple) or "tuple" in hint:
    parts = [p for p in text.replace("(", "").replace(")", "").split(",") if p.strip()]
    return tuple(int(p) for p in parts)
  if isinstance(default, int) or hint.startswith("int"):
    return int(text)
  if isinstance(default, float) or "float" in hint:
    return float(text)
  if default is None and "str" not in hint:   # no type to go by (e.g. brax's None defaults)
    return parse_literal(text)
  return text


def parse_literal(text: str):
  """``text`` with no type to go by: ``true`` / ``false``, an int, a float, else the string."""
  low = text.strip().lower()
  if low in ("true", "false"):
    return low == "true"
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return text.strip()


def apply_overrides(config, hyper, sets: list[str]):
  """Returns ``(config, hyper)`` with each ``key=value`` in ``sets`` applied.

  Keys are the fields of the config dataclass or of the Hyper NamedTuple; an unknown key gets
  an error listing the fields (and the close ones).
  """
  config_fields = {f.name: f for f in dataclasses.fields(config)}
  hints = typing.get_type_hints(type(config))
  hyper_fields = list(type(hyper)._fields)
  config_updates, hyper_updates = {}, {}
  for item in sets:
    if "=" not in item:
      raise ValueError(f"--set takes key=value, got {item!r}")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
      if key in config_fields:
        config_updates[key] = parse_value(text.strip(), hints.get(key),
                                          getattr(config, key))
      elif key in hyper_fields:
        hyper_updates[key] = float(text)
      else:
        every = sorted(config_fields) + hyper_fields
        close = difflib.get_close_matches(key, every, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"--set {key}: not a setting.{hint} Settings: {', '.join(sorted(config_fields))}; "
            f"hyperparameters: {', '.join(hyper_fields)}.")
    except ValueError as e:
      raise ValueError(f"--set {item}: {e}") from e
  return dataclasses.replace(config, **config_updates), hyper._replace(**hyper_updates)


def validate_hyper(hyper) -> None:
  """Refuses hyperparameters no run can use: NaN or infinite values, a learning rate (a field
  named ``*lr`` or ``learning_rate``) that is not positive, a discount (``discount``,
  ``gamma``) outside [0, 1], a weight decay, coefficient, threshold or temperature below zero,
  an expectile outside (0, 1)."""
  import math

  for name, value in hyper._asdict().items():
    if value is None:
      continue
    try:
      v = float(value)
    except (TypeError, ValueError):
      continue   # an array of values (a sweep's points are checked one by one)
    if not math.isfinite(v):
      raise ValueError(f"hyperparameter {name}={value}: must be a finite number")
    if (name.endswith("lr") or name == "learning_rate") and v <= 0:
      raise ValueError(f"hyperparameter {name}={value}: a learning rate must be > 0")
    if name in ("discount", "gamma", "lam", "epsilon", "tau", "planner_alpha") and not (
        0.0 <= v <= 1.0):
      raise ValueError(f"hyperparameter {name}={value}: must be in [0, 1]")
    if (name.endswith("temperature") or name in ("sigma_init", "alpha")) and v <= 0:
      raise ValueError(f"hyperparameter {name}={value}: must be > 0")
    if name == "expectile" and not 0.0 < v < 1.0:
      raise ValueError(f"hyperparameter {name}={value}: an expectile must be in (0, 1)")
    if name == "max_weight" and v <= 0:
      raise ValueError(f"hyperparameter {name}={value}: must be > 0")
    if (name in ("weight_decay", "kappa", "threshold", "halt_penalty") or name.endswith("_coef")
        and name != "disagreement_coef") and v < 0:
      raise ValueError(f"hyperparameter {name}={value}: must be >= 0")
