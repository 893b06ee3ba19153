"""SLA policies: durations, matching, quiet hours, defaults and the exported samples."""

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from exporter.core.durations import parse_duration
from exporter.exposition.sla import (
    Defaults,
    Match,
    MaxAge,
    Policy,
    QuietHours,
    SlaConfig,
    effective,
    match_policy,
    quiet_hours_active,
    restore_window,
    specificity,
    unknown_catalogs,
)
from exporter.exposition.sla_samples import FAMILIES, Sample, sla_samples
from exporter.service.overview import sla_max_age

ROOT = Path(__file__).resolve().parents[2]
H = 3600.0
D = 86400.0


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """Return an aware UTC datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def policy(**fields: Any) -> Policy:
    """Build a policy from plain data, as the YAML loader would."""
    return Policy.model_validate(fields)


BUSINESS = QuietHours.model_validate(
    {"days": ["mon-fri"], "from": "08:00", "to": "18:00", "timezone": "Europe/Berlin"}
)


# --- durations ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("90m", 5400), ("26h", 93600), ("7d", 604800), ("2w", 1209600),
    ("1h30m", 5400), ("1.5h", 5400), ("500ms", 0.5), (" 7D ", 604800), (0, 0), (45, 45),
    (2.5, 2.5), ("1d2h3m4s", 93784),
])
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["7x", "h", "7 d", "-5m", "1h-30m", "1e3s", "d7", "5 minutes"])
def test_parse_duration_names_the_bad_value(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_duration(bad)


@pytest.mark.parametrize("bad", [True, -1, math.inf, math.nan, ""])
def test_parse_duration_rejects_non_durations(bad: Any) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


# --- models ------------------------------------------------------------------------------------

def test_limits_parse_and_off_means_none() -> None:
    ages = MaxAge.model_validate({"full": "7d", "incremental": "off", "differential": 3600})
    assert ages.full == 7 * D
    assert ages.incremental == math.inf
    assert ages.differential == H
    assert MaxAge().full is None


@pytest.mark.parametrize(("data", "message"), [
    ({"full": "0"}, "greater than 0"),
    ({"full": "7x"}, "'7x'"),
    ({"weekly": "7d"}, "Extra inputs are not permitted"),
])
def test_max_age_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MaxAge.model_validate(data)


def test_every_model_forbids_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="max_agee"):
        Policy.model_validate({"max_agee": {}})
    with pytest.raises(ValidationError, match="maxage"):
        Defaults.model_validate({"maxage": {}})
    with pytest.raises(ValidationError, match="host"):
        Match.model_validate({"host": "x"})
    with pytest.raises(ValidationError, match="zone"):
        QuietHours.model_validate({"from": "08:00", "to": "18:00", "zone": "UTC"})
    with pytest.raises(ValidationError, match="policy"):
        SlaConfig.model_validate({"policy": []})


def test_quiet_hours_times_quoted_or_as_yaml_reads_them() -> None:
    # YAML reads an unquoted 18:00 as 1080 (base 60), and 08:00 as a string.
    data = yaml.safe_load("from: 08:00\nto: 18:00\n")
    assert data == {"from": "08:00", "to": 1080}
    q = QuietHours.model_validate(data)
    assert (q.from_, q.to) == (8 * 60, 18 * 60)
    assert q.days == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert QuietHours.model_validate({"from": "22:30", "to": "24:00"}).to == 1440


@pytest.mark.parametrize(("data", "message"), [
    ({"from": "08:00", "to": "08:00"}, "from and to are equal"),
    ({"from": "8h", "to": "18:00"}, "'8h'"),
    ({"from": "08:60", "to": "18:00"}, "'08:60'"),
    ({"from": "24:00", "to": "06:00"}, "from cannot be 24:00"),
    ({"from": "08:00", "to": "24:01"}, "between 00:00 and 24:00"),
    ({"from": "08:00", "to": "18:00", "timezone": "Berlin"}, "unknown time zone 'Berlin'"),
    ({"from": "08:00", "to": "18:00", "days": ["mo"]}, "invalid day 'mo'"),
    ({"from": "08:00", "to": "18:00", "days": []}, "at least one day"),
])
def test_quiet_hours_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        QuietHours.model_validate(data)


@pytest.mark.parametrize(("days", "expanded"), [
    (["mon-fri"], ["mon", "tue", "wed", "thu", "fri"]),
    (["Saturday", "sun"], ["sat", "sun"]),
    ("fri-mon", ["mon", "fri", "sat", "sun"]),
    (["wed", "mon", "wed"], ["mon", "wed"]),
])
def test_quiet_hours_days(days: Any, expanded: list[str]) -> None:
    q = QuietHours.model_validate({"days": days, "from": "08:00", "to": "18:00"})
    assert q.days == expanded


def test_expected_job_needs_a_literal_catalog_and_a_covering_match() -> None:
    with pytest.raises(ValidationError, match="needs a catalog"):
        policy(expected_jobs=[{"client": "c1", "job": "j1"}])
    with pytest.raises(ValidationError, match="not covered by this policy's match"):
        policy(match={"catalog": "main", "client": "db*"},
               expected_jobs=[{"client": "web1", "job": "j1"}])
    with pytest.raises(ValidationError, match="is a pattern"):
        policy(match={"catalog": "main"}, expected_jobs=[{"client": "c*", "job": "j1"}])
    p = policy(match={"catalog": "m*"}, expected_jobs=[{"catalog": "main", "client": "c",
                                                        "job": "j"}])
    assert p.expected() == [("main", "c", "j")]


# --- quiet hours -------------------------------------------------------------------------------

@pytest.mark.parametrize(("now", "active"), [
    # Winter (CET, UTC+1): 08:00 Berlin is 07:00 UTC. 2025-11-24 is a Monday.
    (utc(2025, 11, 24, 6, 59), False),
    (utc(2025, 11, 24, 7, 0), True),
    (utc(2025, 11, 24, 16, 59), True),
    (utc(2025, 11, 24, 17, 0), False),
    # Summer (CEST, UTC+2): 08:00 Berlin is 06:00 UTC. 2025-07-04 is a Friday.
    (utc(2025, 7, 4, 5, 59), False),
    (utc(2025, 7, 4, 6, 0), True),
    (utc(2025, 7, 4, 15, 59), True),
    (utc(2025, 7, 4, 16, 0), False),
    # The weekend is not quiet; Saturday 2025-11-29 noon.
    (utc(2025, 11, 29, 11, 0), False),
])
def test_business_hours(now: datetime, active: bool) -> None:
    assert quiet_hours_active([BUSINESS], now) is active


def test_quiet_hours_across_a_dst_change() -> None:
    # 2025-03-31 is the Monday after the switch to CEST on Sunday 2025-03-30.
    assert quiet_hours_active([BUSINESS], utc(2025, 3, 28, 7, 0))  # Friday, CET
    assert not quiet_hours_active([BUSINESS], utc(2025, 3, 31, 5, 59))  # Monday 07:59 CEST
    assert quiet_hours_active([BUSINESS], utc(2025, 3, 31, 6, 0))  # Monday 08:00 CEST


def test_overnight_window_belongs_to_the_day_it_starts() -> None:
    # Friday 22:00 to Saturday 06:00, UTC.
    night = QuietHours.model_validate({"days": ["fri"], "from": "22:00", "to": "06:00"})
    assert not quiet_hours_active([night], utc(2025, 11, 28, 21, 59))  # Fri
    assert quiet_hours_active([night], utc(2025, 11, 28, 22, 0))  # Fri
    assert quiet_hours_active([night], utc(2025, 11, 29, 5, 59))  # Sat
    assert not quiet_hours_active([night], utc(2025, 11, 29, 6, 0))  # Sat
    assert not quiet_hours_active([night], utc(2025, 11, 29, 23, 0))  # Sat night
    assert not quiet_hours_active([night], utc(2025, 11, 28, 3, 0))  # Fri early: Thu's night


def test_several_windows_and_none() -> None:
    lunch = QuietHours.model_validate({"days": ["sat"], "from": "12:00", "to": "13:00"})
    assert quiet_hours_active([BUSINESS, lunch], utc(2025, 11, 29, 12, 30))
    assert not quiet_hours_active([], utc(2025, 11, 24, 10, 0))


def test_quiet_hours_need_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        quiet_hours_active([BUSINESS], datetime(2025, 11, 24, 10, 0))


# --- matching ----------------------------------------------------------------------------------

def test_most_specific_policy_wins_whatever_the_file_order() -> None:
    anything = policy(name="anything")
    db_clients = policy(name="db-clients", match={"client": "db*"})
    db1 = policy(name="db1", match={"client": "db1"})
    db1_main = policy(name="db1-main", match={"catalog": "main", "client": "db1"})
    policies = [anything, db_clients, db1, db1_main]
    for order in (policies, policies[::-1]):
        assert match_policy(order, "main", "db1", "j") is db1_main
        assert match_policy(order, "other", "db1", "j") is db1
        assert match_policy(order, "other", "db2", "j") is db_clients
        assert match_policy(order, "other", "web", "j") is anything


def test_more_literal_characters_win_between_equally_wild_policies() -> None:
    # Both have one wildcard field; "db-*" says more than "*" about the client.
    catch_all = policy(name="all", match={"catalog": "main"})
    dbs = policy(name="dbs", match={"catalog": "main", "client": "db-*"})
    assert match_policy([catch_all, dbs], "main", "db-1", "j") is dbs
    assert specificity(dbs.match) < specificity(catch_all.match)


def test_first_in_file_wins_a_tie() -> None:
    first = policy(name="first", match={"client": "db*"})
    second = policy(name="second", match={"job": "db*"})
    assert match_policy([first, second], "main", "db1", "db-job") is first
    assert match_policy([second, first], "main", "db1", "db-job") is second


def test_no_match_and_case_sensitivity() -> None:
    dbs = policy(match={"client": "db*"})
    assert match_policy([dbs], "main", "DB1", "j") is None
    assert match_policy([], "main", "db1", "j") is None
    assert Match(client="db[12]").matches("main", "db2", "j")
    assert not Match(client="db[12]").matches("main", "db3", "j")


# --- effective SLA and samples -----------------------------------------------------------------

def test_unset_settings_come_from_the_defaults_not_from_other_policies() -> None:
    defaults = Defaults.model_validate(
        {"max_age": {"full": "8d", "incremental": "26h"}, "max_copy_lag": "2d",
         "quiet_hours": [{"from": "08:00", "to": "18:00"}]}
    )
    broad = policy(match={"client": "*"}, max_age={"differential": "3d"}, max_runtime="2h")
    narrow = policy(match={"client": "db1"}, max_age={"incremental": "2h"},
                    max_copy_lag="off", quiet_hours=[])
    sla = effective([broad, narrow], defaults, "main", "db1", "j")
    assert sla.policy is narrow
    assert sla.max_age == {"full": 8 * D, "incremental": 2 * H, "differential": 8 * D}
    assert sla.max_copy_lag is None  # lifted with "off"
    assert sla.max_runtime == 24 * H  # the built-in default, not broad's 2h
    assert sla.quiet_hours == []
    sla = effective([broad, narrow], defaults, "main", "web", "j")
    assert sla.policy is broad
    assert sla.max_age == {"full": 8 * D, "incremental": 26 * H, "differential": 3 * D}
    assert sla.quiet_hours == defaults.quiet_hours


def test_defaults_keep_built_in_levels_they_do_not_name() -> None:
    defaults = Defaults.model_validate({"max_age": {"full": "14d", "differential": "off"}})
    assert defaults.max_age.get("full") == 14 * D
    assert defaults.max_age.get("incremental") == 26 * H
    sla = effective([], defaults, "main", "c", "j")
    assert sla.max_age == {"full": 14 * D, "incremental": 26 * H, "differential": None}


def test_built_in_defaults() -> None:
    sla = effective([], Defaults(), "main", "c", "j")
    assert sla.policy is None
    assert sla.max_age == {"full": 7 * D, "differential": 8 * D, "incremental": 26 * H}
    assert (sla.max_copy_lag, sla.max_runtime, list(sla.quiet_hours)) == (None, 24 * H, [])


def test_samples_for_seen_keys_and_expected_jobs() -> None:
    shop = policy(
        match={"catalog": "main", "client": "shop-*"},
        max_age={"full": "7d", "incremental": "26h"},
        max_copy_lag="1d",
        max_runtime="6h",
        quiet_hours=[BUSINESS.model_dump(by_alias=True)],
        expected_jobs=[{"client": "shop-new", "job": "shop-new-files"}],
    )
    seen = [
        ("main", "shop-1", "shop-1-files", "full"),
        ("main", "shop-1", "shop-1-files", "incremental"),
        ("main", "shop-1", "shop-1-files", "base"),  # no SLA for other levels
        ("main", "web", "web-files", "full"),
        ("main", "web", "web-files", "full"),  # duplicates are harmless
    ]
    monday_10 = utc(2025, 11, 24, 9, 0)
    samples = sla_samples([shop], Defaults.model_validate({"max_runtime": "off"}), seen, monday_10)
    shop1 = {"catalog": "main", "client": "shop-1", "job": "shop-1-files"}
    new = {"catalog": "main", "client": "shop-new", "job": "shop-new-files"}
    web = {"catalog": "main", "client": "web", "job": "web-files"}
    assert samples == [
        Sample("bacula_sla_max_age_seconds", {**shop1, "level": "full"}, 7 * D),
        Sample("bacula_sla_max_age_seconds", {**shop1, "level": "incremental"}, 26 * H),
        Sample("bacula_sla_max_age_seconds", {**web, "level": "full"}, 7 * D),
        Sample("bacula_sla_max_copy_lag_seconds", shop1, D),
        Sample("bacula_sla_max_copy_lag_seconds", new, D),
        Sample("bacula_sla_max_runtime_seconds", shop1, 6 * H),
        Sample("bacula_sla_max_runtime_seconds", new, 6 * H),
        Sample("bacula_sla_quiet_hours_active", shop1, 1.0),
        Sample("bacula_sla_quiet_hours_active", new, 1.0),
        Sample("bacula_sla_expected_job", new, 1.0),
    ]
    saturday = utc(2025, 11, 29, 9, 0)
    quiet = [s for s in sla_samples([shop], Defaults(), seen, saturday)
             if s.name == "bacula_sla_quiet_hours_active"]
    assert [s.value for s in quiet] == [0.0, 0.0]


def test_every_sample_belongs_to_a_family() -> None:
    names = {name for name, _, _ in FAMILIES}
    p = policy(match={"catalog": "main"}, max_copy_lag="1d",
               quiet_hours=[{"from": "00:00", "to": "24:00"}],
               expected_jobs=[{"client": "c", "job": "j"}],
               retention="14d", require_encryption=True, max_verify_age="7d",
               max_migration_lag="8d")
    samples = sla_samples([p], Defaults(), [("main", "c", "j", "full")], utc(2025, 1, 1),
                          [("verify", "main", "c", "v"), ("consolidate", "main", "c", "ai")])
    assert {s.name for s in samples} == names


def test_max_verify_age_for_verify_jobs_only_from_policy_or_defaults() -> None:
    """Verify jobs get their policy's max_verify_age, else the defaults'; backups get none."""
    defaults = Defaults.model_validate({"max_verify_age": "30d"})
    db = policy(match={"client": "db*"}, max_verify_age="7d")
    lab = policy(match={"client": "lab"}, max_verify_age="off")
    verifies = [("verify", "main", "db1", "VerifyDb1"), ("verify", "main", "web", "VerifyWeb"),
                ("verify", "main", "lab", "VerifyLab")]
    samples = [s for s in sla_samples([db, lab], defaults, [("main", "db1", "BackupDb1", "full")],
                                      utc(2025, 1, 1), verifies)
               if s.name == "bacula_sla_max_verify_age_seconds"]
    assert [(s.labels["job"], s.value) for s in samples] == [
        ("VerifyDb1", 7 * D), ("VerifyWeb", 30 * D)]
    with pytest.raises(ValidationError, match="greater than 0"):
        policy(max_verify_age="0s")


def test_status_lookup_gives_verify_levels_their_max_verify_age() -> None:
    """The status page's age lookup answers verify levels with max_verify_age."""
    lookup = sla_max_age(SlaConfig.model_validate(
        {"policies": [{"match": {"client": "db1"}, "max_verify_age": "2d"}]}))
    assert lookup("main", "db1", "VerifyDb1", "verify-volume-to-catalog") == 2 * D
    assert lookup("main", "db1", "BackupDb1", "full") == 7 * D
    assert lookup("main", "web", "VerifyWeb", "verify-catalog") is None
    assert lookup("main", "db1", "Consolidate", "consolidate") == 26 * H  # built in


