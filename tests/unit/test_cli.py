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


def test_out_of_range_setting_exits_2_naming_it(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["config", "--set", "spark.shuffle_partitions=0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "key 'spark.shuffle_partitions' is 0: must be >= 1" in err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["file", "under_file", "read_only_fs"])
def test_unusable_warehouse_is_refused_at_job_start(tmp_path, capsys, kind):
    target = tmp_path / "wh"
    target.write_text("not a folder")
    path = {"file": str(target), "under_file": str(target / "inner"),
            "read_only_fs": "/proc/interest-warehouse"}[kind]
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "--set", f"storage.warehouse={path}"])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert f"storage.warehouse '{path}'" in err
    assert ("is a file" if kind == "file" else "cannot be written") in err


def test_key_from_a_conf_file_on_a_cluster_is_a_clean_exit(tmp_path, capsys, monkeypatch):
    """Key resolution runs before Spark starts work: `--env cluster` with a key in --set and no
    secret exits 2 with the reason, no traceback (the key is never echoed)."""
    monkeypatch.delenv("INTEREST_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    from interest_lib.errors import SecretError
    from interest_lib.ingest.pseudonymise import KeySourceError, MissingKeyError, PublicKeyError

    assert all(issubclass(c, SecretError) for c in (KeySourceError, MissingKeyError, PublicKeyError))
    with pytest.raises(SystemExit) as exc:
        main(["config", "--env", "cluster", "--set", "ingest.pseudonym_key=s3cret-in-a-file",
              "--set", f"storage.warehouse={tmp_path}/wh", "--check-key"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "Traceback" not in err and "s3cret-in-a-file" not in err
