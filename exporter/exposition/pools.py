"""Pool and volume families: volumes by status, capacity, the media lifecycle, headroom."""

from collections import Counter, defaultdict

from exporter.catalog.codes import BACKUP, level_name
from exporter.catalog.media import Lifecycle, Volume, expires_at
from exporter.catalog.model import CatalogModel, Pool
from exporter.exposition.text import Lines, escape, number

# name, type, help, in the order they are rendered.
POOL_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("bacula_pool_volumes", "gauge", "Volumes of a pool by volume status."),
    ("bacula_pool_bytes", "gauge", "Bytes on the volumes of a pool."),
    ("bacula_pool_max_volumes", "gauge", "MaxVols of a pool (0 = no limit)."),
    ("bacula_pool_capacity_bytes", "gauge",
     "What a pool may hold: MaxPoolBytes, else MaxVols x MaxVolBytes; only where set."),
    ("bacula_pool_volumes_recyclable", "gauge",
     "Volumes that Bacula may recycle into this pool now, within 1 day or within 7 days."),
    ("bacula_pool_volumes_errors", "gauge", "Volumes of a pool in Error status or with VolErrors."),
    ("bacula_pool_volumes_in_changer", "gauge",
     "Volumes of a pool in an autochanger (InChanger), by the storage they were last in."),
    ("bacula_pool_volumes_in_changer_appendable", "gauge",
     "Appendable volumes of a pool in an autochanger, by storage."),
    ("bacula_pool_headroom_volumes", "gauge",
     "Volumes a job of this pool can still get: append, recyclable now, scratch, new (+Inf: "
     "labels new volumes without a limit)."),
    ("bacula_pool_jobs", "gauge",
     "Backup jobs (client, job, level) whose last run used this pool, or whose copies go to it."),
    # Per volume, only with the catalog's expose_volumes: true.
    ("bacula_volume_status", "gauge", "1 for the status of a volume (expose_volumes)."),
    ("bacula_volume_bytes", "gauge", "Bytes on a volume (expose_volumes)."),
    ("bacula_volume_last_written_timestamp_seconds", "gauge",
     "When a volume was last written (expose_volumes)."),
    ("bacula_volume_expires_timestamp_seconds", "gauge",
     "When a Full or Used volume's retention ends and Bacula may recycle it (expose_volumes)."),
)


def render_pools(cat: str, items: list[tuple[str, Pool]]) -> Lines:
    """Render the volumes, bytes and limits of each pool (cat: the catalog label)."""
    out: Lines = defaultdict(list)
    for name, pool in items:
        pool_key = f'{cat},pool="{escape(name)}"'
        for status, count in sorted(pool.volumes.items()):
            out["bacula_pool_volumes"].append(f'{{{pool_key},status="{escape(status)}"}} {count}')
        out["bacula_pool_bytes"].append(f"{{{pool_key}}} {pool.bytes}")
        out["bacula_pool_max_volumes"].append(f"{{{pool_key}}} {pool.max_volumes}")
        if pool.capacity:
            out["bacula_pool_capacity_bytes"].append(f"{{{pool_key}}} {pool.capacity}")
    return out


def render_media(cat: str, items: list[tuple[str, Lifecycle]]) -> Lines:
    """Render the media lifecycle of each pool: recyclable, in error, in a changer, headroom."""
    out: Lines = defaultdict(list)
    for name, media in items:
        pool_key = f'{cat},pool="{escape(name)}"'
        for within, count in media.recyclable.items():
            out["bacula_pool_volumes_recyclable"].append(
                f'{{{pool_key},within="{within}"}} {count}')
        out["bacula_pool_volumes_errors"].append(f"{{{pool_key}}} {media.errors}")
        for storage, count in sorted(media.in_changer.items()):
            storage_key = f'{pool_key},storage="{escape(storage)}"'
            out["bacula_pool_volumes_in_changer"].append(f"{{{storage_key}}} {count}")
            out["bacula_pool_volumes_in_changer_appendable"].append(
                f"{{{storage_key}}} {media.in_changer_appendable.get(storage, 0)}")
        for source, room in media.headroom.items():
            out["bacula_pool_headroom_volumes"].append(
                f'{{{pool_key},source="{source}"}} {number(room)}')
    return out


def render_volumes(cat: str, items: list[tuple[tuple[str, str], Volume]]) -> Lines:
    """Render one volume's series (only with expose_volumes)."""
    out: Lines = defaultdict(list)
    for (pool, name), vol in items:
        key = f'{cat},pool="{escape(pool)}",volume="{escape(name)}"'
        out["bacula_volume_status"].append(f'{{{key},status="{escape(vol.status)}"}} 1')
        out["bacula_volume_bytes"].append(f"{{{key}}} {vol.bytes}")
        if vol.last_written is not None:
            out["bacula_volume_last_written_timestamp_seconds"].append(
                f"{{{key}}} {number(vol.last_written)}")
        expires = expires_at(vol)
        if expires is not None:
            out["bacula_volume_expires_timestamp_seconds"].append(f"{{{key}}} {number(expires)}")
    return out


def render_pool_jobs(cat: str, items: list[tuple[str, int]]) -> Lines:
    """Render how many backup jobs use each pool."""
    return {"bacula_pool_jobs": [f'{{{cat},pool="{escape(name)}"}} {count}'
                                 for name, count in items]}


def pool_job_counts(state: CatalogModel) -> dict[str, int]:
    """Return the jobs per pool for every pool the catalog names (0 included)."""
    used = pool_jobs(state)
    return {name: used[name] for name in {rule.name for rule in state.pool_rules.values()}}


def pool_jobs(state: CatalogModel) -> Counter[str]:
    """Count the backup keys per pool their last (or running) run used, and its NextPool."""
    rules = state.pool_rules
    used: dict[tuple[str, str, str], int] = {
        key: s.last_run.pool_id for key, s in dict(state.series).items() if s.last_run}
    for rec in list(state.active.values()):
        # A job that never finished, e.g. one waiting for a volume of an exhausted pool.
        client = state.clients.get(rec.client_id)
        if rec.type == BACKUP and client is not None:
            used.setdefault((client.name, rec.name, level_name(rec.level) or ""), rec.pool_id)
    out: Counter[str] = Counter()
    for pool_id in used.values():
        rule = rules.get(pool_id)
        if rule is not None:
            out[rule.name] += 1
            if rule.next_pool and rule.next_pool != rule.name:
                out[rule.next_pool] += 1  # where copy and migration jobs write its backups
    return out
