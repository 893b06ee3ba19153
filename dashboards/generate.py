"""Generate the Grafana dashboards as code: `python dashboards/generate.py` rewrites the JSON."""

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    dashboard,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    VariableRefresh,
    VariableSort,
)

HERE = Path(__file__).resolve().parent
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'catalog=~"$catalog",client=~"$client"'
KEYS = "catalog,client,job,level"
# The Director's live view (docs/director.md): its series carry `director` besides the catalog's
# labels. Aggregated by their own labels so that two exporter replicas show once.
DIR_SEL = 'catalog=~"$catalog"'
DIR_JOB = "director,catalog,client,job,level"
DEVICE = "director,catalog,storage,device"
CAT = 'catalog=~"$catalog"'
POOL_MAX = "max by (catalog, pool) "


def query(expr: str, legend: str = "", instant: bool = False) -> prometheus.Dataquery:
    """A Prometheus query bound to the datasource variable."""
    q = prometheus.Dataquery().expr(expr).datasource(DS)
    if legend:
        q = q.legend_format(legend)
    return q.instant().format("table") if instant else q.range()  # type: ignore[arg-type]


def variables(d: dashboard.Dashboard, multi_client: bool) -> dashboard.Dashboard:
    """The datasource, catalog and client variables every dashboard has."""
    d = d.with_variable(
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
    )
    d = d.with_variable(
        dashboard.QueryVariable("catalog").label("Catalog").datasource(DS)
        .query("label_values(bacula_catalog_up, catalog)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC).multi(True).include_all(True).all_value(".*")
    )
    client = (
        dashboard.QueryVariable("client").label("Client").datasource(DS)
        .query('label_values(bacula_client_info{catalog=~"$catalog"}, client)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
    )
    if multi_client:
        client = client.multi(True).include_all(True).all_value(".*")
    return d.with_variable(client)


def overview() -> dashboard.Dashboard:
    """Which customer is unprotected: SLA, failures, copies, running jobs, health."""
    d = (
        dashboard.Dashboard("Bacula / Overview").uid("bacula-overview")
        .tags(["bacula", "backup"]).refresh("1m").time("now-7d", "now").timezone("browser")
        .description("Per client and job: last good backup against its SLA, failures, copies.")
    )
    d = variables(d, multi_client=True)
    d = d.with_row(dashboard.Row("Protection at a glance"))
    d = d.with_panel(
        stat.Panel().title("Backups out of SLA").span(6).height(4).datasource(DS)
        .with_target(query(
            f"count((time() - bacula_job_last_success_timestamp_seconds{{{SEL}}}) "
            f"> on({KEYS}) bacula_sla_max_age_seconds) or vector(0)"))
        .description("Job levels whose last success is older than the SLA allows.")
    )
    d = d.with_panel(
        stat.Panel().title("Clients never backed up").span(6).height(4).datasource(DS)
        .with_target(query(
            f"count(bacula_client_info{{{SEL}}} unless on(catalog,client) "
            "bacula_job_last_success_timestamp_seconds) or vector(0)"))
    )
    d = d.with_panel(
        stat.Panel().title("Last run failed").span(6).height(4).datasource(DS)
        .with_target(query(
            f'count(bacula_job_last_run_status{{{SEL},status=~"error|canceled"}} == 1) '
            "or vector(0)"))
    )
    d = d.with_panel(
        stat.Panel().title("Running jobs").span(6).height(4).datasource(DS)
        .with_target(query(f"sum(bacula_job_running{{{SEL}}}) or vector(0)"))
    )
    d = d.with_row(dashboard.Row("Per job"))
    d = d.with_panel(
        table.Panel().title("Age of the last success against the SLA").span(24).height(10)
        .datasource(DS).unit("s")
        .description("Age of the last good backup per client, job and level; SLA column: limit.")
        .with_target(query(
            f"time() - bacula_job_last_success_timestamp_seconds{{{SEL}}}", instant=True)
            .ref_id("age"))
        .with_target(query(f"bacula_sla_max_age_seconds{{{SEL}}}", instant=True).ref_id("sla"))
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
    )
    d = d.with_panel(
        table.Panel().title("Status of the last run").span(12).height(8).datasource(DS)
        .with_target(query(f"bacula_job_last_run_status{{{SEL}}} == 1", instant=True))
    )
    d = d.with_panel(
        table.Panel().title("Offsite copy lag").span(12).height(8).datasource(DS).unit("s")
        .description("Newest backup minus the newest backup that has a successful copy.")
        .with_target(query(
            f"bacula_job_last_success_timestamp_seconds{{{SEL}}} - on({KEYS}) "
            "bacula_job_last_copy_timestamp_seconds", instant=True))
    )
    d = d.with_row(dashboard.Row("Over time"))
    d = d.with_panel(
        timeseries.Panel().title("Failed runs").span(8).height(8).datasource(DS)
        .with_target(query(
            f"sum by (client) (increase(bacula_job_failures_total{{{SEL}}}[1h]))", "{{client}}"))
    )
    d = d.with_panel(
        timeseries.Panel().title("Bytes written per day").span(8).height(8).datasource(DS)
        .unit("bytes")
        .with_target(query(
            f"sum by (client) (increase(bacula_job_bytes_total{{{SEL}}}[1d]))", "{{client}}"))
    )
    d = d.with_panel(
        timeseries.Panel().title("Running jobs").span(8).height(8).datasource(DS)
        .with_target(query(f"sum by (client) (bacula_job_running{{{SEL}}})", "{{client}}"))
    )
    d = d.with_row(dashboard.Row("Pools, catalogs and the exporter"))
    d = d.with_panel(
        bargauge.Panel().title("Volumes by pool and status").span(12).height(8).datasource(DS)
        .with_target(query('sum by (pool, status) (bacula_pool_volumes{catalog=~"$catalog"})',
                           "{{pool}} {{status}}"))
    )
    d = d.with_panel(
        bargauge.Panel().title("Writable volumes per pool").span(12).height(8).datasource(DS)
        .description("Appendable, recyclable now, from the scratch pool, or still to be labeled "
                     "below MaxVols (Inf: labels without a limit).")
        .with_target(query(
            'sum by (pool) (max by (catalog, pool, source) '
            '(bacula_pool_headroom_volumes{catalog=~"$catalog"}))', "{{pool}}"))
    )
    d = d.with_panel(
        table.Panel().title("Days until full per pool").span(12).height(8).datasource(DS)
        .unit("d").description("Room left below the pool's capacity at the last two days' growth "
                               "(Inf: not growing). Only pools that state a capacity.")
        .with_target(query(
            f"({POOL_MAX}(bacula_pool_capacity_bytes{{{CAT}}}) - on (catalog, pool) "
            f"{POOL_MAX}(bacula_pool_bytes{{{CAT}}})) / on (catalog, pool) "
            f"(clamp_min({POOL_MAX}(deriv(bacula_pool_bytes{{{CAT}}}[2d])), 0) * 86400)",
            instant=True))
    )
    d = d.with_panel(
        bargauge.Panel().title("Volumes expiring soon").span(12).height(8).datasource(DS)
        .description("Volumes whose retention ends within a day or a week, beyond those "
                     "recyclable already, by the pool they will be recycled into.")
        .with_target(query(
            f'sum by (pool, within) (bacula_pool_volumes_recyclable{{{CAT},within=~"1d|7d"}}) '
            "- ignoring (within) group_left sum by (pool) "
            f'(bacula_pool_volumes_recyclable{{{CAT},within="now"}})', "{{pool}} {{within}}"))
    )
    d = d.with_panel(
        bargauge.Panel().title("Restorable bytes per client").span(12).height(8).datasource(DS)
        .unit("bytes")
        .description("Bytes of the good backups inside the restore window that some restore "
                     "point still needs (volumes not purged).")
        .with_target(query(f"sum by (client) (bacula_job_restorable_bytes{{{SEL}}})",
                           "{{client}}"))
    )
    d = d.with_panel(
        timeseries.Panel().title("Catalog up and poll duration").span(12).height(8)
        .datasource(DS)
        .with_target(query('bacula_catalog_up{catalog=~"$catalog"}', "{{catalog}} up"))
        .with_target(query('bacula_catalog_poll_duration_seconds{catalog=~"$catalog"}',
                           "{{catalog}} poll s"))
        .with_target(query(
            'time() - bacula_catalog_last_poll_success_timestamp_seconds{catalog=~"$catalog"}',
            "{{catalog}} since last good poll s"))
    )
    return director_row(d)


def unit_of(column: str, unit: str) -> tuple[str, list[DynamicConfigValue]]:
    """A table column override: the merged column of a query (`Value #<refId>`) gets a unit."""
    return f"Value #{column}", [DynamicConfigValue(id_val="unit", value=unit)]


def director_row(d: dashboard.Dashboard) -> dashboard.Dashboard:
    """What the Directors say now: up, jobs by state, waits, schedules, storage devices."""
    d = d.with_row(dashboard.Row("Director"))
    d = d.with_panel(
        stat.Panel().title("Director up").span(8).height(4).datasource(DS)
        .description("1 when the last poll reached the Director through bconsole.")
        .with_target(query(f"max by (director) (bacula_director_up{{{DIR_SEL}}})",
                           "{{director}}"))
    )
    d = d.with_panel(
        stat.Panel().title("Jobs waiting for an operator").span(8).height(4).datasource(DS)
        .description("Jobs waiting for a volume, a mount or an operator.")
        .with_target(query(
            f"sum(max by (director, state) "
            f'(bacula_director_jobs{{{DIR_SEL},state=~"media|mount|operator"}})) or vector(0)'))
    )
    d = d.with_panel(
        stat.Panel().title("Missed scheduled runs").span(8).height(4).datasource(DS)
        .description("Scheduled runs that did not start and have not run since.")
        .with_target(query(
            f"count(max by ({DIR_JOB}) (bacula_director_schedule_missed{{{SEL}}}) == 1) "
            "or vector(0)"))
    )
    d = d.with_panel(
        timeseries.Panel().title("Director jobs by state").span(12).height(8).datasource(DS)
        .with_target(query(
            f"sum by (state) (max by (director, state) (bacula_director_jobs{{{DIR_SEL}}}))",
            "{{state}}"))
    )
    d = d.with_panel(
        table.Panel().title("Waiting jobs: how long").span(12).height(8).datasource(DS)
        .unit("s")
        .description("Runs not running, by what they wait for, and since how long.")
        .with_target(query(
            f"time() - min by ({DIR_JOB}, state) "
            f'(bacula_director_job_state_since_timestamp_seconds{{{SEL},state!="running"}})',
            instant=True))
    )
    next_run = unit_of("next", "dateTimeAsIso")
    d = d.with_panel(
        table.Panel().title("Scheduled runs: next run and missed").span(12).height(8)
        .datasource(DS)
        .description("The next run within 24 hours; missed 1: a slot was missed and no run "
                     "started since (BaculaScheduledJobMissed names the slot).")
        .with_target(query(
            f"min by ({DIR_JOB}) (bacula_director_next_run_timestamp_seconds{{{SEL}}}) * 1000",
            instant=True).ref_id("next"))
        .with_target(query(
            f"max by ({DIR_JOB}) (bacula_director_schedule_missed{{{SEL}}})", instant=True)
            .ref_id("missed"))
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .override_by_name(*next_run)
    )
    d = d.with_panel(
        table.Panel().title("Storage devices: free, size, blocked").span(12).height(8)
        .datasource(DS)
        .description("Free space and size of the file system behind each File device; "
                     "blocked 1: waiting for a volume, a mount or an operator.")
        .with_target(query(
            f"max by ({DEVICE}) (bacula_storage_device_free_bytes{{{DIR_SEL}}})",
            instant=True).ref_id("free"))
        .with_target(query(
            f"max by ({DEVICE}) (bacula_storage_device_size_bytes{{{DIR_SEL}}})",
            instant=True).ref_id("size"))
        .with_target(query(
            f"max by ({DEVICE}) (bacula_storage_device_blocked{{{DIR_SEL}}})", instant=True)
            .ref_id("blocked"))
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .override_by_name(*unit_of("free", "bytes"))
        .override_by_name(*unit_of("size", "bytes"))
    )
    d = d.with_panel(
        timeseries.Panel().title("Storage devices: free space").span(12).height(8)
        .datasource(DS).unit("percentunit").min(0).max(1)
        .description("Free share of each device's file system; BaculaStorageSpaceLow fires "
                     "below 10% or when the trend reaches 0 within a day.")
        .with_target(query(
            f"max by (storage, device) (bacula_storage_device_free_bytes{{{DIR_SEL}}}) "
            f"/ max by (storage, device) (bacula_storage_device_size_bytes{{{DIR_SEL}}} > 0)",
            "{{storage}} {{device}}"))
    )
    return d


def client_dashboard() -> dashboard.Dashboard:
    """One client: run history, duration and size trends, last failure."""
    one = 'catalog=~"$catalog",client="$client"'
    d = (
        dashboard.Dashboard("Bacula / Client").uid("bacula-client").tags(["bacula", "backup"])
        .refresh("1m").time("now-30d", "now").timezone("browser")
        .description("One client's backups: history, trends and the last failure.")
    )
    d = variables(d, multi_client=False)
    d = d.with_panel(
        table.Panel().title("Last success per job and level").span(12).height(8)
        .datasource(DS).unit("dateTimeAsIso")
        .with_target(query(f"bacula_job_last_success_timestamp_seconds{{{one}}} * 1000",
                           instant=True))
    )
    d = d.with_panel(
        table.Panel().title("Last failure").span(12).height(8).datasource(DS)
        .unit("dateTimeAsIso")
        .with_target(query(f"bacula_job_last_failure_timestamp_seconds{{{one}}} * 1000",
                           instant=True))
    )
    d = d.with_panel(
        timeseries.Panel().title("Runs and failures per hour").span(24).height(8).datasource(DS)
        .with_target(query(f"sum by (job, level) (increase(bacula_job_runs_total{{{one}}}[1h]))",
                           "{{job}} {{level}} runs"))
        .with_target(query(
            f"sum by (job, level) (increase(bacula_job_failures_total{{{one}}}[1h]))",
            "{{job}} {{level}} failures"))
    )
    d = d.with_panel(
        timeseries.Panel().title("Duration of the last success").span(12).height(8)
        .datasource(DS).unit("s")
        .with_target(query(f"bacula_job_last_success_duration_seconds{{{one}}}",
                           "{{job}} {{level}}"))
    )
    d = d.with_panel(
        timeseries.Panel().title("Size of the last success").span(12).height(8).datasource(DS)
        .unit("bytes")
        .with_target(query(f"bacula_job_last_success_bytes{{{one}}}", "{{job}} {{level}}"))
    )
    d = d.with_panel(
        timeseries.Panel().title("Restorable bytes per job").span(24).height(8).datasource(DS)
        .unit("bytes")
        .description("Bytes of the good backups inside the restore window that some restore "
                     "point still needs: falls when volumes are purged or recycled.")
        .with_target(query(f"bacula_job_restorable_bytes{{{one}}}", "{{job}}"))
    )
    return d


DASHBOARDS = {"overview.json": overview, "client.json": client_dashboard}


def number(model: dict[str, Any]) -> dict[str, Any]:
    """Give panels unique ids and queries their letters (the builders leave both unset)."""
    for i, panel in enumerate(model["panels"], start=1):
        panel["id"] = i
        for j, target in enumerate(panel.get("targets", [])):
            target["refId"] = target.get("refId") or "ABCDEFGH"[j]
    return model


def render() -> dict[str, str]:
    """Return the JSON text of every dashboard by file name."""
    out = {}
    for name, build in DASHBOARDS.items():
        model = json.loads(json.dumps(build().build(), cls=JSONEncoder))
        out[name] = json.dumps(number(model), indent=2, sort_keys=True) + "\n"
    return out


if __name__ == "__main__":
    for name, text in render().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}", file=sys.stderr)
