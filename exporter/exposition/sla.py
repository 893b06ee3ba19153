"""SLA policies: how old a backup may get, copy lag, run time, quiet hours; pure logic, no I/O.

The policies become the `bacula_sla_*` samples (sla_samples.py), and the rules in `alerts/`
compare the catalog's metrics against them.

Which policy applies to a job: among the policies whose `match` globs all match, the most specific
wins; see `specificity`. Every setting a winning policy leaves unset comes from `defaults`, never
from another policy, so a job's SLA can be read off one policy and the defaults.
"""

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, field_validator, model_validator

from exporter.core.durations import parse_duration
from exporter.core.settings import Strict, Zone

SLA_LEVELS = ("full", "incremental", "differential")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_GLOB = re.compile(r"\[[^\]]*\]|[*?]")

def _limit(value: object) -> float | None:
    """Parse a limit: a duration > 0, "off" for none (so a policy can lift a default), or None."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "off":
        return math.inf
    if not isinstance(value, str | int | float):
        raise ValueError(f"invalid duration {value!r}: expected a duration such as 26h, or off")
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"invalid limit {value!r}: must be greater than 0 (use off for none)")
    return seconds


def _clock(value: object) -> int:
    """Parse "HH:MM" (00:00 to 24:00) into minutes after midnight."""
    # YAML 1.1 reads an unquoted 18:00 as the base-60 integer 1080, which is exactly its minutes
    # after midnight; accepting integers as minutes makes quoted and unquoted times both work.
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value
    else:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip() if isinstance(value, str) else "")
        if not match or int(match[2]) > 59:
            raise ValueError(f"invalid time of day {value!r}: expected HH:MM such as 08:00")
        minutes = int(match[1]) * 60 + int(match[2])
    if not 0 <= minutes <= 24 * 60:
        raise ValueError(f"invalid time of day {value!r}: must lie between 00:00 and 24:00")
    return minutes


def _day(name: str) -> int:
    """Return the index (mon = 0) of a day given as "mon" or "monday", any case."""
    text = name.strip().lower()
    for i, day in enumerate(DAYS):
        if text in (day, _FULL_DAYS[i]):
            return i
    raise ValueError(f"invalid day {name!r}: use mon, tue, wed, thu, fri, sat or sun")


def _days(value: object) -> list[str]:
    """Expand day names and ranges ("mon-fri") into a list of day abbreviations."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("days must be a list such as [mon, tue] or a range such as mon-fri")
    picked: set[int] = set()
    for item in items:
        first, sep, last = item.partition("-")
        start = _day(first)
        stop = _day(last) if sep else start
        # A range may wrap the week: fri-mon is fri, sat, sun, mon.
        picked.update((start + i) % 7 for i in range((stop - start) % 7 + 1))
    if not picked:
        raise ValueError("days must name at least one day")
    return [DAYS[i] for i in sorted(picked)]


Limit = Annotated[float | None, BeforeValidator(_limit)]
Clock = Annotated[int, BeforeValidator(_clock)]
Days = Annotated[list[Day], BeforeValidator(_days)]
Glob = Annotated[str, Field(min_length=1)]
LiteralName = Annotated[str, Field(min_length=1, max_length=128)]


class Match(Strict):
    """Which jobs a policy covers: shell-style globs, case-sensitive like Bacula's names."""

    catalog: Glob = "*"
    client: Glob = "*"
    job: Glob = "*"

    def matches(self, catalog: str, client: str, job: str) -> bool:
        """Return whether all three globs match."""
        return (fnmatchcase(catalog, self.catalog) and fnmatchcase(client, self.client)
                and fnmatchcase(job, self.job))


def is_glob(pattern: str) -> bool:
    """Return whether a pattern contains a wildcard (*, ? or [...])."""
    return bool(_GLOB.search(pattern))


def specificity(match: Match) -> tuple[int, int]:
    """Return a sort key, smaller = more specific: fewer wildcard fields, then more literal text.

    `client: db1` beats `client: db*` (fewer fields with a wildcard), and `client: db*` beats
    `client: *` (both one wildcard field, but more literal characters).
    """
    fields = (match.catalog, match.client, match.job)
    wildcards = sum(is_glob(p) for p in fields)
    literal = sum(len(_GLOB.sub("", p)) for p in fields)
    return wildcards, -literal


class MaxAge(Strict):
    """Maximum age of the last successful backup, per level; unset = from the defaults."""

    full: Limit = None
    incremental: Limit = None
    differential: Limit = None

    def get(self, level: str) -> float | None:
        """Return the limit of a level, None when unset (or the level has no field)."""
        value = getattr(self, level, None) if level in SLA_LEVELS else None
        return value if isinstance(value, float) else None