def test_consolidate_age_is_built_in_and_can_be_lifted() -> None:
    """Bareos consolidate jobs get 26h unless a policy says otherwise; only consolidate jobs."""
    lab = policy(match={"client": "lab"}, max_consolidate_age="off")
    checks = [("consolidate", "main", "db1", "Consolidate"), ("consolidate", "main", "lab", "C"),
              ("admin", "main", "", "CatalogBackup")]
    samples = sla_samples([lab], Defaults(), [], utc(2025, 1, 1), checks)
    assert samples == [Sample("bacula_sla_max_consolidate_age_seconds",
                              {"catalog": "main", "client": "db1", "job": "Consolidate"}, 26 * H)]


# --- retention and encryption ------------------------------------------------------------------

def test_retention_and_encryption_parse() -> None:
    p = policy(retention="14d", require_encryption=True)
    assert (p.retention, p.require_encryption) == (14 * D, True)
    assert policy(retention=3600).retention == H
    assert policy(retention="off").retention == math.inf
    assert (Policy().retention, Policy().require_encryption) == (None, None)
    assert (Defaults().retention, Defaults().require_encryption) == (None, None)
    # YAML's booleans arrive as bool.
    assert policy(**yaml.safe_load("require_encryption: yes")).require_encryption is True


@pytest.mark.parametrize(("data", "message"), [
    ({"retention": "0"}, "greater than 0"),
    ({"retention": "two weeks"}, "'two weeks'"),
    ({"retention": ["14d"]}, "invalid duration"),
    ({"require_encryption": "maybe"}, "require_encryption"),
    ({"retention_days": 14}, "Extra inputs are not permitted"),
])
def test_retention_and_encryption_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Policy.model_validate(data)
    with pytest.raises(ValidationError, match=message):
        Defaults.model_validate(data)


