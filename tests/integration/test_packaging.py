"""Packaging: the Dockerfile, the Helm chart, the systemd unit and the configuration reference."""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel

from exporter import __version__
from exporter.config import Config
from exporter.core.durations import parse_duration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "bacula-exporter"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
UNIT = ROOT / "packaging" / "bacula-exporter.service"
VENV_BIN = Path(sys.executable).parent
# Wheels of requirements*.lock, downloaded by scripts/setup-dev, so that no test needs a network.
WHEELHOUSE = Path(os.environ.get("BACULA_EXPORTER_WHEELHOUSE", ROOT / ".cache" / "wheelhouse"))
KUBE_VERSION = "1.30"
NAMESPACE = "backup"
RELEASE = "bx"
# Paths inside the container, as templates/_helpers.tpl mounts them.
CONTAINER_CONFIG = "/etc/bacula-exporter/config.yml"
STATE_DIR = "/var/lib/bacula-exporter"


def tool(name: str) -> str:
    """Return the path of a tool installed into the venv by the test extras, or fail."""
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: install the test extras (scripts/setup-dev)")
    return found


def run(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output as text."""
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert that a command succeeded and return its standard output."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{output}"
    return proc.stdout


# ---------------------------------------------------------------------------------------------
# Dockerfile


def test_hadolint_passes() -> None:
    """Hadolint finds nothing in the Dockerfile, at any severity."""
    proc = run(tool("hadolint"), "--no-color", "--failure-threshold", "style", "Dockerfile")
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def dockerfile_copies() -> list[str]:
    """Return the build-context sources of the Dockerfile's COPY instructions."""
    sources: list[str] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources.extend(words[1:-1])
    return sources


def test_dockerignore_lets_through_what_the_dockerfile_copies() -> None:
    """Every COPY source is re-included by .dockerignore, which excludes everything else."""
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line and not line.startswith("#")]
    assert patterns[0] == "*"
    for source in dockerfile_copies():
        assert f"!{source.rstrip('/')}" in patterns or f"!{source.rstrip('/')}/" in patterns, source
        assert (ROOT / source).exists(), source


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    """The final stage runs as a numeric non-root user, has a HEALTHCHECK and a state volume."""
    text = (ROOT / "Dockerfile").read_text()
    final = text.split("\nFROM ")[-1]
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert "HEALTHCHECK" in final and "/healthz" in final
    assert 'VOLUME ["/var/lib/bacula-exporter"]' in final
    assert "pip" not in final.split("COPY --from=build")[1], "the final stage must not run pip"


def test_runtime_image_carries_bconsole() -> None:
    """The final stage installs Debian's bacula-console, pinned, without recommends or lists."""
    final = (ROOT / "Dockerfile").read_text().split("\nFROM ")[-1]
    assert final.startswith("python:3.11-slim-bookworm\n")
    match = re.search(r"apt-get install -y --no-install-recommends bacula-console=(\S+)", final)
    assert match, "the final stage must install bacula-console (bconsole)"
    assert "rm -rf /var/lib/apt/lists/*" in final
    # The pin must be one Debian 12 still offers; checked where apt knows bookworm's packages.
    os_release = Path("/etc/os-release")
    if shutil.which("apt-cache") is None or not os_release.exists() or (
            "VERSION_CODENAME=bookworm" not in os_release.read_text()):
        pytest.skip("not Debian 12: cannot check that the pinned version is installable")
    shown = run("apt-cache", "show", f"bacula-console={match[1]}")
    assert shown.returncode == 0 and "Package: bacula-console" in shown.stdout, shown.stderr