class QuietHours(Strict):
    """A window in which no backup should run, e.g. business hours; may run past midnight."""

    days: Days = Field(default_factory=lambda: list(DAYS))
    from_: Clock = Field(alias="from")
    to: Clock
    timezone: Zone = "UTC"

    @model_validator(mode="after")
    def _check_range(self) -> "QuietHours":
        if self.from_ == self.to:
            raise ValueError("from and to are equal; use from 00:00 to 24:00 for a whole day")
        if self.from_ == 24 * 60:
            raise ValueError("from cannot be 24:00; use 00:00 of the next day")
        return self

    def active(self, now_utc: datetime) -> bool:
        """Return whether an aware instant lies in this window (from inclusive, to exclusive)."""
        local = now_utc.astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        today = DAYS[local.weekday()]
        if self.from_ < self.to:
            return today in self.days and self.from_ <= minute < self.to
        # Overnight: the window belongs to the day it starts on, so mon 22:00-06:00 covers
        # Monday from 22:00 and Tuesday until 06:00.
        yesterday = DAYS[(local.weekday() - 1) % 7]
        return (today in self.days and minute >= self.from_) or (
            yesterday in self.days and minute < self.to
        )


class ExpectedJob(Strict):
    """A job that must exist: exported even when the catalog has never seen it."""

    catalog: LiteralName | None = None  # None: match.catalog, then literal
    client: LiteralName
    job: LiteralName

    @field_validator("catalog", "client", "job")
    @classmethod
    def _literal(cls, value: str | None) -> str | None:
        if value is not None and is_glob(value):
            raise ValueError(f"{value!r} is a pattern; an expected job names one job exactly")
        return value


class Settings(Strict):
    """The limits a policy or the defaults can set."""

    max_age: MaxAge = MaxAge()
    max_copy_lag: Limit = None
    max_runtime: Limit = None
    quiet_hours: list[QuietHours] | None = None  # None: inherit; []: explicitly none
    retention: Limit = None  # restores promised this far back; None: inherit; off: no promise
    require_encryption: bool | None = None  # None: inherit (not required when nowhere set)
    max_verify_age: Limit = None  # how old the last passed verify of a verify job may get
    max_migration_lag: Limit = None  # how far the newest migrated backup may lag the newest
    max_consolidate_age: Limit = None  # how old a Bareos consolidate job's last success may get


# What most shops promise: a full every week and a backup every day (26h leaves room for a slow
# night). Shops on Bacula's stock WeeklyCycle (monthly fulls) set `full: 36d` in sla.defaults.
BUILT_IN_MAX_AGE = {"full": "7d", "differential": "8d", "incremental": "26h"}


class Defaults(Settings):
    """What applies where no policy matches, or where the winning policy leaves a setting unset."""

    max_age: MaxAge = MaxAge.model_validate(BUILT_IN_MAX_AGE)
    max_runtime: Limit = 24 * 3600.0
    max_consolidate_age: Limit = 26 * 3600.0  # Always Incremental consolidates daily

    @model_validator(mode="before")
    @classmethod
    def _merge_built_in(cls, data: Any) -> Any:
        # Setting only `full` must not silently drop the built-in incremental limit.
        if isinstance(data, dict) and isinstance(data.get("max_age"), dict):
            data = {**data, "max_age": {**BUILT_IN_MAX_AGE, **data["max_age"]}}
        return data


class Policy(Settings):
    """An SLA agreed for the jobs its `match` covers."""

    name: LiteralName | None = None
    match: Match = Match()
    expected_jobs: list[ExpectedJob] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_expected(self) -> "Policy":
        for exp in self.expected_jobs:
            catalog = exp.catalog or self.match.catalog
            if is_glob(catalog):
                raise ValueError(
                    f"expected job {exp.client}/{exp.job} needs a catalog: match.catalog "
                    f"is the pattern {self.match.catalog!r}"
                )
            if not self.match.matches(catalog, exp.client, exp.job):
                raise ValueError(
                    f"expected job {exp.client}/{exp.job} in catalog {catalog} is not covered "
                    "by this policy's match"
                )
        return self

    def expected(self) -> list[tuple[str, str, str]]:
        """Return the (catalog, client, job) of the expected jobs."""
        return [(e.catalog or self.match.catalog, e.client, e.job) for e in self.expected_jobs]


class SlaConfig(Strict):
    """The `sla` section of the configuration."""

    defaults: Defaults = Defaults()
    policies: list[Policy] = Field(default_factory=list)


