"""The overview behind the status page and the `status` command: one row per job and level."""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

from exporter.catalog.codes import FAILED
from exporter.exposition.pools import pool_jobs
from exporter.exposition.sla import SlaConfig, effective
from exporter.service.poller import CatalogPoller

# (catalog, client, job, level) -> the SLA's maximum age in seconds, or None for no limit.
AgeLimit = Callable[[str, str, str, str], float | None]


class Standing(IntEnum):
    """How a job stands, in rising order of trouble (sorting and exit codes rely on it)."""

    OK = 0
    FAILING = 1  # the last run failed, the last success is still within its SLA
    LATE = 2  # the last success is older than the SLA allows
    NEVER = 3  # no successful backup at all

    @property
    def label(self) -> str:
        """Return the lowercase name shown to people."""
        return self.name.lower()


@dataclass(frozen=True)
class StatusRow:
    """One client, job and level of one catalog."""

    catalog: str
    client: str
    job: str
    level: str
    standing: Standing
    last_success: float | None
    max_age: float | None
    last_status: str  # status class of the last finished run, "" when none
    last_failure: float | None
    reason: str
    running_since: float | None
    bytes: int
    virtual_full: bool = False  # the last success was a Virtual Full (Bacula 15 says so)

    def age(self, now: float) -> float | None:
        """Return the age of the last success."""
        return None if self.last_success is None else max(0.0, now - self.last_success)


@dataclass(frozen=True)
class CatalogHealth:
    """Whether a catalog could be read."""

    name: str
    up: bool
    error: str
    product: str
    version: int


def overview(
    pollers: Iterable[CatalogPoller], max_age: AgeLimit, now: float,
    expected: Iterable[tuple[str, str, str]] = (),
) -> tuple[list[StatusRow], list[CatalogHealth]]:
    """Build the rows of every catalog, worst first, and the health of each catalog."""
    wanted = set(expected)
    rows: list[StatusRow] = []
    health: list[CatalogHealth] = []
    for poller in pollers:
        name, model = poller.cfg.name, poller.model
        info = poller.info
        health.append(CatalogHealth(name, poller.up, poller.error,
                                    info.product if info else "", info.version if info else 0))
        running = model.running()
        seen_clients = set()
        seen_jobs = {(name, client, job) for client, job, _ in dict(model.series)}
        for catalog, client, job in sorted(wanted - seen_jobs):
            if catalog == name:
                seen_clients.add(client)
                rows.append(StatusRow(name, client, job, "", Standing.NEVER, None, None, "", None,
                                "expected by an SLA policy; it never ran", None, 0))
        # dict() copies in one step under the GIL: safe while the poll thread updates the model.
        for (client, job, level), s in dict(model.series).items():
            seen_clients.add(client)
            limit = max_age(name, client, job, level)
            ok = s.last_success
            last = s.last_run
            if ok is None:
                verdict = Standing.NEVER
            elif limit is not None and now - ok.time > limit:
                verdict = Standing.LATE
            elif last is not None and last.status in FAILED:
                verdict = Standing.FAILING
            else:
                verdict = Standing.OK
            rows.append(StatusRow(
                catalog=name, client=client, job=job, level=level, standing=verdict,
                last_success=ok.time if ok else None, max_age=limit,
                last_status=last.status.value if last else "",
                last_failure=s.last_failure.time if s.last_failure else None,
                reason=s.reason, running_since=running.get((client, job, level)),
                bytes=ok.bytes if ok else 0, virtual_full=bool(ok and ok.virtual_full),
            ))
        for (client, job, level), since in running.items():
            if (client, job, level) not in model.series:
                seen_clients.add(client)
                rows.append(StatusRow(name, client, job, level, Standing.NEVER, None,
                                max_age(name, client, job, level), "", None, "", since, 0))
        # Verify and admin jobs: failing while their last run failed (a verify's differences
        # too); a verify late past its max_verify_age. The level column says which kind.
        for (kind, client, job, level), check in dict(model.checks).items():
            last = check.last_run
            if last is None:
                continue
            failed = last.status in FAILED
            aged = kind in ("verify", "consolidate")
            limit = max_age(name, client, job, level or kind) if aged else None
            late = limit is not None and now - (check.last_success or 0.0) > limit
            verdict = Standing.LATE if late else Standing.FAILING if failed else Standing.OK
            reason = f"{kind} job ended {last.status.value}" if failed else ""
            rows.append(StatusRow(
                name, client, job, level or kind, verdict, check.last_success, limit,
                last.status.value, last.time if failed else None,
                reason or (f"no {kind} passed within its SLA age" if late else ""), None, 0))
        # A pool that backups use with no volume left to write: their next runs will wait.
        used = pool_jobs(model)
        for pool, figures in dict(model.media).items():
            if used[pool] and figures.headroom and not sum(figures.headroom.values()):
                rows.append(StatusRow(
                    name, "", pool, "pool", Standing.FAILING, None, None, "", None,
                    f"no volume left to write; {used[pool]} job(s) use this pool", None, 0))
        for info_ in list(model.clients.values()):
            if info_.name not in seen_clients:
                # A registered client that never ran a backup: the case nobody else alerts on.
                rows.append(StatusRow(name, info_.name, "", "", Standing.NEVER, None, None, "",
                                      None, "no backup job has run for this client", None, 0))
    rows.sort(key=lambda r: (-r.standing, r.catalog, r.client, r.job, r.level))
    return rows, health