def test_requirements_lock_pins_every_dependency() -> None:
    """requirements.lock pins every [project] dependency with == at a version it allows."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    for dep in map(Requirement, deps):
        name = canonicalize_name(dep.name)
        assert name in pins, f"{dep.name} is not pinned in requirements.lock"
        assert dep.specifier.contains(pins[name], prereleases=True), (dep, pins[name])
        for extra in dep.extras:  # psycopg[binary] -> psycopg-binary
            assert canonicalize_name(f"{dep.name}-{extra}") in pins, f"{dep.name}[{extra}]"


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Repeat the Dockerfile's build stage offline; return the runtime venv's bin folder."""
    if not any(WHEELHOUSE.glob("*.whl")):
        message = f"no wheelhouse at {WHEELHOUSE}: scripts/setup-dev downloads it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    tmp = tmp_path_factory.mktemp("image")
    offline = ["--no-index", "--find-links", str(WHEELHOUSE), "--no-cache-dir"]
    # The build context: only what .dockerignore lets through.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.lock", "requirements-build.lock"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "exporter", src / "exporter",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    build, venv = tmp / "build", tmp / "venv"
    ok(run(sys.executable, "-m", "venv", build))
    pip = str(build / "bin" / "pip")
    ok(run(pip, "install", *offline, "-r", "requirements-build.lock", cwd=src))
    ok(run(sys.executable, "-m", "venv", "--without-pip", venv))
    into = [pip, "--python", str(venv / "bin" / "python")]
    ok(run(*into, "install", *offline, "-r", "requirements.lock", cwd=src))
    wheels = tmp / "wheels"
    ok(run(pip, "wheel", "--no-cache-dir", "--no-deps", "--no-build-isolation",
           "--wheel-dir", wheels, ".", cwd=src))
    (wheel,) = wheels.glob("bacula_exporter-*.whl")
    ok(run(*into, "install", *offline, "--no-deps", wheel))
    ok(run(*into, "check"))
    return venv / "bin"


def test_image_install_reports_its_version(image_venv: Path) -> None:
    """The command installed the Dockerfile's way runs and reports the package's version."""
    out = ok(run(image_venv / "bacula-exporter", "--version"))
    assert out.strip() == f"bacula-exporter {__version__}"


def test_image_default_config_passes_check_config(image_venv: Path) -> None:
    """The image's default configuration passes check-config of the installed command."""
    out = ok(run(image_venv / "bacula-exporter", "check-config", ROOT / "docker" / "config.yml"))
    assert "OK" in out
    config = yaml.safe_load((ROOT / "docker" / "config.yml").read_text())
    assert config["listen"].endswith(":9625")
    assert "9625" in (ROOT / "Dockerfile").read_text()


# ---------------------------------------------------------------------------------------------
# Helm chart


def scenario_values(path: Path | None) -> dict[str, Any]:
    """Return the values of a ci/ scenario, or none for the chart's defaults."""
    if path is None:
        return {}
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Render the chart with the real Helm engine and return every object it produces."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    for name, text in sorted(manifests.items()):
        if name.endswith(".yaml"):
            objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """Return the one object of a kind."""
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


@pytest.fixture(params=SCENARIOS, ids=[p.name for p in SCENARIOS])
def scenario(request: pytest.FixtureRequest) -> Path:
    """Each ci/*-values.yaml scenario."""
    path: Path = request.param
    return path


def test_there_are_scenarios() -> None:
    """The chart ships several ci/ scenarios, one of them the defaults."""
    assert len(SCENARIOS) >= 4
    assert CHART / "ci" / "default-values.yaml" in SCENARIOS


