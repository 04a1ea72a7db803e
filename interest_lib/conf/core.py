"""The machinery under the configuration: where its files are, how YAML is merged into typed
dataclasses, and :class:`Limit`, the range / choice check every setting's limits are written in.

Knows no section or setting by name (those are :mod:`.sections` and :mod:`.validation`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import yaml


def _conf_dir():
    """Where base.yml and the overlays are: $INTEREST_CONF_DIR, else the checkout's conf/, else
    the copy packaged inside the wheel (``interest_lib/_conf``; readable even from a zip on
    ``--py-files``, so ``--env cluster`` never silently falls back to defaults)."""
    if os.environ.get("INTEREST_CONF_DIR"):
        return Path(os.environ["INTEREST_CONF_DIR"])
    checkout = Path(__file__).resolve().parents[2] / "conf"
    if (checkout / "base.yml").is_file():
        return checkout
    from importlib.resources import files

    return files("interest_lib") / "_conf"


CONF_DIR = _conf_dir()
ENVIRONMENTS = ("local", "cluster", "databricks")


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key and source."""


def read_yaml(path) -> dict:
    """A YAML file as a mapping ({} when empty); a syntax error is a :class:`ConfigError`."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of a dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(value: Any, typ: Any, key: str, source: str) -> Any:
    """``value`` as ``typ`` (YAML scalars and ``--set`` strings), or a ConfigError naming the key."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return None if value is None else coerce(value, args[0], key, source)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, (dt.date, dt.datetime)):  # YAML reads 2001-01-01 as a date
            return value.isoformat()
    elif typ is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    raise ConfigError(
        f"{source}: key '{key}' expects {getattr(typ, '__name__', typ)}, got {value!r}"
    )


def merge_into(obj: Any, data: dict, source: str, prefix: str = "") -> None:
    """Apply a (nested) mapping read from ``source`` to the dataclass ``obj`` in place: unknown
    keys and wrong types are ConfigErrors naming the dotted key and the source. A field whose
    value has a ``merge(data, source, prefix)`` method (the ``models`` section) merges itself."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {data!r}")
    ftypes = field_types(type(obj))
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in ftypes:
            known = ", ".join(sorted(ftypes))
            raise ConfigError(f"{source}: unknown key '{path}' (known here: {known})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            merge_into(current, value or {}, source, prefix=f"{path}.")
        elif callable(getattr(current, "merge", None)):
            current.merge(value or {}, source, prefix=f"{path}.")
        elif isinstance(current, dict) and isinstance(value, dict):
            _update(current, _flatten(value) if key == "extra" else value)
        else:
            setattr(obj, key, coerce(value, ftypes[key], path, source))


def _update(current: dict, value: dict) -> None:
    """Nested update: ``--set evaluate.targets.migration.all.ndcg@10=0.2`` changes one entry."""
    for key, item in value.items():
        if isinstance(item, dict) and isinstance(current.get(key), dict):
            current[key] = dict(current[key])
            _update(current[key], item)
        else:
            current[key] = item


def _flatten(data: dict, prefix: str = "") -> dict:
    """Nested mappings as dotted keys: ``--set spark.extra.spark.executor.memory=8g`` arrives as
    {"spark": {"executor": {"memory": "8g"}}} and means {"spark.executor.memory": "8g"}."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def parse_override(text: str) -> dict:
    """``a.b=c`` as the nested mapping {"a": {"b": c}}; the value is parsed as a YAML scalar."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. generate.users=500")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    nested: dict = {}
    node = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


#: A tuple, or a function of the lookup (setting key -> value) returning one: choices kept in a
#: registry or in another setting (the models found in the configuration's folder).
Choices = Union[tuple, Callable[[Callable[[str], Any]], tuple]]


@dataclass(frozen=True)
class Limit:
    """What values one setting accepts: bounds (``ge``, ``gt``, ``le``, ``lt``; a string names
    another setting, e.g. ``le="features.window_days"``), a set of ``choices`` (see :data:`Choices`;
    compared case-insensitively when ``ignore_case``), ``nonempty`` text, and ``or_else``: values also accepted (None,
    URIs...), described for the message. ``why`` is added to the message when refused."""

    ge: Union[float, str, None] = None
    gt: Union[float, str, None] = None
    le: Union[float, str, None] = None
    lt: Union[float, str, None] = None
    choices: Optional[Choices] = None
    ignore_case: bool = False
    nonempty: bool = False
    or_else: Optional[tuple[Callable[[Any], bool], str]] = None
    why: str = ""

    def problem(self, value: Any, lookup: Callable[[str], Any] = lambda key: None) -> Optional[str]:
        """Why ``value`` is refused (``"must be >= 0"``), or None when it is accepted.
        ``lookup`` resolves a bound given as another setting's key."""
        if self.or_else and self.or_else[0](value):
            return None
        why = self._problem(value, lookup)
        if why and self.or_else:
            why += f" (or {self.or_else[1]})"
        return f"{why} ({self.why})" if why and self.why else why

    def _problem(self, value: Any, lookup: Callable[[str], Any]) -> Optional[str]:
        if self.nonempty and not str(value).strip():
            return "must not be empty"
        choices = self.choices(lookup) if callable(self.choices) else self.choices
        if choices is not None:
            probe = value.upper() if self.ignore_case and isinstance(value, str) else value
            if probe not in choices:
                return "allowed: " + (", ".join(map(str, choices)) or "none (nothing registered)")
        for op, bound, ok in ((">=", self.ge, lambda v, b: v >= b), (">", self.gt, lambda v, b: v > b),
                              ("<=", self.le, lambda v, b: v <= b), ("<", self.lt, lambda v, b: v < b)):
            if bound is None:
                continue
            named = f" ({bound})" if isinstance(bound, str) else ""
            bound = lookup(bound) if isinstance(bound, str) else bound
            if value is None or not (value == value and ok(value, bound)):  # NaN fails every bound
                return f"must be {op} {bound:g}{named}"
        return None


def check_limits(obj: Any, limits: dict[str, Limit], prefix: str = "") -> None:
    """Refuse the first setting of ``obj`` outside its limit (keys are dotted paths below
    ``obj``; messages name ``prefix + key``, the value and what is allowed)."""
    def lookup(key: str) -> Any:
        value = obj
        for part in key.split("."):
            value = getattr(value, part)
        return value

    for key, limit in limits.items():
        value = lookup(key)
        why = limit.problem(value, lookup)
        if why:
            raise ConfigError(f"key '{prefix}{key}' is {value!r}: {why}")
