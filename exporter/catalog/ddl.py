"""Tables the exporter reads, per catalog version and engine, for the demo catalog and the tests.

Written from the column lists of Bacula 9.6/11/13/15 and Bareos (see docs/catalogs.md); the tests
check the 9.6 tables against the schema scripts of Debian's Bacula packages.
"""

from collections.abc import Sequence

# Abstract column types, rendered per engine below.
SERIAL, INT, BIG, SMALL, NAME, TEXT, CODE, TIME, JOBTIME, FLOAT = (
    "serial", "int", "big", "small", "name", "text", "code", "time", "jobtime", "float",
)

_TYPES: dict[str, dict[str, str]] = {
    "postgresql": {
        SERIAL: "SERIAL PRIMARY KEY", INT: "INTEGER DEFAULT 0", BIG: "BIGINT DEFAULT 0",
        SMALL: "SMALLINT DEFAULT 0", NAME: "TEXT", TEXT: "TEXT", CODE: "CHAR(1)",
        TIME: "TIMESTAMP WITHOUT TIME ZONE", JOBTIME: "TIMESTAMP WITHOUT TIME ZONE",
        FLOAT: "FLOAT DEFAULT 0",
    },
    "mysql": {
        # Bacula's MySQL catalog keeps names in BLOBs and codes in BINARY(1): both read as bytes.
        SERIAL: "INTEGER UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY",
        INT: "INTEGER UNSIGNED DEFAULT 0", BIG: "BIGINT UNSIGNED DEFAULT 0",
        SMALL: "TINYINT DEFAULT 0", NAME: "TINYBLOB", TEXT: "BLOB", CODE: "BINARY(1)",
        TIME: "DATETIME DEFAULT NULL", JOBTIME: "DATETIME DEFAULT NULL", FLOAT: "FLOAT DEFAULT 0",
    },
    "sqlite": {
        SERIAL: "INTEGER PRIMARY KEY", INT: "INTEGER DEFAULT 0", BIG: "BIGINT DEFAULT 0",
        SMALL: "TINYINT DEFAULT 0", NAME: "VARCHAR(128)", TEXT: "TEXT", CODE: "CHAR(1)",
        # Bacula's SQLite Job times default to the integer 0, not NULL.
        TIME: "DATETIME", JOBTIME: "DATETIME DEFAULT 0", FLOAT: "FLOAT DEFAULT 0",
    },
}

Columns = list[tuple[str, str]]

