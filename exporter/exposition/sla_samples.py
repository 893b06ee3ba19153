"""The `bacula_sla_*` samples: what the SLA policies promise, per catalog, client and job.

- `bacula_sla_max_age_seconds{catalog,client,job,level}`: the maximum age of the last successful
  backup at that level. Exported for every (catalog, client, job, level) the catalog has seen and
  whose policy (or the defaults) sets a limit for that level.
- `bacula_sla_max_copy_lag_seconds{catalog,client,job}`: how far the newest offsite copy may lag
  behind the newest backup (`last_success - last_copy`). Only jobs whose policy sets it need copies.
- `bacula_sla_max_runtime_seconds{catalog,client,job}`: how long one run may take, waiting included.
- `bacula_sla_quiet_hours_active{catalog,client,job}`: 1 while now is inside one of the policy's
  quiet hours, 0 outside; absent for jobs without quiet hours.
- `bacula_sla_expected_job{catalog,client,job}`: 1 for every job a policy expects, seen or not, so
  that a job which never ran can alert.
- `bacula_sla_retention_seconds{catalog,client,job}`: how far back the customer is promised a
  restore (`retention`); compared with the oldest restore point. Only jobs with a promise.
- `bacula_sla_encryption_required{catalog,client,job}`: 1 for jobs whose policy sets
  `require_encryption: true`; absent for the others.
- `bacula_sla_max_migration_lag_seconds{catalog,client,job}`: how far the newest migrated backup
  may lag behind the newest backup, like the copy lag. Only jobs whose policy sets it.
- `bacula_sla_max_verify_age_seconds{catalog,client,job}`: how old the last passed run of a verify
  job may get (`max_verify_age`); for the verify jobs seen whose policy sets it.
- `bacula_sla_max_consolidate_age_seconds{catalog,client,job}`: likewise for Bareos consolidate
  jobs (`max_consolidate_age`, built in 26h).
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from exporter.exposition.sla import Defaults, Policy, effective, quiet_hours_active

# name, type, help: the families the exporter renders from `sla_samples`.
FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("bacula_sla_max_age_seconds", "gauge",
     "Maximum age of the last successful backup at this level allowed by the SLA policy."),
    ("bacula_sla_max_copy_lag_seconds", "gauge",
     "Maximum lag of the newest copy behind the newest backup allowed by the SLA policy."),
    ("bacula_sla_max_runtime_seconds", "gauge",
     "Maximum run time of one backup run, waiting included, allowed by the SLA policy."),
    ("bacula_sla_quiet_hours_active", "gauge",
     "1 while the SLA policy's quiet hours (no backups wanted) are in force, else 0."),
    ("bacula_sla_expected_job", "gauge",
     "1 for every job an SLA policy expects, whether or not it has ever run."),
    ("bacula_sla_retention_seconds", "gauge",
     "How far back restores are promised by the SLA policy (oldest restore point's minimum age)."),
    ("bacula_sla_encryption_required", "gauge",
     "1 for every job whose SLA policy requires its backups to be encrypted."),
    ("bacula_sla_max_migration_lag_seconds", "gauge",
     "Maximum lag of the newest migrated backup behind the newest backup allowed by the SLA."),
    ("bacula_sla_max_verify_age_seconds", "gauge",
     "Maximum age of the last passed run of this verify job allowed by the SLA policy."),
    ("bacula_sla_max_consolidate_age_seconds", "gauge",
     "Maximum age of the last good run of this consolidate job allowed by the SLA policy."),
)


class Sample(NamedTuple):
    """One sample of an SLA family."""

    name: str
    labels: dict[str, str]
    value: float


def sla_samples(
    policies: Sequence[Policy],
    defaults: Defaults,
    seen: Iterable[tuple[str, str, str, str]],
    now_utc: datetime,
    checks: Iterable[tuple[str, str, str, str]] = (),
) -> list[Sample]:
    """Return the bacula_sla_* samples for the (catalog, client, job, level) keys seen.

    The checks seen, (kind, catalog, client, job), get their verify or consolidate age only.

    Expected jobs are added whether seen or not; max age is per level, and only for the levels
    seen (levels outside full/incremental/differential have no limit). Samples are sorted by
    family, then labels, so the exposition is stable.
    """
    levels: dict[tuple[str, str, str], set[str]] = {}
    for catalog, client, job, level in seen:
        levels.setdefault((catalog, client, job), set()).add(level)
    expected = {key for policy in policies for key in policy.expected()}
    for key in expected:
        levels.setdefault(key, set())

    out: list[Sample] = []
    for (catalog, client, job), seen_levels in sorted(levels.items()):
        sla = effective(policies, defaults, catalog, client, job)
        base = {"catalog": catalog, "client": client, "job": job}
        for level in sorted(seen_levels):
            limit = sla.max_age.get(level)
            if limit is not None:
                out.append(Sample("bacula_sla_max_age_seconds", {**base, "level": level}, limit))
        if sla.max_copy_lag is not None:
            out.append(Sample("bacula_sla_max_copy_lag_seconds", base, sla.max_copy_lag))
        if sla.max_runtime is not None:
            out.append(Sample("bacula_sla_max_runtime_seconds", base, sla.max_runtime))
        if sla.quiet_hours:
            active = quiet_hours_active(sla.quiet_hours, now_utc)
            out.append(Sample("bacula_sla_quiet_hours_active", base, 1.0 if active else 0.0))
        if (catalog, client, job) in expected:
            out.append(Sample("bacula_sla_expected_job", base, 1.0))
        if sla.retention is not None:
            out.append(Sample("bacula_sla_retention_seconds", base, sla.retention))
        if sla.require_encryption:
            out.append(Sample("bacula_sla_encryption_required", base, 1.0))
        if sla.max_migration_lag is not None:
            out.append(Sample("bacula_sla_max_migration_lag_seconds", base, sla.max_migration_lag))
    for kind, catalog, client, job in sorted(set(checks)):
        sla = effective(policies, defaults, catalog, client, job)
        limit = {"verify": sla.max_verify_age, "consolidate": sla.max_consolidate_age}.get(kind)
        if limit is not None:
            base = {"catalog": catalog, "client": client, "job": job}
            out.append(Sample(f"bacula_sla_max_{kind}_age_seconds", base, limit))
    order = {name: i for i, (name, _, _) in enumerate(FAMILIES)}
    out.sort(key=lambda s: (order[s.name], sorted(s.labels.items())))
    return out