def test_retention_and_encryption_are_off_by_default() -> None:
    sla = effective([policy(match={"client": "c"})], Defaults(), "main", "c", "j")
    assert (sla.retention, sla.require_encryption) == (None, False)
    samples = sla_samples([], Defaults(), [("main", "c", "j", "full")], utc(2025, 1, 1))
    names = {s.name for s in samples}
    assert not names & {"bacula_sla_retention_seconds", "bacula_sla_encryption_required"}


def test_retention_and_encryption_inherit_from_the_defaults_only() -> None:
    defaults = Defaults.model_validate({"retention": "14d", "require_encryption": True})
    broad = policy(match={"client": "*"}, retention="30d", require_encryption=False)
    silent = policy(match={"client": "db*"})  # leaves both unset: the defaults', not broad's
    lifted = policy(match={"client": "test1"}, retention="off", require_encryption=False)
    policies = [broad, silent, lifted]
    sla = effective(policies, defaults, "main", "db1", "j")
    assert sla.policy is silent
    assert (sla.retention, sla.require_encryption) == (14 * D, True)
    sla = effective(policies, defaults, "main", "web", "j")
    assert (sla.retention, sla.require_encryption) == (30 * D, False)
    sla = effective(policies, defaults, "main", "test1", "j")
    assert (sla.retention, sla.require_encryption) == (None, False)
    sla = effective([], defaults, "main", "web", "j")
    assert (sla.retention, sla.require_encryption) == (14 * D, True)
    # A policy can require encryption where the defaults do not.
    strict = policy(match={"client": "vault"}, require_encryption=True)
    assert effective([strict], Defaults(), "main", "vault", "j").require_encryption is True