_JOB_96: Columns = [
    ("JobId", SERIAL), ("Job", NAME), ("Name", NAME), ("Type", CODE), ("Level", CODE),
    ("ClientId", INT), ("JobStatus", CODE), ("SchedTime", TIME), ("StartTime", JOBTIME),
    ("EndTime", JOBTIME), ("RealEndTime", JOBTIME), ("JobTDate", BIG), ("VolSessionId", INT),
    ("VolSessionTime", INT), ("JobFiles", INT), ("JobBytes", BIG), ("ReadBytes", BIG),
    ("JobErrors", INT), ("JobMissingFiles", INT), ("PoolId", INT), ("FileSetId", INT),
    ("PriorJobId", INT), ("PurgedFiles", SMALL), ("HasBase", SMALL), ("HasCache", SMALL),
    ("Reviewed", SMALL), ("Comment", TEXT), ("FileTable", TEXT),
]
_JOB_15_EXTRA: Columns = [
    ("isVirtualFull", SMALL), ("CompressRatio", FLOAT), ("Rate", FLOAT),
    ("LastReadStorageId", INT), ("LastReadDevice", TEXT), ("WriteStorageId", INT),
    ("WriteDevice", TEXT), ("StatusInfo", TEXT), ("Encrypted", INT),
]
_CLIENT: Columns = [
    ("ClientId", SERIAL), ("Name", NAME), ("Uname", TEXT), ("AutoPrune", SMALL),
    ("FileRetention", BIG), ("JobRetention", BIG),
]
_POOL_96: Columns = [
    ("PoolId", SERIAL), ("Name", NAME), ("NumVols", INT), ("MaxVols", INT), ("UseOnce", SMALL),
    ("UseCatalog", SMALL), ("AcceptAnyVolume", SMALL), ("CacheRetention", BIG),
    ("VolRetention", BIG), ("VolUseDuration", BIG), ("MaxVolJobs", INT), ("MaxVolFiles", INT),
    ("MaxVolBytes", BIG), ("AutoPrune", SMALL), ("Recycle", SMALL), ("ActionOnPurge", SMALL),
    ("PoolType", TEXT), ("LabelType", SMALL), ("LabelFormat", TEXT), ("Enabled", SMALL),
    ("ScratchPoolId", INT), ("RecyclePoolId", INT), ("NextPoolId", INT),
    ("MigrationHighBytes", BIG), ("MigrationLowBytes", BIG), ("MigrationTime", BIG),
]
_MEDIA_96: Columns = [
    ("MediaId", SERIAL), ("VolumeName", NAME), ("Slot", INT), ("PoolId", INT), ("MediaType", TEXT),
    ("MediaTypeId", INT), ("LabelType", SMALL), ("FirstWritten", TIME), ("LastWritten", TIME),
    ("LabelDate", TIME), ("VolJobs", INT), ("VolFiles", INT), ("VolBlocks", INT),
    ("VolParts", INT), ("VolCloudParts", INT), ("VolMounts", INT), ("VolBytes", BIG),
    ("VolABytes", BIG), ("VolAPadding", BIG), ("VolHoleBytes", BIG), ("VolHoles", INT),
    ("VolType", INT), ("VolErrors", INT), ("VolWrites", BIG), ("VolCapacityBytes", BIG),
    ("LastPartBytes", BIG), ("VolStatus", TEXT), ("Enabled", SMALL), ("Recycle", SMALL),
    ("ActionOnPurge", SMALL), ("CacheRetention", BIG), ("VolRetention", BIG),
    ("VolUseDuration", BIG), ("MaxVolJobs", INT), ("MaxVolFiles", INT), ("MaxVolBytes", BIG),
    ("InChanger", SMALL), ("StorageId", INT), ("DeviceId", INT), ("MediaAddressing", SMALL),
    ("VolReadTime", BIG), ("VolWriteTime", BIG), ("EndFile", INT), ("EndBlock", BIG),
    ("LocationId", INT), ("RecycleCount", INT), ("InitialWrite", TIME), ("ScratchPoolId", INT),
    ("RecyclePoolId", INT), ("Comment", TEXT),
]
_JOBMEDIA: Columns = [
    ("JobMediaId", SERIAL), ("JobId", INT), ("MediaId", INT), ("FirstIndex", INT),
    ("LastIndex", INT), ("StartFile", INT), ("EndFile", INT), ("StartBlock", BIG),
    ("EndBlock", BIG), ("VolIndex", INT),
]
_STORAGE: Columns = [("StorageId", SERIAL), ("Name", NAME), ("AutoChanger", SMALL)]
_LOG: Columns = [("LogId", SERIAL), ("JobId", INT), ("Time", TIME), ("LogText", TEXT)]
_STATUS: Columns = [("JobStatus", CODE), ("JobStatusLong", TEXT), ("Severity", INT)]
_VERSION: Columns = [("VersionId", INT)]

BACULA_VERSIONS = (16, 1022, 1024, 1026)