def test_helm_lint(scenario: Path) -> None:
    """Helm's lint (strict, schema included) reports no warning or error for the scenario."""
    report = helm.lint(CHART, scenario_values(scenario), strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == [], serious


def test_core_objects_are_valid_kubernetes(scenario: Path) -> None:
    """Deployment, Service, ConfigMap, PVC and ServiceAccount pass kubernetes-validate (strict)."""
    objects = render(scenario_values(scenario))
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap"} <= kinds
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            assert obj["kind"] in ("ServiceMonitor", "PrometheusRule")
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        dashboards = obj["metadata"]["labels"].get("grafana_dashboard")
        assert obj["metadata"]["namespace"] == NAMESPACE or dashboards, obj["metadata"]


def test_deployment_is_hardened(scenario: Path) -> None:
    """Non-root, read-only root, no capabilities, seccomp, probes, limits; without a state
    database one replica, Recreate and the state volume."""
    values = scenario_values(scenario)
    objects = render(values)
    deployment = only(objects, "Deployment")
    spec = deployment["spec"]
    state_database = values.get("stateDatabase", {}).get("url")
    if state_database:
        assert spec["strategy"]["type"] == "RollingUpdate"
        assert spec["replicas"] == values.get("replicaCount", 1)
    else:
        assert spec["strategy"] == {"type": "Recreate"} and spec["replicas"] == 1
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    web = values.get("webConfig", {})
    if web.get("existingSecret") and web.get("clientCertRequired"):
        # The kubelet has no client certificate: the probes check the port.
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["tcpSocket"] == {"port": "http"}
            assert "httpGet" not in container[probe]
    else:
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        https = values.get("tls", {}).get("existingSecret") or web.get("https")
        assert container["readinessProbe"]["httpGet"]["scheme"] == ("HTTPS" if https else "HTTP")
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["args"] == ["--config", CONTAINER_CONFIG]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes, mount
    persistence = {"enabled": True, **values.get("persistence", {})}
    if state_database:
        assert "state" not in volumes
        assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    elif persistence["enabled"]:
        state = volumes["state"]
        claim = persistence.get("existingClaim") or f"{RELEASE}-bacula-exporter"
        assert state["persistentVolumeClaim"]["claimName"] == claim
        pvcs = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
        assert len(pvcs) == (0 if persistence.get("existingClaim") else 1)
    else:
        assert "emptyDir" in volumes["state"]
    service = only(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def mounts(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the container's mount paths with the volume each one mounts."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in pod["containers"][0]["volumeMounts"]}


def secret_files(node: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """Yield (mapping, key) for every `*_file` setting anywhere in a config."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_file") and isinstance(value, str):
                yield node, key
            else:
                yield from secret_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from secret_files(item)


def stand_in_program(path: Path) -> Path:
    """Write an executable that does nothing, for check-config's lookup of a program."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_rendered_config_passes_check_config(scenario: Path, tmp_path: Path) -> None:
    """The config the chart renders passes check-config, its files coming from mounted Secrets."""
    objects = render(scenario_values(scenario))
    deployment = only(objects, "Deployment")
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"
                    and o["metadata"]["name"] == f"{RELEASE}-bacula-exporter"]
    config = yaml.safe_load(configmap["data"]["config.yml"])
    by_path = mounts(deployment)
    assert by_path[CONTAINER_CONFIG]["configMap"]["name"] == configmap["metadata"]["name"]
    # Each secret file lies in a Secret mounted in the container; check-config reads a stand-in.
    for mapping, key in secret_files(config):
        path = mapping[key]
        volume = by_path.get(str(Path(path).parent))
        assert volume is not None and "secret" in volume, f"{key}: {path} is in no mounted Secret"
        stand_in = tmp_path / "secrets" / path.lstrip("/")
        stand_in.parent.mkdir(parents=True, exist_ok=True)
        # The web config file is YAML of its own: an empty one stands in for it.
        stand_in.write_text("{}\n" if key == "web_config_file" else "stand-in secret\n")
        mapping[key] = str(stand_in)
    # check-config looks bconsole up; the image carries Debian's on PATH. An executable stand-in
    # takes its place, so the result does not depend on bacula-console on this machine.
    for director in config.get("directors", []):
        assert director.get("bconsole", "bconsole") == "bconsole", director
        director["bconsole"] = str(stand_in_program(tmp_path / "bin" / "bconsole"))
    if "state_dir" in config:
        assert config["state_dir"] == STATE_DIR and STATE_DIR in by_path
        (tmp_path / "state").mkdir()
        config["state_dir"] = str(tmp_path / "state")
    # Environment the pod gets (e.g. a catalog's password_env) is set for check-config too.
    env = dict(os.environ)
    for var in deployment["spec"]["template"]["spec"]["containers"][0].get("env", []):
        env[var["name"]] = var.get("value", "stand-in")
    rendered = tmp_path / "config.yml"
    rendered.write_text(yaml.safe_dump(config))
    out = ok(run(tool("bacula-exporter"), "check-config", rendered, env=env))
    assert "OK" in out


def test_access_control_scenario() -> None:
    """The web config from its Secret, a public /readyz, scraping with basic auth and a client
    certificate, and a NetworkPolicy that admits only the peers named."""
    values = scenario_values(CHART / "ci" / "access-values.yaml")
    objects = render(values)
    deployment = only(objects, "Deployment")
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"
                    and o["metadata"]["name"] == f"{RELEASE}-bacula-exporter"]
    config = yaml.safe_load(configmap["data"]["config.yml"])
    assert config["web_config_file"] == "/etc/bacula-exporter/web/web.yml"
    assert config["web_public"] == ["healthz", "readyz"]
    web = mounts(deployment)["/etc/bacula-exporter/web"]
    assert web["secret"]["secretName"] == "bacula-exporter-web"
    (endpoint,) = only(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["basicAuth"] == {
        "username": {"name": "bacula-exporter-scrape", "key": "username"},
        "password": {"name": "bacula-exporter-scrape", "key": "password"}}
    assert endpoint["tlsConfig"]["serverName"] == f"{RELEASE}-bacula-exporter.{NAMESPACE}.svc"
    assert endpoint["tlsConfig"]["keySecret"] == {"name": "prometheus-scrape-cert",
                                                  "key": "tls.key"}
    policy = only(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == (
        deployment["spec"]["selector"]["matchLabels"])
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rule["from"] == values["networkPolicy"]["from"]
    assert not [o for o in render({}) if o["kind"] == "NetworkPolicy"]  # off by default


def test_directors_scenario() -> None:
    """A Director's console password comes from its mounted Secret, never from the values."""
    values = scenario_values(CHART / "ci" / "directors-values.yaml")
    objects = render(values)
    config = config_of(objects)
    by_path = mounts(only(objects, "Deployment"))
    main, branch = config["directors"]
    assert "passwordSecret" not in main and "password_env" not in main
    assert main["password_file"] == "/etc/bacula-exporter/secrets/bacula-console/monitor-password"
    assert by_path["/etc/bacula-exporter/secrets/bacula-console"]["secret"] == {
        "secretName": "bacula-console", "defaultMode": 0o440}
    assert by_path["/etc/bacula-exporter/secrets/bacula-console-tls"]["secret"]["secretName"] == (
        "bacula-console-tls")
    assert branch["password_env"] == "BRANCH_CONSOLE_PASSWORD" and "password_file" not in branch
    # The console configuration the exporter writes for bconsole needs a writable /tmp.
    assert by_path["/tmp"]["emptyDir"]["medium"] == "Memory"
    # Without directors the config has no such section.
    assert "directors" not in config_of(render({}))


def test_chart_rule_and_dashboard_copies_match_their_sources() -> None:
    """The chart's files/ hold exact copies of alerts/*.yml and dashboards/*.json, no others."""
    pairs = [(ROOT / "alerts", "*.yml", CHART / "files" / "rules"),
             (ROOT / "dashboards", "*.json", CHART / "files" / "dashboards")]
    for source_dir, pattern, copy_dir in pairs:
        sources = {p.name: p.read_bytes() for p in source_dir.glob(pattern)}
        copies = {p.name: p.read_bytes() for p in copy_dir.glob(pattern)}
        assert copies == sources, f"{copy_dir} is not {source_dir}: run scripts/sync-helm-rules"
    assert ok(run(sys.executable, ROOT / "scripts" / "sync-helm-rules", "--check")) == ""


def test_prometheus_rule_is_alerts_directory() -> None:
    """The PrometheusRule's groups are the groups of alerts/*.yml, unchanged and in file order."""
    objects = render({"prometheusRule": {"enabled": True, "additionalLabels": {"release": "kps"}}})
    rule = only(objects, "PrometheusRule")
    expected: list[Any] = []
    for path in sorted((ROOT / "alerts").glob("*.yml")):
        expected.extend(yaml.safe_load(path.read_text())["groups"])
    assert expected, "alerts/ has no rule groups"
    assert rule["spec"]["groups"] == expected
    assert rule["metadata"]["labels"]["release"] == "kps"


def test_prometheus_rule_options() -> None:
    """labels and additionalLabels both apply, disabledAlerts drop rules, extraGroups append."""
    values = scenario_values(CHART / "ci" / "kube-prometheus-stack-values.yaml")
    objects = render(values)
    rule = only(objects, "PrometheusRule")
    labels = rule["metadata"]["labels"]
    assert labels["team"] == "backup" and labels["release"] == "kube-prometheus-stack"
    alerts = [r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]]
    for name in values["prometheusRule"]["disabledAlerts"]:
        assert name not in alerts
    assert rule["spec"]["groups"][-1] == values["prometheusRule"]["extraGroups"][-1]
    monitor = only(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True and endpoint["port"] == "http"


def test_dashboards_become_labelled_configmaps() -> None:
    """One ConfigMap per dashboards/*.json (none when there is none), labelled for the sidecar."""
    objects = render({"dashboards": {"enabled": True}})
    maps = [o for o in objects if o["kind"] == "ConfigMap"
            and o["metadata"]["labels"].get("grafana_dashboard") == "1"]
    sources = sorted((ROOT / "dashboards").glob("*.json"))
    assert len(maps) == len(sources)
    shipped = {k: json.loads(v) for m in maps for k, v in m["data"].items()}
    assert sorted(shipped.values(), key=str) == sorted(
        (json.loads(p.read_text()) for p in sources), key=str)
    assert not [o for o in render({}) if o["metadata"]["labels"].get("grafana_dashboard")]


def config_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the exporter configuration in the release's ConfigMap."""
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"
                    and o["metadata"]["name"] == f"{RELEASE}-bacula-exporter"]
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yml"])
    return config


def test_state_database_runs_replicas() -> None:
    """With stateDatabase: the replicas asked for, rolled, a PDB, spread over nodes, no PVC, and
    state_database (password from the mounted Secret) in the config instead of state_dir."""
    values = scenario_values(CHART / "ci" / "ha-values.yaml")
    assert values["replicaCount"] == 2
    objects = render(values)
    deployment = only(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    config = config_of(objects)
    assert "state_dir" not in config
    secret = values["stateDatabase"]["passwordSecret"]
    password_file = f"/etc/bacula-exporter/secrets/{secret['name']}/{secret['key']}"
    assert config["state_database"] == {"url": values["stateDatabase"]["url"],
                                        "password_file": password_file,
                                        "statement_timeout": "15s"}
    volume = mounts(deployment)[str(Path(password_file).parent)]
    assert volume["secret"]["secretName"] == secret["name"]
    pod = spec["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"]
                if m["mountPath"] == str(Path(password_file).parent)]
    assert mount["readOnly"] is True
    assert STATE_DIR not in mounts(deployment)
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    pdb = only(objects, "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1,
                           "selector": {"matchLabels": spec["selector"]["matchLabels"]}}
    (preferred,) = pod["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred["podAffinityTerm"]["labelSelector"]["matchLabels"] == (
        spec["selector"]["matchLabels"])
    # An affinity of one's own replaces the chart's.
    own = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "backup", "operator": "Exists"}]}]}}}
    pod = only(render({**values, "affinity": own}), "Deployment")["spec"]["template"]["spec"]
    assert pod["affinity"] == own


