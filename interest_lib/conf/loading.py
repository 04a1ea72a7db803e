"""``load_config``: base.yml, then the environment's overlay, then ``--conf-file``, then
``--set`` overrides, merged into a typed :class:`~interest_lib.conf.sections.Config` and checked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from interest_lib.conf import core
from interest_lib.conf.core import ENVIRONMENTS, ConfigError, merge_into, parse_override, read_yaml
from interest_lib.conf.models import ModelsConf
from interest_lib.conf.sections import Config
from interest_lib.conf.validation import validate


def load_config(
    env: Optional[str] = None,
    conf_file: Optional[str] = None,
    overrides: Optional[list[str]] = None,
    conf_dir=None,
) -> Config:
    """Load the configuration.

    Args:
        env: overlay name (local | cluster | databricks); default ``$INTEREST_ENV`` or ``local``.
        conf_file: an extra YAML file applied after the overlay (e.g. a job's own settings).
        overrides: ``a.b=c`` strings applied last; values are parsed as YAML scalars.
        conf_dir: folder holding ``base.yml``, the overlays and ``models/<name>.yml``; default
            :data:`~interest_lib.conf.core.CONF_DIR`.

    Returns:
        A fully typed :class:`Config`.
    """
    conf_dir = core.CONF_DIR if conf_dir is None else conf_dir
    env = env or os.environ.get("INTEREST_ENV", "local")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment '{env}' (choose one of {', '.join(ENVIRONMENTS)})")
    conf = Config(models=ModelsConf(conf_dir))
    sources = [conf_dir / "base.yml", conf_dir / f"{env}.yml"]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise ConfigError(f"configuration file(s) not found: {', '.join(missing)} (set INTEREST_CONF_DIR "
                          "to the folder holding base.yml and the overlays)")
    if conf_file:
        if not Path(conf_file).is_file():
            raise ConfigError(f"--conf-file {conf_file}: no such file")
        sources.append(Path(conf_file))
    for path in sources:
        merge_into(conf, read_yaml(path), str(path))
    for text in overrides or []:
        merge_into(conf, parse_override(text), f"--set {text}")
    validate(conf)
    conf.env = env
    return conf
