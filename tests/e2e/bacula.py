"""A real Bacula Director, Storage daemon and File daemon on 127.0.0.1 with its own catalog.

Two releases: Debian 12's Bacula 9.6.7 installed on this machine (scripts/install-bacula), and
Debian 13's 15.0.3 in a cached chroot (scripts/install-bacula15), which shares the machine's
network and sees the lab folder at the same path through a bind mount (`chroot_mounts`).

`BaculaLab(engine, root, tz, release)` writes the daemons' configs under `root`, creates the
catalog with Debian's own table scripts (SQLite file, or a database of its own on the machine's
PostgreSQL or MariaDB), starts the daemons, drives them with bconsole and reads back what they
wrote. Every process it starts is stopped by PID in `stop()`; call it from a finalizer.
"""

import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pymysql

ENGINES = ("sqlite", "postgresql", "mysql")
SBIN = Path("/usr/sbin")
# Where scripts/install-bacula unpacks the PostgreSQL and MySQL drivers; they conflict with the
# installed SQLite one, so bacula-dir loads them through LD_LIBRARY_PATH.
CACHE = Path(os.environ.get("BACULA_E2E_CACHE", "/var/cache/bacula-exporter-test"))
# Where scripts/install-bacula15 keeps the Debian 13 chroot with Bacula 15.0.3.
CHROOT = Path(os.environ.get("BACULA15_ROOT", "/var/cache/bacula-exporter-chroot/trixie"))
DBCONFIG = "usr/share/dbconfig-common/data/bacula-director-{}/install/{}"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"  # the machine's server, trust auth
MY_HOST, MY_PORT, MY_USER = "127.0.0.1", 3306, "root"  # the machine's MariaDB, no password


@dataclass(frozen=True)
class Release:
    """One Bacula release the labs run: where its programs live and what its catalog says."""

    name: str  # "9.6" or "15"
    version: int  # the catalog's VersionId
    root: Path | None  # the chroot its daemons run in; None: this machine
    drivers: Mapping[str, Path]  # engine -> unpacked catalog driver, as the daemons see it
    databases: Mapping[str, str]
    port_base: Mapping[str, int]  # distinct ranges, so every lab can run side by side

    @property
    def modern(self) -> bool:
        """Tell whether this is Bacula 15 (encryption, Virtual Full, StatusInfo columns)."""
        return self.version >= 1026

    def host_path(self, path: Path) -> Path:
        """Return where a path the daemons see lies on this machine."""
        return self.root / path.relative_to("/") if self.root else path

    def prefix(self, env: Mapping[str, str]) -> list[str]:
        """Return the argv prefix that runs a program of this release with `env` added."""
        if self.root is None:
            return []
        pairs = [f"{k}={v}" for k, v in env.items()]
        return ["chroot", str(self.root), "/usr/bin/env", "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin", *pairs]


BACULA_96 = Release(
    "9.6", 16, None, {"postgresql": CACHE / "pgsql", "mysql": CACHE / "mysql"},
    {"sqlite": "bacula", "postgresql": "bacula_e2e_pg", "mysql": "bacula_e2e_my"},
    {"sqlite": 19100, "postgresql": 19120, "mysql": 19140},
)
BACULA_15 = Release(
    "15", 1026, CHROOT,
    {"postgresql": Path("/opt/b15-pgsql"), "mysql": Path("/opt/b15-mysql")},
    {"sqlite": "bacula", "postgresql": "bacula_e2e_pg15", "mysql": "bacula_e2e_my15"},
    {"sqlite": 19200, "postgresql": 19220, "mysql": 19240},
)
RELEASES = (BACULA_96, BACULA_15)
CANCEL_SLEEP = 4  # Run Before Job of the job that gets canceled while it sleeps
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
FINAL_CODES = "TWEefIAD"  # JobStatus codes of a job that has ended (src/jcr.h)


class BaculaError(RuntimeError):
    """A daemon, bconsole or the catalog set-up did not do what the harness asked."""


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one lab."""

    dir: int
    fd: int
    sd: int
    dead: int  # nothing listens here: the unreachable client
    exporter: int  # free for the exporter the tests start
    crypt_fd: int  # the File daemon that encrypts (Bacula 15 labs)


@dataclass(frozen=True)
class JobRow:
    """One Job row, decoded the same way for every engine (times as the Director wrote them)."""

    job_id: int
    job: str
    name: str
    type: str
    level: str
    client_id: int
    status: str
    sched_time: str | None
    start_time: str | None
    end_time: str | None
    real_end_time: str | None
    job_tdate: int
    files: int
    bytes: int
    errors: int
    pool_id: int
    prior_job_id: int
    # Bacula 15 only (None or False on 9.6):
    real_start_time: str | None = None
    encrypted: int | None = None
    status_info: str | None = None
    virtual_full: bool = False

    @property
    def ran_from(self) -> str | None:
        """Return when the job really started: RealStartTime where Bacula 15 records it."""
        return self.real_start_time or self.start_time

    @property
    def ran_until(self) -> str | None:
        """Return when the job really ended: for copies and Virtual Fulls, not the source's."""
        return self.real_end_time if self.real_start_time else self.end_time