def test_state_database_with_one_replica() -> None:
    """One replica on a state database rolls too, needs no PVC and gets no PDB; leaving the url
    empty keeps state_dir, the PVC and Recreate."""
    values = {"stateDatabase": {"url": "postgresql://bx@statedb:5432/bx"},
              "config": {"sinks": [{"name": "hook", "type": "webhook",
                                    "url": "https://hooks.example/bacula"}]}}
    objects = render(values)
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "affinity" not in deployment["spec"]["template"]["spec"]
    kinds = [o["kind"] for o in objects]
    assert "PersistentVolumeClaim" not in kinds and "PodDisruptionBudget" not in kinds
    config = config_of(objects)
    assert config["state_database"] == {"url": "postgresql://bx@statedb:5432/bx"}
    assert "state_dir" not in config
    values["stateDatabase"]["url"] = ""
    objects = render(values)
    assert config_of(objects)["state_dir"] == STATE_DIR
    assert "state_database" not in config_of(objects)
    assert only(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    only(objects, "PersistentVolumeClaim")


def test_replicas_need_a_state_database() -> None:
    """More than one replica on a SQLite outbox fails the render with a message saying why."""
    with pytest.raises(helm.HelmRenderError, match=r"replicaCount 2 needs stateDatabase\.url"):
        render({"replicaCount": 2})
    with pytest.raises(helm.HelmRenderError, match=r"needs stateDatabase\.url"):
        render({"replicaCount": 3, "stateDatabase": {"url": ""}})
    assert only(render({"replicaCount": 1}), "Deployment")["spec"]["replicas"] == 1


@pytest.mark.parametrize("values", [
    {"catalogz": []},
    {"config": {"listen": "0.0.0.0:1"}},
    {"catalogs": [{"name": "main", "url": "oracle://db/x", "timezone": "UTC"}]},
    {"catalogs": []},
    {"port": "9625"},
    {"config": {"state_database": {"url": "postgresql://bx@statedb/bx"}}},
    {"stateDatabase": {"url": "mysql://bx@statedb/bx"}},
    {"stateDatabase": {"url": "postgresql://bx:secret@statedb/bx"}},
    {"stateDatabase": {"url": "postgresql://bx@statedb/bx", "password_file": "/x"}},
    {"replicaCount": "2"},
    {"config": {"directors": []}},
    {"directors": [{"name": "d", "catalog": "main", "address": "dir"}]},
    {"directors": [{"name": "d", "catalog": "main", "address": "dir", "password_env": "P",
                    "passwordSecret": {"name": "console"}}]},
    {"directors": [{"name": "d", "catalog": "main", "address": "dir", "password_env": "P",
                    "pasword_file": "/x"}]},
    {"directors": [{"name": "d", "catalog": "main", "address": "dir one", "password_env": "P"}]},
], ids=["unknown-key", "chart-owned-key", "bad-url", "no-catalog", "port-as-string",
        "chart-owned-state-database", "state-database-not-postgresql",
        "state-database-password-in-url", "state-database-unknown-key", "replicas-as-string",
        "chart-owned-directors", "director-without-password", "director-two-passwords",
        "director-unknown-key", "director-address-with-space"])
def test_schema_rejects_bad_values(values: dict[str, Any]) -> None:
    """values.schema.json stops typos and values the chart cannot render into a good config."""
    with pytest.raises(helm.HelmValuesError):
        render(values)


def test_chart_app_version_is_the_package_version() -> None:
    """Chart.yaml's appVersion (the default image tag) is the exporter's version."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__


# ---------------------------------------------------------------------------------------------
# systemd


def systemd_analyze() -> str:
    """Return systemd-analyze's path, or skip where it is absent."""
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed")
    return path


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with its command pointed at this venv's, which systemd-analyze needs to exist."""
    text = UNIT.read_text().replace("/opt/bacula-exporter/bin/bacula-exporter",
                                    tool("bacula-exporter"))
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


def test_systemd_unit_verifies(unit_copy: Path) -> None:
    """systemd-analyze verify accepts the unit without a warning."""
    proc = run(systemd_analyze(), "verify", unit_copy, cwd=unit_copy.parent)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_systemd_unit_exposure_is_low(unit_copy: Path) -> None:
    """systemd-analyze security rates the unit's exposure at most 2.0 (of 10)."""
    proc = run(systemd_analyze(), "security", "--offline=yes", "--threshold=20", unit_copy,
               cwd=unit_copy.parent)
    if "unrecognized option" in proc.stderr:
        pytest.skip("this systemd-analyze has no --offline")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr


def test_systemd_unit_hardening() -> None:
    """The unit runs unprivileged with the hardening the issue asks for."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            settings.setdefault(key.strip(), []).append(value.strip())
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "StateDirectory": "bacula-exporter",
                       "User": "bacula-exporter", "CapabilityBoundingSet": ""}.items():
        assert settings.get(key) == [value], key
    assert any(CONTAINER_CONFIG in v for v in settings["ExecStart"])


# ---------------------------------------------------------------------------------------------
# docs/configuration.md against the config model


def models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """Yield the pydantic models inside a type annotation (lists, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from models_in(typing.get_args(annotation)[0])
    elif origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from models_in(arg)


def config_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Yield the dotted path of every key of the configuration file."""
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        yield path
        for sub in models_in(field.annotation):
            yield from config_keys(sub, f"{path}.")


def test_configuration_reference_documents_every_key() -> None:
    """Every key of the config model appears in docs/configuration.md as `path` or `key`."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`([^`\s]+)`", doc))
    missing = []
    for path in config_keys(Config):
        leaf = path.rsplit(".", 1)[-1]
        if path not in documented and leaf not in documented:
            missing.append(path)
    assert not missing, f"docs/configuration.md does not document {missing}"


def test_configuration_reference_defaults() -> None:
    """The top-level and catalog tables give each key's default as the model has it."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| ([^|]*) \|", doc, re.M))
    (catalog,) = models_in(Config.model_fields["catalogs"].annotation)
    for section, model in (("", Config), ("catalogs.", catalog)):
        for name, field in model.model_fields.items():
            cell = rows.get(f"{section}{name}")
            assert cell is not None, f"no table row for `{section}{name}`"
            shown = cell.strip().strip("`")
            if field.is_required():
                assert "required" in cell, (name, cell)
            elif isinstance(field.default, bool):
                assert shown == str(field.default).lower(), (name, cell)
            elif isinstance(field.default, float):
                assert parse_duration(shown) == field.default, (name, cell)
            elif isinstance(field.default, str):
                assert shown == field.default, (name, cell)
