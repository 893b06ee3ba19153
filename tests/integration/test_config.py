"""Configuration: valid files load, every problem is named by its key path, secrets never echo."""

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config, parse_config
from exporter.core.durations import parse_duration

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"catalogs": [{"name": "main", "url": "sqlite:////tmp/x.db", "timezone": "UTC"}]}


def problems(data: object) -> list[str]:
    """Return the problems a config produces."""
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    return err.value.problems


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yml")), ids=lambda p: p.name)
def test_examples_load(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every shipped example is a valid configuration (secret sources provided)."""
    monkeypatch.setenv("BACULA_CATALOG_PASSWORD", "x")
    monkeypatch.setenv("BACULA_STATE_PASSWORD", "x")
    monkeypatch.setenv("BACULA_CONSOLE_PASSWORD", "x")
    config = load_config(path)
    assert config.catalogs


def test_durations() -> None:
    """Durations accept units, compounds and plain seconds, and reject the rest."""
    assert parse_duration("26h") == 93600
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    assert parse_duration(45) == 45
    for bad in ("7 days", "-1s", "", True, "1x"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_every_problem_has_its_key_path() -> None:
    """Unknown keys, bad values and cross-references each name where they are."""
    found = problems({
        "listen": "nowhere", "colour": "blue", "poll_interval": "soon",
        "catalogs": [
            {"name": "a", "url": "oracle://h/db", "timezone": "Mars/Olympus"},
            {"name": "b", "url": "postgresql://u:hunter2@h/db", "timezone": "UTC", "extra": 1},
        ],
    })
    text = "\n".join(found)
    for path in ("listen:", "colour:", "poll_interval:", "catalogs.0.url:",
                 "catalogs.0.timezone:", "catalogs.1.url:", "catalogs.1.extra:"):
        assert path in text
    assert "hunter2" not in text


def test_duplicate_names_and_missing_secrets() -> None:
    """A name used twice, a missing password file or variable are config errors."""
    cat = GOOD["catalogs"][0]  # type: ignore[index]
    assert any("used twice" in p for p in problems({"catalogs": [cat, cat]}))
    found = problems({"catalogs": [{**cat, "password_file": "/nonexistent/secret"}]})
    assert found == ["catalogs.0.password_file: cannot read /nonexistent/secret"]
    found = problems({"catalogs": [{**cat, "password_env": "NO_SUCH_VARIABLE_X"}]})
    assert found == ["catalogs.0.password_env: environment variable NO_SUCH_VARIABLE_X is not set"]
    assert problems([1, 2]) == ["(top level): expected a mapping of keys"]
    assert problems({"catalogs": []})[0].startswith("catalogs:")


def test_state_database(tmp_path: Path) -> None:
    """PostgreSQL only, no password in the url, and not beside a state_dir."""
    cat = GOOD["catalogs"][0]  # type: ignore[index]
    url = "postgresql://exporter@statedb/state"
    config = parse_config({"catalogs": [cat], "state_database": {"url": url}})
    assert config.state_database is not None and config.state_database.url == url
    assert problems({"catalogs": [cat], "state_database": {"url": "mysql://u@h/state"}}) == [
        "state_database.url: the state database must be PostgreSQL (postgresql://...)"]
    found = problems({"catalogs": [cat], "state_database": {"url": "postgresql://u:pw9@h/s"}})
    assert found == ["state_database.url: put the password in password_file or password_env, "
                     "not in the url"]
    assert problems({"catalogs": [cat], "state_dir": str(tmp_path),
                     "state_database": {"url": url}}) == [
        "state_database: give state_dir or state_database, not both"]


def test_secret_is_read_but_never_shown(tmp_path: Path) -> None:
    """The password comes from its file and renders as <secret>."""
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t-value\n")
    cfg = parse_config({"catalogs": [{**GOOD["catalogs"][0], "password_file": str(secret)}]})  # type: ignore[index]
    password = cfg.catalogs[0].password()
    assert password is not None and password.get() == "s3cr3t-value"
    assert "s3cr3t" not in f"{password} {password!r} {cfg!r}"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real command line."""
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_check_config_command(tmp_path: Path) -> None:
    """check-config prints each problem with file and key path, exits 1; a good file exits 0."""
    bad = tmp_path / "bad.yml"
    bad.write_text("catalogs:\n  - name: x\n    url: mysql://h/db\n    timezon: UTC\n")
    result = run_cli("check-config", str(bad))
    assert result.returncode == 1
    assert f"{bad}: catalogs.0.timezone: Field required" in result.stderr
    assert f"{bad}: catalogs.0.timezon: Extra inputs are not permitted" in result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("catalogs: [\n")
    result = run_cli("check-config", str(broken))
    assert result.returncode == 1 and "line" in result.stderr
    good = tmp_path / "good.yml"
    good.write_text("catalogs:\n  - {name: x, url: 'sqlite:////tmp/x.db', timezone: UTC}\n")
    assert run_cli("check-config", str(good)).returncode == 0
    assert run_cli("--config", str(tmp_path / "missing.yml")).returncode == 1


def test_check_config_names_the_director_keys(tmp_path: Path) -> None:
    """A missing bconsole, an unset password and an unknown catalog each name their key."""
    config = tmp_path / "directors.yml"
    config.write_text(
        "catalogs:\n  - {name: x, url: 'sqlite:////tmp/x.db', timezone: UTC}\n"
        "directors:\n"
        "  - {name: d1, catalog: x, address: 127.0.0.1, password_env: NO_SUCH_VAR_BX,\n"
        "     bconsole: /nonexistent/bconsole}\n"
        "  - {name: d2, catalog: nope, address: 127.0.0.1, password_file: /etc/hostname,\n"
        "     bconsole: /bin/true}\n")
    result = run_cli("check-config", str(config))
    assert result.returncode == 1
    assert (f"{config}: directors.0.bconsole: bconsole program '/nonexistent/bconsole' not "
            "found or not executable") in result.stderr
    assert f"{config}: directors.0.password_env: environment variable NO_SUCH_VAR_BX is not set" \
        in result.stderr
    # The cross-checks run once the models are valid.
    config.write_text(
        "catalogs:\n  - {name: x, url: 'sqlite:////tmp/x.db', timezone: UTC}\n"
        "directors:\n"
        "  - {name: d2, catalog: nope, address: 127.0.0.1, password_file: /etc/hostname,\n"
        "     bconsole: /bin/true}\n")
    result = run_cli("check-config", str(config))
    assert result.returncode == 1
    assert f"{config}: directors.0.catalog: no catalog named 'nope'" in result.stderr
