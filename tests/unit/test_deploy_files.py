"""Static checks of the deployment files in docker/ (no Docker engine or cluster exists here).

* ``docker-compose.yml`` against the Compose Specification's JSON schema, and against the project:
  its services, volumes, mounted files, the settings it passes, the reporter Prometheus scrapes.
* ``k8s/riskstream-scoring.yaml`` against the Flink Kubernetes operator's FlinkDeployment CRD
  schema, with unknown fields refused (as ``kubectl apply --validate=strict`` would).
* ``prometheus/alerts.yml`` with Debian's ``promtool`` (pinned in core/resources/tools.toml):
  ``check rules``, ``test rules`` and ``check config``; every metric it names is exported.
* The Dockerfile's base image, jar pins and paths.

The schemas are vendored in docker/schemas/ (README there: source and sha256, checked here).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from core import jars
from core.config import Settings, load_settings
from core.errors import ToolError
from core.jars import sha256_of
from jobs.env import PROMETHEUS_FACTORY
from udfs.metrics import exported_series

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
MANIFEST = DOCKER / "k8s" / "riskstream-scoring.yaml"
K8S_CONFIG = DOCKER / "k8s" / "riskstream-config.yaml"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
GUIDE = ROOT / "docs" / "deployment.md"
SCHEMAS = DOCKER / "schemas"
COMPOSE_SCHEMA = SCHEMAS / "compose-spec.json"
CRD = SCHEMAS / "flinkdeployments.flink.apache.org-v1.yml"
PINS = {
    COMPOSE_SCHEMA: "56bab44c85c0ce8affb74474950293f37d510673283a243bcd7eeadb900fa35c",
    CRD: "5f2b489140be56a972195971b8331f22f2c46d7f0de68cbd11ddf919cbc073a9",
}
CRD_FLINK_VERSIONS = ["v1_13", "v1_14", "v1_15", "v1_16", "v1_17", "v1_18", "v1_19", "v1_20"]
"""The enum of the vendored operator 1.10.0 CRD; Flink 2.x came in later releases (README)."""
FLINK_2_VERSIONS = ["v2_0", "v2_1", "v2_2"]
FLINK_VERSION = "2.2.1"
FLINK_IMAGE = f"flink:{FLINK_VERSION}-scala_2.12-java17"
REPORTER_PORT = "9249"
METRIC_NAME = re.compile(r"\bflink_[A-Za-z0-9_:]+")
SERVICES = {"kafka", "jobmanager", "taskmanager", "submit", "prometheus", "grafana"}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text("utf-8"))


def _properties(text: str) -> dict[str, str]:
    """A FLINK_PROPERTIES block (``key: value`` lines) as a mapping of strings."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            key, _, value = line.partition(":")
            found[key.strip()] = value.strip()
    return found


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = _yaml(COMPOSE)
    return loaded


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = _yaml(MANIFEST)
    return loaded


@pytest.mark.parametrize("path", sorted(PINS), ids=lambda p: p.name)
def test_the_vendored_schemas_are_the_pinned_files(path: Path) -> None:
    assert sha256_of(path) == PINS[path], f"{path} is not the file docker/schemas/README.md names"


# ---------------------------------------------------------------------------------------------
# docker-compose.yml


def _compose_errors(document: Any) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text("utf-8"))
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_the_compose_file_passes_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    assert _compose_errors(compose) == []