def test_retention_and_encryption_samples() -> None:
    shop = policy(match={"catalog": "main", "client": "shop-*"}, retention="14d",
                  require_encryption=True,
                  expected_jobs=[{"client": "shop-new", "job": "shop-new-files"}])
    archive = policy(match={"client": "archive"}, retention="365d")
    lab = policy(match={"client": "lab"}, retention="off", require_encryption=False)
    defaults = Defaults.model_validate({"retention": "7d", "max_runtime": "off"})
    seen = [
        ("main", "shop-1", "shop-1-files", "full"),
        ("main", "shop-1", "shop-1-files", "incremental"),  # one sample per job, not level
        ("main", "archive", "archive-files", "full"),
        ("main", "lab", "lab-files", "full"),
        ("main", "web", "web-files", "full"),
    ]
    samples = sla_samples([shop, archive, lab], defaults, seen, utc(2025, 11, 24, 9, 0))
    job = {"catalog": "main"}
    shop1 = {**job, "client": "shop-1", "job": "shop-1-files"}
    new = {**job, "client": "shop-new", "job": "shop-new-files"}
    archive_job = {**job, "client": "archive", "job": "archive-files"}
    web = {**job, "client": "web", "job": "web-files"}
    wanted = ("bacula_sla_retention_seconds", "bacula_sla_encryption_required")
    assert [s for s in samples if s.name in wanted] == [
        Sample("bacula_sla_retention_seconds", archive_job, 365 * D),
        Sample("bacula_sla_retention_seconds", shop1, 14 * D),
        Sample("bacula_sla_retention_seconds", new, 14 * D),
        Sample("bacula_sla_retention_seconds", web, 7 * D),
        Sample("bacula_sla_encryption_required", shop1, 1.0),
        Sample("bacula_sla_encryption_required", new, 1.0),
    ]