def match_policy(
    policies: Sequence[Policy], catalog: str, client: str, job: str
) -> Policy | None:
    """Return the policy for a job: the most specific match, the first in the file on a tie."""
    best: Policy | None = None
    best_key: tuple[int, int] | None = None
    for policy in policies:
        if not policy.match.matches(catalog, client, job):
            continue
        key = specificity(policy.match)
        # Strictly smaller only: on a tie the earlier policy stays.
        if best_key is None or key < best_key:
            best, best_key = policy, key
    return best


def quiet_hours_active(quiet_hours: Iterable[QuietHours], now_utc: datetime) -> bool:
    """Return whether an aware instant lies inside any of the quiet-hour windows."""
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise ValueError("now_utc must be an aware datetime")
    return any(q.active(now_utc) for q in quiet_hours)


class Effective(NamedTuple):
    """The SLA of one job after policy matching and defaults; inf or None = no limit."""

    policy: Policy | None
    max_age: Mapping[str, float | None]
    max_copy_lag: float | None
    max_runtime: float | None
    quiet_hours: Sequence[QuietHours]
    retention: float | None = None
    require_encryption: bool = False
    max_verify_age: float | None = None
    max_migration_lag: float | None = None
    max_consolidate_age: float | None = None


def effective(
    policies: Sequence[Policy], defaults: Defaults, catalog: str, client: str, job: str
) -> Effective:
    """Return the SLA of one job: its policy's settings, the defaults for what it leaves unset."""
    policy = match_policy(policies, catalog, client, job)

    def pick(own: float | None, fallback: float | None) -> float | None:
        value = own if own is not None else fallback
        return None if value is None or math.isinf(value) else value

    if policy is None:
        return Effective(None, {lv: pick(None, defaults.max_age.get(lv)) for lv in SLA_LEVELS},
                         pick(None, defaults.max_copy_lag), pick(None, defaults.max_runtime),
                         defaults.quiet_hours or [], pick(None, defaults.retention),
                         bool(defaults.require_encryption), pick(None, defaults.max_verify_age),
                         pick(None, defaults.max_migration_lag),
                         pick(None, defaults.max_consolidate_age))
    quiet = policy.quiet_hours if policy.quiet_hours is not None else defaults.quiet_hours
    encrypt = (policy.require_encryption if policy.require_encryption is not None
               else defaults.require_encryption)
    return Effective(
        policy,
        {lv: pick(policy.max_age.get(lv), defaults.max_age.get(lv)) for lv in SLA_LEVELS},
        pick(policy.max_copy_lag, defaults.max_copy_lag),
        pick(policy.max_runtime, defaults.max_runtime),
        quiet or [],
        pick(policy.retention, defaults.retention),
        bool(encrypt),
        pick(policy.max_verify_age, defaults.max_verify_age),
        pick(policy.max_migration_lag, defaults.max_migration_lag),
        pick(policy.max_consolidate_age, defaults.max_consolidate_age),
    )


def restore_window(sla: SlaConfig, margin: float = 86400.0) -> float | None:
    """Return a `restore_window` long enough to judge every retention promise; None without one.

    The exporter only reads backups whose JobTDate lies inside the window, and a restore point
    needs the Full its chain starts with. To find a point `retention` old, the window must reach
    back one full cycle further: retention + the full's maximum age (the policy's, else the
    defaults'; 7 days when neither sets one) + a margin for late runs.
    """
    longest: float | None = None
    for settings in (sla.defaults, *sla.policies):
        own = settings.retention if settings.retention is not None else sla.defaults.retention
        if own is None or math.isinf(own):
            continue
        cycle = settings.max_age.full
        if cycle is None:
            cycle = sla.defaults.max_age.full
        if cycle is None or math.isinf(cycle):
            cycle = parse_duration(BUILT_IN_MAX_AGE["full"])
        window = own + cycle + margin
        longest = window if longest is None else max(longest, window)
    return longest


def unknown_catalogs(sla: SlaConfig, catalogs: Iterable[str]) -> list[str]:
    """Return a problem per policy that names a catalog missing from the config, by key path."""
    names = set(catalogs)
    problems: list[str] = []
    for i, policy in enumerate(sla.policies):
        pattern = policy.match.catalog
        if not any(fnmatchcase(name, pattern) for name in names):
            problems.append(f"sla.policies.{i}.match.catalog: {pattern!r} matches no catalog")
        for j, exp in enumerate(policy.expected_jobs):
            if exp.catalog is not None and exp.catalog not in names:
                problems.append(
                    f"sla.policies.{i}.expected_jobs.{j}.catalog: unknown catalog {exp.catalog!r}"
                )
    return problems

