"""SLA policies in the config reach /metrics, the status overview and check-config."""

import time
from pathlib import Path

import pytest

from exporter.config import ConfigError, parse_config
from exporter.demo import DEMO_ZONE, write_demo_catalog
from exporter.service.overview import Standing, overview
from exporter.service.runner import Exporter
from tests.promtext import samples, value


def config(db: Path) -> dict[str, object]:
    """A config with two policies over the demo catalog."""
    return {
        "catalogs": [{"name": "demo", "url": f"sqlite:///{db}", "timezone": DEMO_ZONE}],
        "sla": {
            "defaults": {"max_age": {"full": "7d", "incremental": "26h"}},
            "policies": [
                {"name": "hourly-db", "match": {"client": "db01-fd", "job": "*-hourly"},
                 "max_age": {"incremental": "2h"}, "max_runtime": "1h",
                 "quiet_hours": [{"from": "00:00", "to": "24:00", "timezone": "UTC"}]},
                {"name": "offsite", "match": {"catalog": "demo", "client": "web*"},
                 "max_copy_lag": "1d",
                 "expected_jobs": [{"client": "web03-fd", "job": "Backup-web03"}]},
            ],
        },
    }


def test_policies_become_metrics_and_status(tmp_path: Path) -> None:
    """Limits per level, copy lag, run time, quiet hours and expected jobs are exported."""
    db = tmp_path / "d.db"
    write_demo_catalog(db)
    exporter = Exporter(parse_config(config(db)))
    found = samples(exporter.metrics())
    hourly = {"catalog": "demo", "client": "db01-fd", "job": "Backup-db01-hourly"}
    assert value(found, "bacula_sla_max_age_seconds", **hourly, level="incremental") == 7200
    assert value(found, "bacula_sla_max_runtime_seconds", **hourly) == 3600
    assert value(found, "bacula_sla_quiet_hours_active", **hourly) == 1
    web = {"catalog": "demo", "client": "web01-fd", "job": "Backup-web01"}
    assert value(found, "bacula_sla_max_age_seconds", **web, level="full") == 7 * 86400
    assert value(found, "bacula_sla_max_copy_lag_seconds", **web) == 86400
    assert value(found, "bacula_sla_quiet_hours_active", **web) is None  # no quiet hours
    assert value(found, "bacula_sla_expected_job", catalog="demo", client="web03-fd",
                 job="Backup-web03") == 1
    rows, _ = overview(exporter.pollers, exporter.max_age, time.time(),
                       [("demo", "web03-fd", "Backup-web03")])
    never = {(r.client, r.job) for r in rows if r.standing is Standing.NEVER}
    assert ("web03-fd", "Backup-web03") in never
    exporter.stop()


def test_policy_naming_an_unknown_catalog_is_a_config_error(tmp_path: Path) -> None:
    """Cross-references are checked: the error names the key path."""
    data = config(tmp_path / "d.db")
    data["sla"]["policies"][1]["match"]["catalog"] = "nowhere"  # type: ignore[index]
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert err.value.problems == ["sla.policies.1.match.catalog: 'nowhere' matches no catalog"]