def human_age(seconds: float | None) -> str:
    """Return an age such as 3d 4h, 5h 12m or 40s."""
    if seconds is None:
        return "never"
    s = int(seconds)
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if s >= size:
            rest = (s % size) // subsize
            return f"{s // size}{unit} {rest}{sub}" if rest else f"{s // size}{unit}"
    return f"{s // 60}m" if s >= 60 else f"{s}s"


def problems(rows: Iterable[StatusRow]) -> dict[Standing, int]:
    """Count rows by standing."""
    counts = dict.fromkeys(Standing, 0)
    for row in rows:
        counts[row.standing] += 1
    return counts


def level_of_trouble(rows: list[StatusRow], health: list[CatalogHealth]) -> tuple[int, str]:
    """Return a Nagios/Icinga exit code and its one-line message with perfdata."""
    counts = problems(rows)
    running = sum(1 for r in rows if r.running_since is not None)
    perf = (f"ok={counts[Standing.OK]} failing={counts[Standing.FAILING]} "
            f"late={counts[Standing.LATE]} never={counts[Standing.NEVER]} running={running}")
    down = [h for h in health if not h.up]
    if down:
        names = ", ".join(f"{h.name} ({h.error})" for h in down)
        return 3, f"BACULA UNKNOWN - catalog unreachable: {names} | {perf}"
    worst = [r for r in rows if r.standing >= Standing.LATE]
    if worst:
        shown = "; ".join(
            f"{r.client}/{r.job or '-'}/{r.level or '-'} {r.standing.label}" for r in worst[:5]
        )
        more = f" and {len(worst) - 5} more" if len(worst) > 5 else ""
        return 2, f"BACULA CRITICAL - {len(worst)} out of SLA: {shown}{more} | {perf}"
    failing = [r for r in rows if r.standing is Standing.FAILING]
    if failing:
        shown = "; ".join(f"{r.client}/{r.job}/{r.level} last run {r.last_status}"
                          for r in failing[:5])
        return 1, f"BACULA WARNING - {len(failing)} failing: {shown} | {perf}"
    return 0, f"BACULA OK - {len(rows)} jobs within SLA | {perf}"


def sla_max_age(sla: SlaConfig) -> AgeLimit:
    """Return the max-age lookup of the SLA policies (and of verify and consolidate jobs)."""

    @lru_cache(maxsize=65536)
    def limits(catalog: str, client: str, job: str) -> Mapping[str, float | None]:
        sla_ = effective(sla.policies, sla.defaults, catalog, client, job)
        return {**sla_.max_age, "verify": sla_.max_verify_age,
                "consolidate": sla_.max_consolidate_age}

    def lookup(catalog: str, client: str, job: str, level: str) -> float | None:
        # Verify levels (verify-catalog...) share max_verify_age; "consolidate" its own age.
        return limits(catalog, client, job).get("verify" if level.startswith("verify") else level)

    return lookup

