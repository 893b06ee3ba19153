"""What only Bacula 15 writes, against catalogs a real 15.0.3 Director wrote on every engine.

FD-side PKI encryption (and a restore of it), copies of encrypted and plain jobs, a Virtual Full
and the failed job's StatusInfo code. As in test_real_bacula.py, every expected value comes from
the rows the Director wrote, checked first against its own `llist` there.
"""

import re

import pytest

from tests.e2e.conftest import E2ERun, Scrape
from tests.e2e.test_real_bacula import SUCCESS, finished, key_of, labels, status_class

pytestmark = pytest.mark.integration


@pytest.fixture(params=["watcher", "cold"])
def scrape15(request: pytest.FixtureRequest, e2e15: E2ERun) -> Scrape:
    """The final exposition of the watching exporter, or of one started on the finished catalog."""
    result = e2e15.final if request.param == "watcher" else e2e15.cold
    assert result is not None
    return result


def ticket(run: E2ERun, role: str) -> dict[str, object]:
    """Return the one accepted webhook body of a job's result."""
    key = f"{run.catalog}:{run.job(role).job_id}"
    (post,) = [p for p in run.posts["watcher"] if p.accepted and p.key == key]
    return post.body


def page_row(run: E2ERun, client: str, job: str, level: str) -> str:
    """Return the status page's table row of one client, job and level."""
    for row in re.findall(r"<tr data-state=.*?</tr>", run.page, re.S):
        cells = re.findall(r'<td data-h="([^"]+)"[^>]*>(.*?)</td>', row, re.S)
        values = dict(cells)
        if (values.get("Client"), values.get("Job"), values.get("Level")) == (client, job, level):
            return row
    raise AssertionError(f"no status page row for {client}/{job}/{level}")


def test_fd_encryption_really_encrypts(e2e15: E2ERun) -> None:
    """The encrypting File daemon's data never reached a volume in clear; the plain one's did."""
    crypt, plain = e2e15.job("crypt"), e2e15.job("full")
    assert (crypt.type, status_class(crypt), e2e15.clients[crypt.client_id][0]) == (
        "B", "ok", "crypt-fd")
    assert crypt.encrypted and not plain.encrypted
    # The Director's own job report agrees (llist does not print the Encrypted column).
    for row, said in ((crypt, "yes"), (plain, "no")):
        report = "\n".join(str(r[0]) for r in e2e15.lab.query(
            f"SELECT LogText FROM Log WHERE JobId = {row.job_id}"))
        assert re.search(rf"Encryption:\s+{said}\b", report), row.job_id
    volumes = [v.read_bytes() for v in e2e15.lab.volumes.iterdir()]
    assert volumes
    # The same search finds the plain client's file, so not finding the marker means something.
    assert any(b"first version" in v for v in volumes)
    assert not any(e2e15.lab.marker.encode() in v for v in volumes)


def test_encrypted_backup_is_exported_as_encrypted(e2e15: E2ERun, scrape15: Scrape) -> None:
    """`last_success_encrypted` is the Director's Encrypted flag of each key's last success."""
    assert scrape15.value("bacula_catalog_encryption_verifiable", catalog=e2e15.catalog) == 1
    checked = {}
    for key, rows in finished(e2e15, "B").items():
        good = [r for r in rows if status_class(r) in SUCCESS]
        if good:
            got = scrape15.value("bacula_job_last_success_encrypted", **labels(e2e15, key))
            assert got == int(bool(good[-1].encrypted)), key
            checked[key[1]] = got
    assert checked["BackupCrypt"] == 1 and checked["BackupGood"] == 0


def test_encrypted_backup_restores(e2e15: E2ERun) -> None:
    """The restore of the encrypted job is recorded as encrypted and gives the files back."""
    row = e2e15.job("crypt_restore")
    assert (row.type, status_class(row), row.encrypted) == ("R", "ok", 1)
    assert row.files > 0
    original = e2e15.lab.crypt_data / "secret.txt"
    restored = e2e15.lab.crypt_restored / original.relative_to("/")
    assert restored.read_bytes() == original.read_bytes()
    client = e2e15.clients[row.client_id][0]
    assert e2e15.final is not None
    assert e2e15.final.value("bacula_restore_runs_total", catalog=e2e15.catalog,
                             client=client, status="ok") == 1
    body = ticket(e2e15, "crypt_restore")["body"]
    assert isinstance(body, dict) and body["encrypted"] is True and body["client"] == "crypt-fd"


def test_copies_of_encrypted_and_plain_jobs(e2e15: E2ERun, scrape15: Scrape) -> None:
    """Both kinds of job were copied; each copy keeps its source's Encrypted and JobTDate."""
    by_id = {j.job_id: j for j in e2e15.jobs}
    copies = [j for j in e2e15.jobs if j.type == "C"]
    assert {by_id[c.prior_job_id].name for c in copies} >= {"BackupCrypt", "BackupGood"}
    for copy in copies:
        source = by_id[copy.prior_job_id]
        assert (copy.encrypted, copy.job_tdate) == (source.encrypted, source.job_tdate)
    crypt = e2e15.job("crypt")
    assert scrape15.value("bacula_job_last_copy_timestamp_seconds",
                          **labels(e2e15, key_of(e2e15, crypt))) == crypt.job_tdate


def test_virtual_full(e2e15: E2ERun, scrape15: Scrape) -> None:
    """A Virtual Full is a full as old as what it consolidated; page and ticket say what it was."""
    vf, inc = e2e15.job("virtual_full"), e2e15.job("incremental")
    assert (vf.type, vf.level, status_class(vf), vf.virtual_full) == ("B", "F", "ok", True)
    assert vf.job_tdate == inc.job_tdate  # the newest consolidated job's point in time
    key = key_of(e2e15, vf)
    assert scrape15.value("bacula_job_last_success_timestamp_seconds",
                          **labels(e2e15, key)) == vf.job_tdate
    body = ticket(e2e15, "virtual_full")
    assert isinstance(body["body"], dict)
    assert (body["body"]["level"], body["body"]["virtual_full"]) == ("full", True)
    assert "BackupGood virtual full: " in str(body["title"])
    assert "Virtual Full" in page_row(e2e15, *key)
    assert "Virtual Full" not in page_row(e2e15, "good-fd", "BackupGood", "incremental")


def test_failed_job_carries_its_status_info(e2e15: E2ERun) -> None:
    """The unreachable client's StatusInfo code reaches the ticket and the status page."""
    row = e2e15.job("unreachable")
    assert row.status_info and re.fullmatch(r"\[[A-Z]{2}\d{4}\]", row.status_info)
    body = ticket(e2e15, "unreachable")
    assert isinstance(body["body"], dict) and body["body"]["status_info"] == row.status_info
    assert row.status_info in str(body["title"])
    assert row.status_info in page_row(e2e15, *key_of(e2e15, row))
    good = ticket(e2e15, "full")
    assert isinstance(good["body"], dict) and good["body"]["status_info"] == ""