def test_restore_window_reaches_one_full_cycle_past_the_longest_retention() -> None:
    assert restore_window(SlaConfig()) is None
    # Defaults: 14d + the built-in weekly full + a day.
    sla = SlaConfig.model_validate({"defaults": {"retention": "14d"}})
    assert restore_window(sla) == 22 * D
    sla = SlaConfig.model_validate({
        "defaults": {"retention": "14d", "max_age": {"full": "36d"}},
        "policies": [
            # 30d with weekly fulls: 38d; 14d with the defaults' monthly fulls: 51d.
            {"match": {"client": "a"}, "retention": "30d", "max_age": {"full": "7d"}},
            {"match": {"client": "b"}, "retention": "off"},
        ],
    })
    assert restore_window(sla) == 51 * D
    assert restore_window(sla, margin=0) == 50 * D
    # Fulls without a limit: a weekly cycle is assumed.
    sla = SlaConfig.model_validate({"policies": [
        {"match": {"client": "a"}, "retention": "10d", "max_age": {"full": "off"}},
    ]})
    assert restore_window(sla) == 18 * D


def test_unknown_catalogs_are_reported_with_their_key_path() -> None:
    sla = SlaConfig.model_validate({"policies": [
        {"match": {"catalog": "main"}},
        {"match": {"catalog": "dr-*"}},
        {"match": {"catalog": "*"}, "expected_jobs": [
            {"catalog": "main", "client": "c", "job": "j"},
            {"catalog": "mian", "client": "c", "job": "j"},
        ]},
    ]})
    assert unknown_catalogs(sla, ["main"]) == [
        "sla.policies.1.match.catalog: 'dr-*' matches no catalog",
        "sla.policies.2.expected_jobs.1.catalog: unknown catalog 'mian'",
    ]