def test_the_compose_schema_check_catches_mistakes(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["submit"]["depends_on"]["kafka"]["condition"] = "service_ready"
    broken["services"]["grafana"]["volume"] = []
    assert len(_compose_errors(broken)) == 2


def test_the_compose_services_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node
    assert services["jobmanager"]["command"] == "jobmanager"
    assert services["taskmanager"]["command"] == "taskmanager"
    submit = services["submit"]
    assert submit["restart"] == "no"
    assert submit["command"] == ["/opt/riskstream/bin/submit.sh"]
    assert submit["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name, service in services.items():
        depends = service.get("depends_on", [])
        assert set(depends) <= set(services), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
    for name in ("jobmanager", "taskmanager", "submit"):
        mounts = {v.split(":")[1] for v in services[name]["volumes"]}
        assert "/flink-data" in mounts, f"{name} has no checkpoint volume"
        assert "/opt/riskstream/registry" in mounts, name
        assert services[name]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert services[name]["image"] == services["jobmanager"]["image"]


def _compose_settings(compose: dict[str, Any], service: str) -> Settings:
    """The settings a riskstream container of ``service`` loads: the mounted file and its
    environment (as the job's entry reads them)."""
    environment = compose["services"][service]["environment"]
    mounted = {
        v.split(":")[1]: DOCKER / v.split(":")[0]
        for v in compose["services"][service]["volumes"]
        if v.startswith(".")
    }
    config = mounted[environment["RISKSTREAM_CONFIG"]]
    environ = {k: str(v) for k, v in environment.items() if k.startswith("RISKSTREAM__")}
    return load_settings(config, environ=environ)


def test_the_compose_settings_load_and_match_the_flink_config(compose: dict[str, Any]) -> None:
    settings = _compose_settings(compose, "submit")
    assert settings.kafka.bootstrap == "kafka:9092"
    assert compose["services"]["submit"]["environment"]["JOBMANAGER"] == "jobmanager:8081"
    for name in ("jobmanager", "taskmanager"):
        flink = _properties(compose["services"][name]["environment"]["FLINK_PROPERTIES"])
        assert flink["execution.checkpointing.dir"] == settings.checkpoint_dir.as_uri()
        assert flink["state.backend.type"] == settings.checkpoint.state_backend == "rocksdb"
        assert flink["metrics.reporter.prom.factory.class"] == PROMETHEUS_FACTORY
        assert flink["metrics.reporter.prom.port"] == REPORTER_PORT
        assert flink["classloader.parent-first-patterns.additional"] == "pemja."
        assert flink["parallelism.default"] == str(settings.flink.parallelism)
        assert _compose_settings(compose, name) == settings


def test_prometheus_scrapes_the_flink_containers_and_grafana_is_provisioned(
    compose: dict[str, Any],
) -> None:
    config = _yaml(DOCKER / "prometheus" / "prometheus.yml")
    targets = {
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    }
    assert {f"jobmanager:{REPORTER_PORT}", f"taskmanager:{REPORTER_PORT}"} <= targets
    assert config["rule_files"] == [ALERTS.name]
    grafana = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["grafana"]["volumes"]}
    dashboards = _yaml(DOCKER / "grafana" / "provisioning" / "dashboards" / "riskstream.yml")
    path = dashboards["providers"][0]["options"]["path"]
    assert grafana[f"{path}/riskstream.json"] == "./grafana/riskstream.json"
    sources = _yaml(DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"


# ---------------------------------------------------------------------------------------------
# Dockerfile


def test_the_dockerfile_uses_the_pinned_image_and_jar_pins() -> None:
    text = (DOCKER / "Dockerfile").read_text("utf-8")
    assert f"ARG FLINK_IMAGE={FLINK_IMAGE}\n" in text
    assert "FROM ${FLINK_IMAGE}\n" in text
    assert "python3.11" in text and "pip install --no-cache-dir ." in text
    assert "COPY core/resources/jars.toml docker/fetch-connectors.sh ./" in text
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for item in source.split():
            assert (ROOT / item).exists(), f"the Dockerfile copies missing {item}"
    assert "RISKSTREAM__PATHS__JAR_DIR=/opt/riskstream/jars" in text
    assert "COPY --from=jars /fetch/out/ /opt/riskstream/jars/" in text
    assert f"flink-python-{FLINK_VERSION}.jar" in text


def test_fetch_connectors_verifies_every_pinned_connector(tmp_path: Path) -> None:
    """The image's jar stage, run with a stand-in ``mvn`` that copies from the jar cache (or
    writes a wrong file): each connector of the manifest is fetched and sha256-checked."""
    settings = load_settings(environ={})
    specs = jars.load_manifest().of_set(jars.FLINK_CONNECTORS_SET)
    cached = [jars.jar_dir(settings) / spec.file_name for spec in specs]
    if not all(p.is_file() for p in cached):
        pytest.skip("the connector jars are not cached: run `make jars`")
    fake = tmp_path / "bin" / "mvn"
    fake.parent.mkdir()
    fake.write_text(
        "#!/usr/bin/env bash\n"  # mvn -q -B dependency:copy -Dartifact=G:A:V -DoutputDirectory=D
        'art=${4#-Dartifact=}; out=${5#-DoutputDirectory=}; IFS=: read -r _ a v <<<"$art"\n'
        'if [[ -n "${BROKEN:-}" ]]; then echo x > "$out/$a-$v.jar"; '
        'else cp "$CACHE/$a-$v.jar" "$out/"; fi\n'
    )
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "CACHE": str(jars.jar_dir(settings))}
    script = [str(DOCKER / "fetch-connectors.sh"), str(jars.manifest_path()), str(tmp_path / "o")]
    done = subprocess.run(["bash", *script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(p.name for p in cached)
    broken = subprocess.run(
        ["bash", *script], env={**env, "BROKEN": "1"}, capture_output=True, text=True, check=False
    )
    assert broken.returncode != 0 and "FAILED" in broken.stdout + broken.stderr


# ---------------------------------------------------------------------------------------------
# The FlinkDeployment manifest


def _strict(node: Any) -> None:
    """Refuse unknown fields in every object the schema describes (Kubernetes prunes or, with
    strict field validation, rejects them), except where the CRD preserves unknown fields."""
    if isinstance(node, dict):
        if (
            node.get("type") == "object"
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)


def _crd_version() -> dict[str, Any]:
    crd = _yaml(CRD)
    assert crd["kind"] == "CustomResourceDefinition"
    [served] = [v for v in crd["spec"]["versions"] if v["served"]]
    version: dict[str, Any] = {**served, "group": crd["spec"]["group"]}
    version["kind"] = crd["spec"]["names"]["kind"]
    return version


def _manifest_errors(document: Any) -> list[str]:
    version = _crd_version()
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    spec = schema["properties"]["spec"]
    enum = spec["properties"]["flinkVersion"]["enum"]
    assert enum == CRD_FLINK_VERSIONS, "a new CRD: drop the Flink 2 patch below if it lists them"
    enum.extend(FLINK_2_VERSIONS)
    _strict(spec)
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft4Validator(schema).iter_errors(document)
    ]
    if document.get("apiVersion") != f"{version['group']}/{version['name']}":
        errors.append(f"apiVersion {document.get('apiVersion')!r}")
    if document.get("kind") != version["kind"]:
        errors.append(f"kind {document.get('kind')!r}")
    name = document.get("metadata", {}).get("name", "")
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,43}[a-z0-9])?", name):
        errors.append(f"metadata.name {name!r} (a DNS label the operator can prefix)")
    return errors