# (code, long text, severity) as the Status table of Bacula 9.6 holds them.
STATUS_ROWS_96: list[tuple[str, str, int | None]] = [
    ("C", "Created, not yet running", 15), ("R", "Running", 15), ("B", "Blocked", 15),
    ("T", "Completed successfully", 10), ("E", "Terminated with errors", 25),
    ("e", "Non-fatal error", 20), ("f", "Fatal error", 100),
    ("D", "Verify found differences", 15), ("A", "Canceled by user", 90),
    ("I", "Incomplete job", 25), ("F", "Waiting on File daemon", 15),
    ("S", "Waiting on the Storage daemon", 15), ("m", "Waiting for new media", None),
    ("M", "Waiting for media mount", 15), ("s", "Waiting for storage resource", 15),
    ("j", "Waiting for job resource", 15), ("c", "Waiting for client resource", 15),
    ("d", "Waiting for maximum jobs", 15), ("t", "Waiting for start time", 15),
    ("p", "Waiting for higher priority jobs to finish", 15),
    ("a", "SD despooling attributes", 15), ("i", "Doing batch insert file records", 15),
]
STATUS_ROWS_15: list[tuple[str, str, int | None]] = [
    ("l", "Doing data despooling", 15), ("L", "Committing data (last despool)", 15),
    ("u", "Cloud upload", 15), ("w", "Cloud download", 15),
    ("q", "Queued waiting for device", 15), ("W", "Terminated normally with warnings", 25),
]


def is_bareos(version: int) -> bool:
    """Tell whether a catalog version number is Bareos's."""
    return 2000 <= version < 3000


def tables(version: int) -> dict[str, Columns]:
    """Return the columns of each table the exporter reads, for one catalog version."""
    job, client, pool, media, jobmedia = (
        list(_JOB_96), list(_CLIENT), list(_POOL_96), list(_MEDIA_96), list(_JOBMEDIA)
    )
    if is_bareos(version):
        job.remove(("FileTable", TEXT))
        pool = [c for c in pool if c[0] != "CacheRetention"]
        at = [c[0] for c in pool].index("NextPoolId") + 1
        pool[at:at] = [("MinBlockSize", INT), ("MaxBlockSize", INT)]
        gone = {"VolParts", "VolCloudParts", "VolABytes", "VolAPadding", "VolHoleBytes",
                "VolHoles", "VolType", "LastPartBytes", "CacheRetention"}
        media = [c for c in media if c[0] not in gone]
        media += [("MinBlockSize", INT), ("MaxBlockSize", INT), ("EncryptionKey", TEXT)]
        jobmedia.insert(-1, ("JobBytes", BIG))
    elif version >= 1022:
        job.insert([c[0] for c in job].index("PriorJobId") + 1, ("PriorJob", NAME))
        pool = [c for c in pool if c[0] != "CacheRetention"]
        pool.insert([c[0] for c in pool].index("MaxVolBytes") + 1, ("MaxPoolBytes", BIG))
        pool.insert([c[0] for c in pool].index("VolRetention") + 1, ("CacheRetention", BIG))
        if version >= 1026:
            job.insert([c[0] for c in job].index("RealEndTime") + 1, ("RealStartTime", JOBTIME))
            job += _JOB_15_EXTRA
            client.insert(3, ("Plugins", TEXT))
            media += [("Protected", SMALL), ("UseProtect", SMALL), ("VolEncrypted", SMALL)]
    return {
        "Version": _VERSION, "Status": _STATUS, "Client": client, "Pool": pool, "Media": media,
        "Job": job, "JobMedia": jobmedia, "Log": _LOG, "Storage": _STORAGE,
    }


def create_statements(engine: str, version: int) -> list[str]:
    """Return CREATE TABLE statements and the Version/Status rows for an engine and version."""
    types = _TYPES[engine]
    out = []
    for table, columns in tables(version).items():
        cols = ",\n  ".join(f"{name} {types[kind]}" for name, kind in columns)
        out.append(f"CREATE TABLE {table} (\n  {cols}\n)")
    out.append(f"INSERT INTO Version (VersionId) VALUES ({version})")
    rows = STATUS_ROWS_96 + (STATUS_ROWS_15 if version >= 1026 else [])
    for code, text, severity in rows:
        sev = "NULL" if severity is None else str(severity)
        out.append(
            "INSERT INTO Status (JobStatus, JobStatusLong, Severity) "
            f"VALUES ('{code}', '{text}', {sev})"
        )
    return out


def column_names(version: int) -> dict[str, Sequence[str]]:
    """Return the column names of each table for one catalog version."""
    return {table: [c[0] for c in cols] for table, cols in tables(version).items()}
