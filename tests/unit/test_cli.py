"""The interest command's parsing and help."""

import pytest

from interest_lib.cli import TASKS, build_parser, main

pytestmark = pytest.mark.unit


def test_help_lists_every_job(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for name in ("generate", "ingest", "sessionize"):
        assert name in out and name in TASKS


def test_config_command_applies_overrides(capsys):
    assert main(["config", "--set", "generate.users=123"]) == 0
    assert '"users": 123' in capsys.readouterr().out


def test_configuration_error_is_a_clean_exit(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["config", "--set", "nope.x=1"])
    assert exc.value.code == 2
    assert "unknown key 'nope'" in capsys.readouterr().err
