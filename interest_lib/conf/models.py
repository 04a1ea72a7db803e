"""The model registry and the ``models`` section of the configuration.

A model is one module and one YAML file, both named after it:

- ``interest_lib/models/<name>.py`` defines ``Model`` (a torch module whose ``task`` attribute is
  ``migration`` or ``evolution``), ``Params`` (a dataclass of its hyper-parameters whose fields
  document themselves) and, optionally, ``LIMITS`` (param -> :class:`~interest_lib.conf.core.Limit`);
- ``conf/models/<name>.yml`` holds its defaults, one commented line per hyper-parameter.

The registry is the set of YAML files (listing them imports nothing, so loading the
configuration never imports torch); a model's module is imported when its block is first read
(``conf.models.<name>``) or when a configuration source sets keys in it (then it is checked at
load time, like every other key). Overrides keep the usual form: ``--set models.<name>.<key>=v``.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
from dataclasses import dataclass
from typing import Any

from interest_lib.conf import core
from interest_lib.conf.core import ConfigError, check_limits, merge_into, read_yaml

#: The package holding the model modules: the module of model ``<name>`` is ``<package>.<name>``.
MODEL_PACKAGE = "interest_lib.models"
TASKS = ("migration", "evolution")


def _models_dir(conf_dir=None):
    return (core.CONF_DIR if conf_dir is None else conf_dir) / "models"


def model_names(conf_dir=None) -> tuple[str, ...]:
    """Names of the registered models: the ``<conf_dir>/models/*.yml`` files (default: the
    project's conf folder, see :data:`~interest_lib.conf.core.CONF_DIR`)."""
    folder = _models_dir(conf_dir)
    if not folder.is_dir():
        return ()
    return tuple(sorted(p.name[:-len(".yml")] for p in folder.iterdir() if p.name.endswith(".yml")))


@dataclass(frozen=True)
class ModelSpec:
    """What a model's module and YAML declare."""

    name: str
    module: types.ModuleType
    defaults: Any
    """The model's YAML file (a path, or a resource inside the wheel)."""

    @property
    def model(self) -> type:
        """The torch module class."""
        return self.module.Model

    @property
    def task(self) -> str:
        """``migration`` or ``evolution``: what the model predicts."""
        return self.module.Model.task

    @property
    def params(self) -> type:
        """The hyper-parameter dataclass."""
        return self.module.Params

    def saved_params(self, saved: dict):
        """The ``Params`` of a saved model record: a hyper-parameter added after the record was
        written takes the value the model had before it existed (the module's ``ADDED_PARAMS``),
        not today's default, so an older model.pt rebuilds the architecture it was trained as."""
        known = {f.name for f in dataclasses.fields(self.params)}
        unknown = sorted(set(saved) - known)
        if unknown:
            raise ConfigError(f"a saved {self.name} model has hyper-parameters this code does not know: "
                              f"{', '.join(unknown)} (saved by another version of {self.module.__name__}; "
                              "retrain it with this version or score with the version that trained it)")
        return self.params(**{**getattr(self.module, "ADDED_PARAMS", {}), **saved})

    @property
    def limits(self) -> dict:
        """Accepted values of the hyper-parameters (param -> Limit)."""
        return getattr(self.module, "LIMITS", {})


def _unknown(name: str, conf_dir=None) -> ConfigError:
    names = model_names(conf_dir)
    return ConfigError(f"unknown model {name!r}; registered (conf/models/*.yml): {', '.join(names) or 'none'}")


def model_spec(name: str, conf_dir=None) -> ModelSpec:
    """The model ``name``, its module imported (which imports torch). Needs only the module, so
    a saved model loads where the YAML files are not shipped (executors)."""
    module_name = f"{MODEL_PACKAGE}.{name}"
    if not name.isidentifier():
        raise _unknown(name, conf_dir)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise _unknown(name, conf_dir) from None
    if not (hasattr(module, "Model") and getattr(module.Model, "task", None) in TASKS
            and dataclasses.is_dataclass(getattr(module, "Params", None))):
        raise ConfigError(f"{module_name} is not a model: a model module defines Model (with task = "
                          f"{' | '.join(TASKS)}) and a Params dataclass")
    return ModelSpec(name, module, _models_dir(conf_dir) / f"{name}.yml")


class ModelsConf:
    """``conf.models``: the hyper-parameters of every registered model, ``conf.models.<name>``
    (an instance of the model's ``Params``). Each block is its YAML defaults, then every
    configuration source's ``models.<name>`` keys in order, checked against the model's
    ``LIMITS``; it is built when first read, or at load time when a source sets it."""

    def __init__(self, conf_dir=None):
        self._conf_dir = conf_dir
        self._layers: dict[str, list[tuple[str, dict]]] = {}
        self._built: dict[str, Any] = {}

    def names(self) -> tuple[str, ...]:
        """The registered models' names."""
        return model_names(self._conf_dir)

    def spec(self, name: str) -> ModelSpec:
        """The registered model ``name`` (imports its module)."""
        return model_spec(name, self._conf_dir)

    def merge(self, data: dict, source: str, prefix: str = "models.") -> None:
        """Record one source's ``models:`` mapping (called by the loader, in precedence order)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: '{prefix.rstrip('.')}' must be a mapping, got {data!r}")
        names = self.names()
        for name, block in data.items():
            if name not in names:
                raise ConfigError(f"{source}: unknown key '{prefix}{name}' (registered models: {', '.join(names)})")
            if not isinstance(block, dict):
                raise ConfigError(f"{source}: '{prefix}{name}' must be a mapping, got {block!r}")
            self._built.pop(name, None)
            self._layers.setdefault(name, []).append((source, block))

    def check(self) -> None:
        """Build (and so check) every block that a configuration source set."""
        for name in self._layers:
            self.get(name)

    def get(self, name: str) -> Any:
        """The ``Params`` of model ``name`` (built on first use)."""
        if name not in self._built:
            if name not in self.names():
                raise _unknown(name, self._conf_dir)
            spec = self.spec(name)
            params = spec.params()
            prefix = f"models.{name}."
            merge_into(params, read_yaml(spec.defaults), str(spec.defaults), prefix)
            for source, block in self._layers.get(name, []):
                merge_into(params, block, source, prefix)
            check_limits(params, spec.limits, prefix)
            self._built[name] = params
        return self._built[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy / pickle probe dunders; our own fields are in __dict__
            raise AttributeError(name)
        return self.get(name)

    def to_dict(self) -> dict:
        """Every model's block as plain values; blocks not built yet are their YAML defaults
        (nothing set them), so logging the configuration imports no model."""
        return {name: dataclasses.asdict(self._built[name]) if name in self._built
                else read_yaml(_models_dir(self._conf_dir) / f"{name}.yml") for name in self.names()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelsConf) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable, like the dataclass sections

    def __repr__(self) -> str:
        return f"ModelsConf({', '.join(self.names())})"
