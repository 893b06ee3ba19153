"""Pool and Media queries: volumes per pool and status, the media lifecycle, writable headroom.

Pools are few and Media is one pass without a JobMedia join, so these stay cheap on any catalog.
"""

import time
from zoneinfo import ZoneInfo

from exporter.catalog.engines import Session
from exporter.catalog.media import PoolRules, Volume, headroom, lifecycle
from exporter.catalog.model import CatalogModel, Pool
from exporter.catalog.rows import CatalogInfo, as_int, as_text
from exporter.catalog.times import local_to_epoch


def read_pools(session: Session, model: CatalogModel, info: CatalogInfo | None) -> dict[str, Pool]:
    """Count volumes per pool and status, sum their bytes, and take the pool's capacity."""
    # Pool.MaxPoolBytes exists from Bacula 11 (1022) on.
    has_max = info is not None and info.product == "bacula" and info.version >= 1022
    max_pool = ", p.MaxPoolBytes" if has_max else ""
    rows = session.query(
        f"SELECT p.Name, p.MaxVols, m.VolStatus, COUNT(m.MediaId), SUM(m.VolBytes), "
        f"p.MaxVolBytes{max_pool} FROM Pool p LEFT JOIN Media m ON m.PoolId = p.PoolId "
        f"GROUP BY p.Name, p.MaxVols, m.VolStatus, p.MaxVolBytes{max_pool}"
    )
    pools: dict[str, Pool] = {}
    for row in rows:
        name = as_text(row[0], model)
        if name is None:
            continue
        max_vols, max_vol_bytes = as_int(row[1]), as_int(row[5])
        max_pool_bytes = as_int(row[6]) if has_max else 0
        capacity = max_pool_bytes or (max_vols * max_vol_bytes)
        pool = pools.setdefault(name, Pool({}, 0, max_vols, capacity))
        status = as_text(row[2], model)
        if status is not None and as_int(row[3]) > 0:
            key = status.lower()
            pool.volumes[key] = pool.volumes.get(key, 0) + as_int(row[3])
        pools[name] = Pool(pool.volumes, pool.bytes + max(0, as_int(row[4])),
                           pool.max_volumes, pool.capacity)
    return pools


def read_volumes(
    session: Session, model: CatalogModel, zone: ZoneInfo, named: bool = False
) -> list[Volume]:
    """Read what the media lifecycle needs of every volume (one pass over Media); with named,
    also their names and bytes, for the series per volume."""
    # Names only when exposed: a catalog can hold a million volumes, each name a string.
    extra = "m.VolumeName, m.VolBytes" if named else "NULL, 0"
    rows = session.query(
        "SELECT p.Name, m.VolStatus, m.LastWritten, m.VolRetention, m.Recycle, m.VolErrors, "
        f"m.InChanger, s.Name, rp.Name, m.Enabled, {extra} "
        "FROM Media m JOIN Pool p ON p.PoolId = m.PoolId "
        "LEFT JOIN Storage s ON s.StorageId = m.StorageId "
        "LEFT JOIN Pool rp ON rp.PoolId = m.RecyclePoolId"
    )
    volumes = []
    for row in rows:
        pool, status = as_text(row[0], model), as_text(row[1], model)
        if pool is None or status is None:
            continue
        volumes.append(Volume(
            pool=pool, status=status.lower(), last_written=local_to_epoch(row[2], zone),
            retention=float(as_int(row[3])), recycle=as_int(row[4]) != 0,
            errors=as_int(row[5]), in_changer=as_int(row[6]) != 0,
            storage=as_text(row[7], model) or "", recycle_pool=as_text(row[8], model) or "",
            enabled=as_int(row[9]) == 1, name=as_text(row[10], model) or "",
            bytes=max(0, as_int(row[11])),
        ))
    return volumes


def read_pool_rules(
    session: Session, model: CatalogModel, pools: dict[str, Pool]
) -> dict[int, PoolRules]:
    """Read each pool's limits and links: MaxVols, LabelFormat, scratch pool, next pool."""
    rows = session.query(
        "SELECT p.PoolId, p.Name, p.MaxVols, p.LabelFormat, sp.Name, np.Name FROM Pool p "
        "LEFT JOIN Pool sp ON sp.PoolId = p.ScratchPoolId "
        "LEFT JOIN Pool np ON np.PoolId = p.NextPoolId"
    )
    names = {as_text(row[1], model) for row in rows}
    rules = {}
    for pool_id, name_, max_vols, label_format, scratch, next_pool in rows:
        name = as_text(name_, model)
        if name is None:
            continue
        label = (as_text(label_format, model) or "").strip()
        # Without a ScratchPoolId Bacula takes volumes from the pool named Scratch.
        spare = as_text(scratch, model) or ("Scratch" if "Scratch" in names else "")
        held = sum(pools[name].volumes.values()) if name in pools else 0
        rules[as_int(pool_id)] = PoolRules(
            as_int(pool_id), name, as_int(max_vols), held, label not in ("", "*"), spare,
            as_text(next_pool, model) or "")
    return rules


def read_media(
    session: Session, model: CatalogModel, zone: ZoneInfo, info: CatalogInfo | None,
    keep_volumes: bool = False,
) -> None:
    """Read pools, the media lifecycle per pool (as of now), the pools' rules, and the volumes
    themselves when they are to be exposed."""
    pools = read_pools(session, model, info)
    volumes = read_volumes(session, model, zone, keep_volumes)
    media = lifecycle(volumes, time.time())
    rules = read_pool_rules(session, model, pools)
    headroom(rules.values(), media)
    model.set_pools(pools)
    model.set_media(media, rules, volumes if keep_volumes else [])