@dataclass(frozen=True)
class MediaRow:
    """One Media row with its pool name."""

    volume: str
    pool: str
    status: str
    bytes: int
    encrypted: int | None = None  # Media.VolEncrypted (Bacula 15)


def missing(release: Release = BACULA_96) -> str | None:
    """Return why no lab of this release can run here (Bacula not installed), or None."""
    script = "scripts/install-bacula15" if release.root else "scripts/install-bacula"
    if release.root and not (release.root / ".complete").exists():
        return f"no Bacula 15 chroot at {release.root} (run {script} as root)"
    for daemon in ("bacula-dir", "bacula-sd", "bacula-fd", "bconsole"):
        if not release.host_path(SBIN / daemon).exists():
            return f"{SBIN / daemon} is missing (run {script} as root)"
    return None


@contextmanager
def chroot_mounts(release: Release, folder: Path) -> Iterator[None]:
    """Give a chroot release /proc, /dev/pts and `folder` at its own path; undo on exit."""
    if release.root is None:
        yield
        return
    mounts = [(["-t", "proc", "proc"], release.root / "proc"),
              (["--bind", "/dev/pts"], release.root / "dev/pts"),
              (["--bind", str(folder)], release.host_path(folder))]
    done: list[Path] = []
    try:
        for how, target in mounts:
            target.mkdir(parents=True, exist_ok=True)
            if subprocess.run(["mountpoint", "-q", str(target)], check=False).returncode != 0:
                subprocess.run(["mount", *how, str(target)], check=True, capture_output=True)
                done.append(target)
        yield
    finally:
        for target in reversed(done):
            # Lazy: a daemon that is still dying must not keep the chroot mounted for good.
            subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


def _text(value: Any) -> Any:
    """Decode MySQL's BLOB/BINARY values; keep everything else."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else value


def _stamp(value: Any) -> str | None:
    """Return a catalog time as the Director wrote it; None when not set (SQLite stores 0)."""
    if value is None or value == 0 or value == "0":
        return None
    if isinstance(value, datetime):
        return value.strftime(TIME_FORMAT)
    return str(_text(value))


def wall_to_epoch(stamp: str, zone: str) -> float:
    """Turn a Director wall-clock time into Unix seconds, given the Director's zone."""
    return datetime.strptime(stamp, TIME_FORMAT).replace(tzinfo=ZoneInfo(zone)).timestamp()