def test_the_manifest_passes_the_operator_crd_schema(manifest: dict[str, Any]) -> None:
    assert _manifest_errors(manifest) == []


def test_the_crd_check_refuses_unknown_and_wrong_fields(manifest: dict[str, Any]) -> None:
    broken = copy.deepcopy(manifest)
    broken["spec"]["job"]["upgrademode"] = "savepoint"  # a typo: the real key is upgradeMode
    broken["spec"]["job"]["parallelism"] = "2"
    broken["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"] = 2
    broken["spec"]["podTemplate"]["spec"]["containers"][0]["volumeMount"] = []
    assert len(_manifest_errors(broken)) == 4


def _config_map() -> dict[str, Any]:
    [found] = [
        d for d in yaml.safe_load_all(K8S_CONFIG.read_text("utf-8")) if d["kind"] == "ConfigMap"
    ]
    return dict(found)


def test_the_manifest_runs_the_scoring_job_as_the_issue_asks(
    manifest: dict[str, Any], tmp_path: Path
) -> None:
    spec = manifest["spec"]
    job, conf = spec["job"], spec["flinkConfiguration"]
    assert spec["flinkVersion"] == "v" + "_".join(FLINK_VERSION.split(".")[:2])
    assert spec["mode"] == "native" and "jarURI" in job  # application mode
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    assert job["jarURI"] == f"local:///opt/flink/lib/flink-python-{FLINK_VERSION}.jar"
    assert job["args"][:2] == ["-pym", "jobs.scoring"]
    assert job["upgradeMode"] == "savepoint"
    assert conf["state.backend.type"] == "rocksdb"
    assert conf["execution.checkpointing.incremental"] == "true"
    assert conf["execution.checkpointing.savepoint-dir"].startswith("file:///flink-data/")
    assert conf["metrics.reporter.prom.factory.class"] == PROMETHEUS_FACTORY
    assert conf["metrics.reporter.prom.port"] == REPORTER_PORT
    # The settings the pods load: the ConfigMap's file plus the container's RISKSTREAM__ env.
    [container] = spec["podTemplate"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config_file = tmp_path / "riskstream.yaml"
    config_file.write_text(_config_map()["data"]["riskstream.yaml"])
    assert env["RISKSTREAM_CONFIG"] == f"{mounts['riskstream-config']}/riskstream.yaml"
    overrides = {k: v for k, v in env.items() if k.startswith("RISKSTREAM__")}
    settings = load_settings(config_file, environ=overrides)
    assert conf["execution.checkpointing.dir"] == settings.checkpoint_dir.as_uri()
    assert settings.checkpoint_dir.is_relative_to(mounts["flink-data"])
    assert settings.registry.is_relative_to(mounts["registry"])
    # The job sets parallelism.default from flink.parallelism: it must say what the spec says.
    assert settings.flink.parallelism == job["parallelism"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in spec["podTemplate"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    declared = {
        d["metadata"]["name"]
        for d in yaml.safe_load_all(K8S_CONFIG.read_text())
        if d["kind"] == "PersistentVolumeClaim"
    }
    assert claims == declared


# ---------------------------------------------------------------------------------------------
# Alerts


@pytest.fixture(scope="module")
def promtool() -> Path:
    from riskstream.infra.prometheus import fetch_tool

    try:
        program = fetch_tool(load_settings(environ={})).parent / "promtool"
    except ToolError as exc:
        pytest.fail(f"promtool unavailable: {exc}")
    assert program.is_file(), "the pinned prometheus package ships no promtool"
    return program


@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
        ["check", "config", "prometheus.yml"],
    ],
    ids=" ".join,
)
def test_promtool_accepts_the_alerts(promtool: Path, args: list[str]) -> None:
    done = subprocess.run(
        [str(promtool), *args], cwd=ALERTS.parent, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in _yaml(ALERTS)["groups"] for rule in group["rules"]]


def test_every_alert_names_exported_metrics_and_is_documented() -> None:
    exported = exported_series()
    guide = GUIDE.read_text("utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", guide, re.M)
    }
    assert len(_alerts()) >= 10
    for rule in _alerts():
        names = set(METRIC_NAME.findall(rule["expr"]))
        assert names or rule["expr"].startswith("up{"), rule["alert"]
        assert names <= exported, (rule["alert"], names - exported)
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description", "runbook"} <= set(rule["annotations"])
        anchor = rule["annotations"]["runbook"].removeprefix("docs/deployment.md#")
        assert anchor == rule["alert"].lower() and anchor in anchors, rule["alert"]


def test_compose_and_kubernetes_share_the_settings_but_kafka(tmp_path: Path) -> None:
    config_file = tmp_path / "riskstream.yaml"
    config_file.write_text(_config_map()["data"]["riskstream.yaml"])
    kubernetes = load_settings(config_file, environ={})
    compose = load_settings(DOCKER / "riskstream.yaml", environ={})
    assert kubernetes.model_dump(exclude={"kafka"}) == compose.model_dump(exclude={"kafka"})
