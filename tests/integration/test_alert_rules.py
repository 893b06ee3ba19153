"""The rule files in alerts/: promtool checks and unit tests, annotations, runbook sections."""

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/bacula-exporter/bacula-exporter/blob/main/docs/runbook.md#"
REQUIRED = {
    "BaculaBackupTooOld", "BaculaBackupNeverSucceeded", "BaculaJobFailed",
    "BaculaOffsiteCopyLagging", "BaculaJobRunningTooLong", "BaculaBackupInQuietHours",
    "BaculaCatalogDown", "BaculaExporterDown", "BaculaCatalogPollStale", "BaculaPoolVolumesLow",
    "BaculaRestoreRun", "BaculaTicketDeliveryFailing", "BaculaRetentionShort",
    "BaculaBackupNotEncrypted", "BaculaExporterStateDatabaseDown", "BaculaExporterNoLeader",
    "BaculaVerifyFailed", "BaculaAdminJobFailed", "BaculaPoolFillingUp",
    "BaculaDirectorDown", "BaculaJobWaitingForOperator", "BaculaScheduledJobMissed",
    "BaculaStorageDeviceBlocked", "BaculaStorageSpaceLow",
    "BaculaPoolNoWritableVolumes", "BaculaVerifyTooOld",
    "BaculaMigrationLagging", "BaculaConsolidateFailed", "BaculaConsolidateOverdue",
    "BaculaMigrationJobFailed",
}


def rule_files() -> list[Path]:
    """Return the rule files, which the Helm chart ships too."""
    return sorted(ALERTS.glob("*.yml"))


def unit_test_files() -> list[Path]:
    """Return the promtool unit test files."""
    return sorted((ALERTS / "tests").glob("*.yml"))


def alerting_rules() -> list[dict[str, Any]]:
    """Return every alerting rule of every rule file."""
    rules: list[dict[str, Any]] = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(r for r in group["rules"] if "alert" in r)
    return rules


def promtool() -> str:
    """Return promtool's path; skip without it locally, fail in CI where it must be there."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: run scripts/install-prometheus")
        pytest.skip("promtool not installed (scripts/install-prometheus installs it)")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool in alerts/ so the tests' relative rule_files resolve."""
    return subprocess.run(
        [promtool(), *args], cwd=ALERTS, capture_output=True, text=True, timeout=300,
    )


def test_promtool_check_rules() -> None:
    result = run("check", "rules", *(p.name for p in rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    result = run("test", "rules", *(str(p.relative_to(ALERTS)) for p in unit_test_files()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


def test_every_required_alert_exists() -> None:
    missing = REQUIRED - {r["alert"] for r in alerting_rules()}
    assert not missing, f"missing alerts: {sorted(missing)}"


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: r["alert"])
def test_alert_has_severity_and_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["runbook_url"] == RUNBOOK_URL + rule["alert"].lower()


def test_every_alert_has_a_runbook_section() -> None:
    headings = set(re.findall(r"^## (\w+)$", RUNBOOK.read_text(), flags=re.MULTILINE))
    assert {r["alert"] for r in alerting_rules()} <= headings


def test_every_alert_rule_variant_is_unit_tested() -> None:
    """Each (alert, reason) pair must be expected to fire in some promtool test."""
    fired: set[tuple[str, str]] = set()
    for path in unit_test_files():
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                for alert in check.get("exp_alerts") or []:
                    fired.add((check["alertname"], alert["exp_labels"].get("reason", "")))
    variants = {(r["alert"], r["labels"].get("reason", "")) for r in alerting_rules()}
    assert variants <= fired, f"never seen firing: {sorted(variants - fired)}"


def test_every_alert_is_tested_not_firing_early_and_resolving() -> None:
    """Each alert needs a check with no alerts before it fires, and one after (resolved)."""
    times: dict[str, list[tuple[int, bool]]] = {}
    for path in unit_test_files():
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                minutes = _minutes(check["eval_time"])
                times.setdefault(check["alertname"], []).append(
                    (minutes, bool(check.get("exp_alerts")))
                )
    for alert in {r["alert"] for r in alerting_rules()}:
        checks = sorted(times.get(alert, []))
        firing = [t for t, fires in checks if fires]
        assert firing, f"{alert}: no firing check"
        assert any(not fires and t < firing[0] for t, fires in checks), f"{alert}: no early check"
        assert any(not fires and t > firing[0] for t, fires in checks), f"{alert}: not resolved"


def _minutes(duration: str) -> int:
    """Convert a promtool eval_time such as 90m, 2h or 1d into minutes."""
    match = re.fullmatch(r"(\d+)([smhd])", duration)
    assert match, duration
    return int(match[1]) * {"s": 0, "m": 1, "h": 60, "d": 1440}[match[2]]