# --- the example -------------------------------------------------------------------------------

def test_example_sla_file() -> None:
    data = yaml.safe_load((ROOT / "examples" / "sla.yml").read_text())
    sla = SlaConfig.model_validate(data["sla"])
    assert unknown_catalogs(sla, [c["name"] for c in data["catalogs"]]) == []
    files = effective(sla.policies, sla.defaults, "main", "shop-pos-fd", "shop-pos-files")
    assert files.max_age == {"full": 7 * D, "incremental": 26 * H, "differential": 8 * D}
    assert files.max_copy_lag == D
    assert files.max_runtime == 12 * H
    assert quiet_hours_active(files.quiet_hours, utc(2025, 11, 24, 9, 0))  # Mon 10:00 Berlin
    db = effective(sla.policies, sla.defaults, "main", "shop-pos-fd", "shop-pos-db")
    assert db.policy is not None and db.policy.name == "shop-databases"
    assert db.max_age["incremental"] == 2 * H
    assert db.max_runtime == 45 * 60
    assert not quiet_hours_active(db.quiet_hours, utc(2025, 11, 24, 9, 0))
    assert (files.retention, files.require_encryption) == (14 * D, True)
    assert (db.retention, db.require_encryption) == (14 * D, True)
    other = effective(sla.policies, sla.defaults, "main", "intranet-fd", "intranet-files")
    assert other.policy is None and other.max_age["full"] == 8 * D
    assert (other.retention, other.require_encryption) == (None, False)
    assert other.max_verify_age == 31 * D
    # The example's restore_window is the one its policies need.
    assert parse_duration(data["catalogs"][0]["restore_window"]) == restore_window(sla)
    samples = sla_samples(sla.policies, sla.defaults, [], utc(2025, 11, 24, 9, 0))
    expected = [s.labels for s in samples if s.name == "bacula_sla_expected_job"]
    assert expected == [{"catalog": "main", "client": "shop-erp-fd", "job": "shop-erp-files"}]