class BaculaLab:
    """One Director + SD + FD on loopback with a catalog on one engine."""

    def __init__(
        self, engine: str, root: Path, tz: str | None = None, port_base: int | None = None,
        long_sleep: int = 6, release: Release = BACULA_96,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}")
        self.engine = engine
        self.release = release
        self.root = root
        self.tz = tz or "UTC"  # explicit, so the catalog's zone never depends on the machine's
        self.long_sleep = long_sleep
        base = port_base or release.port_base[engine]
        self.ports = Ports(dir=base + 1, fd=base + 2, sd=base + 3, dead=base + 9,
                           exporter=base + 5, crypt_fd=base + 10)
        self.database = release.databases[engine]
        self.etc = root / "etc"
        self.work = root / "work"
        self.logs = root / "log"
        self.data = root / "data"
        self.volumes = root / "volumes"
        self.restored = root / "restore"
        self.missing_path = root / "no-such-dir"
        # Bacula 15 labs: a second File daemon that signs and encrypts what it sends.
        self.crypt_data = root / "crypt-data"
        self.crypt_restored = root / "restore-crypt"
        self.marker = f"plaintext-{secrets.token_hex(8)}"  # must never reach a volume in clear
        self._secret = {k: secrets.token_urlsafe(24) for k in ("console", "fd", "sd")}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # ----- set-up ---------------------------------------------------------------------------

    @property
    def sqlite_path(self) -> Path:
        """Return the SQLite catalog: Bacula always uses WorkingDirectory/<dbname>.db."""
        return self.work / "dir" / f"{self.database}.db"

    @property
    def catalog_url(self) -> str:
        """Return the catalog's URL in the exporter's config syntax."""
        if self.engine == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        if self.engine == "postgresql":
            return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.database}"
        return f"mysql://{MY_USER}@{MY_HOST}:{MY_PORT}/{self.database}"

    def check_engine(self) -> None:
        """Raise ConnectionError if the engine's server is down, BaculaError if no driver."""
        if self.engine == "sqlite":
            return
        lib = self.release.host_path(self.release.drivers[self.engine] / "usr/lib/bacula")
        if not any(lib.glob("libbaccats-*.so")):
            raise BaculaError(f"no Bacula {self.release.name} {self.engine} driver in {lib}: "
                              "run scripts/install-bacula or scripts/install-bacula15")
        try:
            if self.engine == "postgresql":
                _pg("postgres").close()
            else:
                _my(None).close()
        except (psycopg.Error, pymysql.Error) as exc:
            raise ConnectionError(f"{self.engine} server not reachable: {exc}") from exc

    def setup(self) -> None:
        """Write data, configs and an empty catalog (dropping the previous run's)."""
        if self.root.exists():
            shutil.rmtree(self.root)
        for folder in (self.etc, self.logs, self.data, self.volumes, self.restored,
                       self.work / "dir", self.work / "sd", self.work / "fd"):
            folder.mkdir(parents=True)
        for port in (self.ports.dir, self.ports.fd, self.ports.sd, self.ports.dead):
            _require_free(port)
        self._write_data()
        self._write_configs()
        if self.release.modern:
            self._write_crypt_fd()
        self._create_catalog()

    def _write_data(self) -> None:
        """Create the files to back up: a few sizes, one sub-folder."""
        (self.data / "sub").mkdir()
        for i, size in enumerate((1000, 20_000, 150_000, 7)):
            (self.data / f"file{i}.bin").write_bytes(os.urandom(size))
        (self.data / "sub" / "notes.txt").write_text("first version\n")

    def tamper(self) -> None:
        """Change a backed-up file behind the catalog's back, for a verify to find."""
        with (self.data / "file1.bin").open("r+b") as fh:
            fh.write(b"tampered")

    def change_data(self) -> None:
        """Change one file and add another, so an Incremental has something to save."""
        # A second later than the Full, so mtime-based selection cannot miss it.
        time.sleep(1.1)
        with (self.data / "sub" / "notes.txt").open("a") as fh:
            fh.write("second version\n")
        (self.data / "new.txt").write_text("added after the full\n")

    def _write_configs(self) -> None:
        """Write bacula-dir.conf, bacula-sd.conf, bacula-fd.conf and bconsole.conf."""
        p, s = self.ports, self._secret
        wdir, wsd, wfd = self.work / "dir", self.work / "sd", self.work / "fd"
        if self.engine == "sqlite":
            catalog = f'dbname = "{self.database}"; dbuser = ""; dbpassword = ""'
        elif self.engine == "postgresql":
            catalog = (f'dbname = "{self.database}"; dbuser = "{PG_USER}"; dbpassword = ""; '
                       f'DB Address = {PG_HOST}; DB Port = {PG_PORT}')
        else:
            catalog = (f'dbname = "{self.database}"; dbuser = "{MY_USER}"; dbpassword = ""; '
                       f'DB Address = {MY_HOST}; DB Port = {MY_PORT}')
        log = self.logs / "bacula.log"
        (self.etc / "bacula-dir.conf").write_text(f"""
Director {{
  Name = e2e-dir
  DIRport = {p.dir}
  DirAddress = 127.0.0.1
  QueryFile = "/etc/bacula/scripts/query.sql"
  WorkingDirectory = "{wdir}"
  PidDirectory = "{wdir}"
  Maximum Concurrent Jobs = 20
  Password = "{s['console']}"
  Messages = Daemon
  # The default waits minutes before a job against an unreachable client fails.
  FD Connect Timeout = 2 sec
  SD Connect Timeout = 10 sec
}}
Catalog {{
  Name = MyCatalog
  {catalog}
}}
Messages {{
  Name = Standard
  console = all, !skipped, !saved
  append = "{log}" = all, !skipped
  # Job log lines into the Log table, as a production Director would have them.
  catalog = all, !skipped, !saved
}}
Messages {{
  Name = Daemon
  console = all, !skipped, !saved
  append = "{log}" = all, !skipped
}}
Client {{
  Name = good-fd
  Address = 127.0.0.1
  FDPort = {p.fd}
  Catalog = MyCatalog
  Password = "{s['fd']}"
  AutoPrune = no
}}
Client {{
  Name = bad-fd
  Address = 127.0.0.1
  FDPort = {p.dead}
  Catalog = MyCatalog
  Password = "{s['fd']}"
  AutoPrune = no
}}
{self._storage("File1", "Dev1", "File1")}
{self._storage("File2", "Dev2", "File2")}
Pool {{
  Name = Main
  Pool Type = Backup
  Storage = File1
  Label Format = "Main-"
  Next Pool = Offsite
  AutoPrune = no
  Volume Retention = 365 days
}}
Pool {{
  Name = Offsite
  Pool Type = Backup
  Storage = File2
  Label Format = "Offsite-"
  AutoPrune = no
  Volume Retention = 365 days
}}
FileSet {{
  Name = DataSet
  Include {{
    Options {{
      signature = MD5
    }}
    File = "{self.data}"
  }}
}}
FileSet {{
  Name = WarnSet
  Include {{
    Options {{
      signature = MD5
    }}
    File = "{self.data}"
    File = "{self.missing_path}"
  }}
}}
JobDefs {{
  Name = Defaults
  Type = Backup
  Level = Full
  Client = good-fd
  FileSet = DataSet
  Storage = File1
  Pool = Main
  Messages = Standard
  Priority = 10
  Write Bootstrap = "{wdir}/%n.bsr"
}}
Job {{
  Name = BackupGood
  JobDefs = Defaults
}}
Job {{
  Name = BackupBad
  JobDefs = Defaults
  Client = bad-fd
  {"Pool = Dead" if self.release.modern else ""}
}}
Job {{
  Name = BackupWarn
  JobDefs = Defaults
  FileSet = WarnSet
  # Throttled so the job lasts measurably: the others take under a second and would leave the
  # duration check comparing 0 with 0 (StartTime is set after any Run Before Job script).
  # Bacula 15 does not slow this small job down: a script on the client keeps it running.
  Maximum Bandwidth = 100 kb/s
  {'Client Run After Job = "/bin/sleep 2"' if self.release.modern else ""}
}}
Job {{
  Name = BackupSlow
  JobDefs = Defaults
  Run Before Job = "/bin/sleep {CANCEL_SLEEP}"
}}
Job {{
  Name = BackupLong
  JobDefs = Defaults
  Run Before Job = "/bin/sleep {self.long_sleep}"
}}
Job {{
  Name = CopyToOffsite
  JobDefs = Defaults
  Type = Copy
  Selection Type = PoolUncopiedJobs
  # One copy at a time: concurrent copies contend for the device and retry after 30 s.
  Maximum Concurrent Jobs = 1
}}
Job {{
  Name = RestoreFiles
  Type = Restore
  Client = good-fd
  FileSet = DataSet
  Storage = File1
  Pool = Main
  Messages = Standard
  Where = "{self.restored}"
}}
Job {{
  Name = VerifyVolume
  JobDefs = Defaults
  Type = Verify
  Level = VolumeToCatalog
  Verify Job = BackupGood
}}
Job {{
  Name = VerifyDisk
  JobDefs = Defaults
  Type = Verify
  Level = DiskToCatalog
  Verify Job = BackupGood
}}
Job {{
  Name = AdminMaintenance
  JobDefs = Defaults
  Type = Admin
  RunScript {{
    RunsWhen = Before
    RunsOnClient = No
    Command = "/bin/true"
  }}
}}
{self._bacula15_director_conf() if self.release.modern else ""}""")
        (self.etc / "bacula-sd.conf").write_text(f"""
Storage {{
  Name = e2e-sd
  SDPort = {p.sd}
  SDAddress = 127.0.0.1
  WorkingDirectory = "{wsd}"
  Pid Directory = "{wsd}"
  Maximum Concurrent Jobs = 20
}}
Director {{
  Name = e2e-dir
  Password = "{s['sd']}"
}}
{self._device("Dev1", "File1")}
{self._device("Dev2", "File2")}
{self._bacula15_sd_conf() if self.release.modern else ""}
Messages {{
  Name = Standard
  director = e2e-dir = all
}}
""")
        (self.etc / "bacula-fd.conf").write_text(self._fd_conf("good-fd", p.fd, wfd))
        (self.etc / "bconsole.conf").write_text(f"""
Director {{
  Name = e2e-dir
  DIRport = {p.dir}
  Address = 127.0.0.1
  Password = "{s['console']}"
}}
""")
        for conf in self.etc.iterdir():
            conf.chmod(0o600)  # the files hold the daemons' passwords

    def _bacula15_director_conf(self) -> str:
        """Return the Director's resources that only the Bacula 15 labs have.

        The encrypting File daemon with its job, and a device of its own for the job against
        the dead client: 15.0.3 may hold that job about 2 minutes "waiting for Client", and on
        the shared device it would hold up the copy and the restores behind it.
        """
        return f"""
{self._storage("File3", "Dev3", "File3")}
Pool {{
  Name = Dead
  Pool Type = Backup
  Storage = File3
  Label Format = "Dead-"
  AutoPrune = no
  Volume Retention = 365 days
}}
Client {{
  Name = crypt-fd
  Address = 127.0.0.1
  FDPort = {self.ports.crypt_fd}
  Catalog = MyCatalog
  Password = "{self._secret['fd']}"
  AutoPrune = no
}}
FileSet {{
  Name = CryptSet
  Include {{
    Options {{
      signature = MD5
    }}
    File = "{self.crypt_data}"
  }}
}}
Job {{
  Name = BackupCrypt
  JobDefs = Defaults
  Client = crypt-fd
  FileSet = CryptSet
}}
"""

    def _storage(self, name: str, device: str, media_type: str) -> str:
        """Return the Director's Storage resource for one device of the lab's SD."""
        return f"""Storage {{
  Name = {name}
  Address = 127.0.0.1
  SDPort = {self.ports.sd}
  Password = "{self._secret['sd']}"
  Device = {device}
  Media Type = {media_type}
  Maximum Concurrent Jobs = 10
}}"""

    def _bacula15_sd_conf(self) -> str:
        """Return the Storage daemon's device for the dead client's job (Bacula 15 labs)."""
        return self._device("Dev3", "File3")

    def _device(self, name: str, media_type: str) -> str:
        """Return a Storage daemon file device over the lab's volume folder."""
        return f"""
Device {{
  Name = {name}
  Media Type = {media_type}
  Archive Device = "{self.volumes}"
  LabelMedia = yes
  Random Access = yes
  AutomaticMount = yes
  RemovableMedia = no
  AlwaysOpen = no
  Maximum Concurrent Jobs = 5
}}"""

    def _fd_conf(self, name: str, port: int, workdir: Path, extra: str = "") -> str:
        """Return a File daemon's config on loopback; `extra` goes into its FileDaemon block."""
        return f"""
FileDaemon {{
  Name = {name}
  FDport = {port}
  FDAddress = 127.0.0.1
  WorkingDirectory = "{workdir}"
  Pid Directory = "{workdir}"
  Maximum Concurrent Jobs = 20
  {extra}
}}
Director {{
  Name = e2e-dir
  Password = "{self._secret['fd']}"
}}
Messages {{
  Name = Standard
  director = e2e-dir = all, !skipped, !restored
}}
"""

    def _write_crypt_fd(self) -> None:
        """Write the encrypting File daemon's config, its keypair and the data it backs up."""
        self.crypt_data.mkdir()
        self.crypt_restored.mkdir()
        (self.work / "fd-crypt").mkdir()
        # Repeated so a volume holding it in clear could not miss it.
        (self.crypt_data / "secret.txt").write_text(f"{self.marker}\n" * 2000)
        (self.crypt_data / "random.bin").write_bytes(os.urandom(30_000))
        key, cert = self.etc / "fd-crypt.key", self.etc / "fd-crypt.crt"
        self._sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                  "-subj", "/CN=crypt-fd", "-keyout", str(key), "-out", str(cert)])
        keypair = self.etc / "fd-crypt.pem"
        keypair.write_text(key.read_text() + cert.read_text())
        wfd = self.work / "fd-crypt"
        pki = f'PKI Signatures = Yes\n  PKI Encryption = Yes\n  PKI Keypair = "{keypair}"'
        (self.etc / "bacula-fd-crypt.conf").write_text(
            self._fd_conf("crypt-fd", self.ports.crypt_fd, wfd, pki))
        for path in (key, cert, keypair, self.etc / "bacula-fd-crypt.conf"):
            path.chmod(0o600)

    def _create_catalog(self) -> None:
        """Create the catalog with the tables script Debian ships for the engine."""
        release = self.release
        if self.engine == "sqlite":
            # The script cd's to /var/lib/bacula and names the file after XXX_DBNAME_XXX.
            tables = Path("/usr/share/bacula-director/make_sqlite3_tables")
            script = release.host_path(tables).read_text()
            script = script.replace("cd /var/lib/bacula", f'cd "{self.work / "dir"}"')
            script = script.replace("XXX_DBNAME_XXX", self.database)
            local = self.root / "make_sqlite3_tables"
            local.write_text(script)
            # The release's own sqlite3 writes the file (in the chroot for Bacula 15).
            self._sh([*release.prefix({}), "sh", str(local), "-bail"])
        elif self.engine == "postgresql":
            with closing(_pg("postgres")) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)".encode())
                # What Bacula's create_postgresql_database does: SQL_ASCII, C, ISO dates.
                admin.execute(
                    f"CREATE DATABASE {self.database} ENCODING 'SQL_ASCII' LC_COLLATE 'C' "
                    "LC_CTYPE 'C' TEMPLATE template0".encode()
                )
                admin.execute(
                    f"ALTER DATABASE {self.database} SET datestyle TO 'ISO, YMD'".encode()
                )
            driver = release.host_path(release.drivers["postgresql"])
            psql = ["-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-q", "-v", "ON_ERROR_STOP=1"]
            if release.modern:
                # 15.0.3's make_postgresql_tables lets the shell eat the `$$` of its DO block
                # and still prints success with no table made; the dbconfig file is plain SQL.
                sql = driver / DBCONFIG.format("pgsql", "pgsql")
                self._sh(["psql", *psql, "-d", self.database, "-f", str(sql)])
            else:
                pg_script = driver / "usr/share/bacula-director/make_postgresql_tables"
                self._sh(["sh", str(pg_script), *psql], env={"db_name": self.database})
        else:
            with closing(_my(None)) as my_admin, my_admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {self.database}")
                cur.execute(f"CREATE DATABASE {self.database}")
            # Debian's make_mysql_tables silently skips the Counters table; this file is the
            # complete schema (plain SQL, as dbconfig-common loads it).
            sql = (release.host_path(release.drivers["mysql"])
                   / DBCONFIG.format("mysql", "mysql"))
            with sql.open("rb") as fh:
                self._sh(["mysql", "-h", MY_HOST, "-P", str(MY_PORT), "-u", MY_USER,
                          self.database], stdin=fh)
        version = self.query("SELECT max(VersionId) FROM Version")[0][0]
        # None of the table scripts fails on an SQL error: the Version row is the proof.
        if version != release.version:
            raise BaculaError(f"catalog version {version}, expected {release.version} "
                              f"(Bacula {release.name})")

    def _sh(self, argv: list[str], env: Mapping[str, str] | None = None, stdin: Any = None,
            timeout: float = 120) -> str:
        """Run a set-up command; raise BaculaError with its output when it fails."""
        result = subprocess.run(
            argv, env={**os.environ, **(env or {})}, stdin=stdin, capture_output=True,
            timeout=timeout, check=False,
        )
        out = (result.stdout + result.stderr).decode("utf-8", "replace")
        if result.returncode != 0:
            raise BaculaError(f"{' '.join(argv)} failed ({result.returncode}):\n{out}")
        return out

    # ----- daemons --------------------------------------------------------------------------

    def daemon_env(self) -> dict[str, str]:
        """Return what the daemons' environment adds: the lab's zone, the engine's driver."""
        env = {"TZ": self.tz}
        if self.engine in self.release.drivers:
            env["LD_LIBRARY_PATH"] = str(self.release.drivers[self.engine] / "usr/lib/bacula")
        return env

    def _command(self, argv: list[str]) -> tuple[list[str], dict[str, str]]:
        """Return the argv and environment that run one of the release's programs."""
        extra = self.daemon_env()
        prefix = self.release.prefix(extra)
        return [*prefix, *argv], ({**os.environ} if prefix else {**os.environ, **extra})

    def start(self) -> None:
        """Check each daemon's config, then start SD, FD(s) and Director in the foreground."""
        daemons = [("sd", "sd", self.ports.sd), ("fd", "fd", self.ports.fd)]
        if self.release.modern:
            daemons.append(("fd-crypt", "fd", self.ports.crypt_fd))
        for name, daemon, port in [*daemons, ("dir", "dir", self.ports.dir)]:
            binary = str(SBIN / f"bacula-{daemon}")
            conf = str(self.etc / f"bacula-{name}.conf")
            # -t also opens the catalog, so a bad driver or schema shows here, not in a job.
            argv, env = self._command([binary, "-t", "-c", conf])
            self._sh(argv, env=env, timeout=60)
            out = (self.logs / f"bacula-{name}.out").open("wb")
            # A session of its own: stop() can then end the daemon together with the
            # Run Before Job scripts it forked.
            argv, env = self._command([binary, "-f", "-c", conf])
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )
            out.close()
            self._procs[name] = proc
            self._await_port(name, proc, port)

    def _await_port(self, daemon: str, proc: subprocess.Popen[bytes], port: int) -> None:
        """Wait until the daemon listens; fail with its output if it died."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BaculaError(f"bacula-{daemon} exited with {proc.returncode}:\n"
                                  + self.tail(f"bacula-{daemon}.out"))
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise BaculaError(f"bacula-{daemon} does not listen on {port} after 15 s")

    @property
    def pids(self) -> dict[str, int]:
        """Return the PIDs of the daemons still running."""
        return {d: p.pid for d, p in self._procs.items() if p.poll() is None}

    def stop(self) -> None:
        """Stop every daemon this lab started, by PID (idempotent; safe after a failure)."""
        for daemon in ("dir", "fd", "fd-crypt", "sd"):
            proc = self._procs.pop(daemon, None)
            if proc is None:
                continue
            _terminate(proc)

    def tail(self, name: str, lines: int = 40) -> str:
        """Return the end of a log file of this lab."""
        path = self.logs / name
        if not path.exists():
            return f"({path} does not exist)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # ----- bconsole -------------------------------------------------------------------------

    def console(self, *commands: str, timeout: float = 120) -> str:
        """Send commands to the Director through bconsole; return its output."""
        script = "\n".join((*commands, "quit")) + "\n"
        argv, env = self._command([str(SBIN / "bconsole"), "-n", "-c",
                                   str(self.etc / "bconsole.conf")])
        try:
            result = subprocess.run(argv, input=script.encode(), env=env, capture_output=True,
                                    timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BaculaError(f"bconsole timed out after {timeout} s on {commands}") from exc
        out = (result.stdout + result.stderr).decode("utf-8", "replace")
        if result.returncode != 0:
            raise BaculaError(f"bconsole failed ({result.returncode}) on {commands}:\n{out}")
        return out

    def run(self, job: str, level: str | None = None) -> int:
        """Queue a job and return its JobId (the job runs in the background)."""
        command = f"run job={job}" + (f" level={level}" if level else "") + " yes"
        return _job_id(self.console(command), command)

    def wait(self, job_id: int, timeout: float = 120) -> None:
        """Wait until the job reached a final status."""
        self.console(f"wait jobid={job_id}", timeout=timeout)

    def run_and_wait(self, job: str, level: str | None = None) -> int:
        """Run a job to its end; return its JobId."""
        job_id = self.run(job, level)
        self.wait(job_id)
        return job_id

    def cancel(self, job_id: int) -> str:
        """Cancel a job."""
        return self.console(f"cancel jobid={job_id} yes")

    def restore(self, client: str = "good-fd") -> int:
        """Restore a client's latest backup into the lab; return the restore's JobId."""
        fileset, where = (("CryptSet", self.crypt_restored) if client == "crypt-fd"
                          else ("DataSet", self.restored))
        command = (f"restore client={client} restoreclient={client} fileset={fileset} "
                   f'restorejob=RestoreFiles where="{where}" select current all done yes')
        return _job_id(self.console(command), command)

    def status(self, job_id: int) -> str:
        """Return the job's JobStatus as the catalog has it now."""
        rows = self.query(f"SELECT JobStatus FROM Job WHERE JobId = {int(job_id)}")
        return str(_text(rows[0][0])) if rows else ""

    def await_status(self, job_id: int, statuses: str, timeout: float = 30) -> str:
        """Wait until the job's JobStatus is one of `statuses`; return it."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(job_id)
            if status and status in statuses:
                return status
            if time.monotonic() > deadline:
                raise BaculaError(f"job {job_id} still {status!r}, wanted one of {statuses!r}")
            time.sleep(0.1)

    def await_quiet(self, timeout: float = 30) -> None:
        """Wait until every job has ended and every copy carries its final Type.

        A Copy job's row is written as Type B with its final status first and turned into
        Type C a moment later (Bacula's copy clean-up).
        """
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query("SELECT JobStatus, Type, PriorJobId FROM Job")
            busy = [r for r in rows if _text(r[0]) not in FINAL_CODES
                    or (_text(r[1]) == "B" and int(r[2] or 0) > 0)]
            if not busy:
                return
            if time.monotonic() > deadline:
                raise BaculaError(f"jobs still busy after {timeout} s: {busy}")
            time.sleep(0.1)

    def llist(self, job_ids: list[int]) -> dict[int, dict[str, str]]:
        """Return Bacula's own `llist jobid=N` of each job: JobId -> {field: value}.

        Field names are lowercased and thousands separators dropped: bconsole prints the
        column names as the engine returns them (PostgreSQL folds them) and formats numbers
        with commas on PostgreSQL and MySQL but not on SQLite.
        """
        out = self.console(*(f"llist jobid={j}" for j in job_ids))
        records: dict[int, dict[str, str]] = {}
        current: dict[str, str] = {}
        for line in out.splitlines():
            match = re.fullmatch(r"\s*([A-Za-z]+): ?(.*)", line)
            if not match:
                continue
            key, value = match.group(1).lower(), match.group(2).strip()
            if re.fullmatch(r"-?\d{1,3}(,\d{3})+", value):
                value = value.replace(",", "")
            if key == "jobid":  # every record starts with it
                current = records.setdefault(int(value), {})
            current[key] = value
        return records

    # ----- the catalog ----------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """Open a connection to the lab's catalog (read-only for SQLite)."""
        conn: Any
        if self.engine == "sqlite":
            conn = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=10)
        elif self.engine == "postgresql":
            conn = _pg(self.database)
        else:
            conn = _my(self.database)
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one SELECT against the catalog."""
        with self.connect() as conn, closing(conn.cursor()) as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    def jobs(self) -> list[JobRow]:
        """Return every Job row, oldest first."""
        modern = ("RealStartTime, Encrypted, StatusInfo, isVirtualFull" if self.release.modern
                  else "NULL, NULL, NULL, 0")
        rows = self.query(
            "SELECT JobId, Job, Name, Type, Level, ClientId, JobStatus, SchedTime, StartTime, "
            "EndTime, RealEndTime, JobTDate, JobFiles, JobBytes, JobErrors, PoolId, PriorJobId, "
            f"{modern} FROM Job ORDER BY JobId"
        )
        return [
            JobRow(
                job_id=int(r[0]), job=_text(r[1]), name=_text(r[2]), type=_text(r[3]),
                level=_text(r[4]), client_id=int(r[5] or 0), status=_text(r[6]),
                sched_time=_stamp(r[7]), start_time=_stamp(r[8]), end_time=_stamp(r[9]),
                real_end_time=_stamp(r[10]), job_tdate=int(r[11] or 0), files=int(r[12] or 0),
                bytes=int(r[13] or 0), errors=int(r[14] or 0), pool_id=int(r[15] or 0),
                prior_job_id=int(r[16] or 0), real_start_time=_stamp(r[17]),
                encrypted=None if r[18] is None else int(r[18]),
                status_info=_text(r[19]) or None, virtual_full=bool(int(r[20] or 0)),
            )
            for r in rows
        ]

    def clients(self) -> dict[int, tuple[str, str]]:
        """Return ClientId -> (Name, Uname)."""
        rows = self.query("SELECT ClientId, Name, Uname FROM Client")
        return {int(r[0]): (_text(r[1]), _text(r[2]) or "") for r in rows}

    def pools(self) -> dict[int, str]:
        """Return PoolId -> Name."""
        return {int(r[0]): _text(r[1]) for r in self.query("SELECT PoolId, Name FROM Pool")}

    def media(self) -> list[MediaRow]:
        """Return every volume with its pool."""
        encrypted = "m.VolEncrypted" if self.release.modern else "NULL"
        rows = self.query(
            f"SELECT m.VolumeName, p.Name, m.VolStatus, m.VolBytes, {encrypted} "
            "FROM Media m JOIN Pool p ON p.PoolId = m.PoolId ORDER BY m.MediaId"
        )
        return [MediaRow(_text(r[0]), _text(r[1]), _text(r[2]), int(r[3] or 0),
                         None if r[4] is None else int(r[4])) for r in rows]


def _pg(dbname: str) -> psycopg.Connection[Any]:
    """Connect to the machine's PostgreSQL as the superuser, autocommit."""
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname,
                           autocommit=True, connect_timeout=5)


def _my(database: str | None) -> "pymysql.Connection[Any]":
    """Connect to the machine's MariaDB as root, autocommit."""
    return pymysql.connect(host=MY_HOST, port=MY_PORT, user=MY_USER, password="",
                           database=database, autocommit=True, connect_timeout=5)


def _job_id(output: str, command: str) -> int:
    """Return the JobId bconsole printed for a queued job."""
    match = re.search(r"JobId=(\d+)", output)
    if not match:
        raise BaculaError(f"no JobId in the answer to {command!r}:\n{output}")
    return int(match.group(1))


def _require_free(port: int) -> None:
    """Fail early and clearly when a port the lab needs is taken (e.g. a previous run)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise BaculaError(f"port {port} on 127.0.0.1 is in use: {exc}") from exc


def _terminate(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    """Stop a process (and the session it leads) by PID: TERM, then KILL after `grace`."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    # Children it forked (a Run Before Job sleep) are in the same session; they end too.
    _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group this harness created for one daemon; gone is fine."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
