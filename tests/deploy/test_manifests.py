"""Static checks of everything that ships hookgate: deploy/, docker-compose.yml, the Dockerfile.

No Docker engine and no cluster are needed: the Kubernetes documents are validated against the
API's JSON schemas (kubernetes-validate, bundled, offline), and the cross-references a reviewer
would check by eye (selectors, ports, probes, RBAC, mounts, command lines against the CLI
contract, ports against the example EventSources) are checked here one by one.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

Doc = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
EXAMPLES = ROOT / "examples"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

IMAGE = "ghcr.io/hookgate/hookgate:0.1.0"
NATS_IMAGE = "nats:2.10-alpine"
NAMESPACE = "hookgate"
MANIFESTS_CONFIGMAP = "hookgate-manifests"
SECRET_MANIFESTS = "hookgate-secret-manifests"
GATEWAY = "hookgate-gateway"
SENSOR = "hookgate-sensor"
MEMORY_LIMIT = "128Mi"
K8S_VERSIONS = ("1.29", "1.37")  # oldest still common, newest the validator bundles
KUSTOMIZE_KINDS = {"Kustomization", "Component"}
ARGO_KINDS = {"EventSource", "Sensor"}
NATS_CLIENT_PORT = 4222
NATS_MONITOR_PORT = 8222

# The only rights the sensor has: (apiGroup, resource, verb, resourceName or "").
SENSOR_RULES = {
    ("argoproj.io", "workflows", "create", ""),
    ("argoproj.io", "workflows", "get", ""),
    ("argoproj.io", "workflowtemplates", "get", ""),
    ("", "secrets", "get", "gitlab-secret"),
    ("", "secrets", "get", "github-secret"),
}
SENSOR_CLUSTER_RULES = {("argoproj.io", "clusterworkflowtemplates", "get", "")}


# --- the command-line contract (DESIGN.md), as far as deploy files use it ------------------------


@dataclass(frozen=True)
class Flag:
    takes_value: bool = True
    repeatable: bool = False
    integer: bool = False


CLI: dict[str, dict[str, Flag]] = {
    "up": {"-f": Flag(repeatable=True), "--nats": Flag(), "--kubeconfig": Flag(), "--dry-run": Flag(),
           "--host": Flag(), "--data-dir": Flag()},
    "gateway": {"-f": Flag(repeatable=True), "--nats": Flag(), "--host": Flag(), "--spool-dir": Flag()},
    "sensor": {"-f": Flag(repeatable=True), "--nats": Flag(), "--kubeconfig": Flag(), "--dry-run": Flag(),
               "--metrics-port": Flag(integer=True)},
}
EXCLUSIVE = ("--kubeconfig", "--dry-run")


class ContractError(ValueError):
    pass


def parse_command(argv: list[str]) -> tuple[str, dict[str, list[str]]]:
    """Check a hookgate command line against the contract; give its subcommand and flag values."""
    if not argv or argv[0] not in CLI:
        raise ContractError(f"not a long-running hookgate subcommand: {argv[:1]}")
    spec = CLI[argv[0]]
    values: dict[str, list[str]] = {}
    args = iter(argv[1:])
    for arg in args:
        name, inline = arg.split("=", 1) if arg.startswith("--") and "=" in arg else (arg, None)
        if name not in spec:
            raise ContractError(f"{argv[0]}: unknown flag or stray argument {arg!r}")
        value = inline if inline is not None else next(args, None)
        if value is None or value.startswith("-"):
            raise ContractError(f"{argv[0]}: {name} needs a value")
        if spec[name].integer and not value.isdigit():
            raise ContractError(f"{argv[0]}: {name} needs an integer, got {value!r}")
        if name in values and not spec[name].repeatable:
            raise ContractError(f"{argv[0]}: {name} given twice")
        values.setdefault(name, []).append(value)
    if "-f" not in values:
        raise ContractError(f"{argv[0]}: -f PATH is required")
    if all(flag in values for flag in EXCLUSIVE):
        raise ContractError(f"{argv[0]}: {' and '.join(EXCLUSIVE)} exclude each other")
    return argv[0], values


# --- loading ---------------------------------------------------------------------------------------


def load_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def deploy_docs() -> list[tuple[Path, int, Any]]:
    return [(path, i, doc) for path in deploy_files() for i, doc in enumerate(load_yaml(path))]


def k8s_docs() -> list[Doc]:
    return [doc for _, _, doc in deploy_docs() if doc.get("kind") not in KUSTOMIZE_KINDS]


def doc_id(item: tuple[Path, int, Any]) -> str:
    path, index, doc = item
    kind = doc.get("kind", "?") if isinstance(doc, dict) else "?"
    return f"{path.relative_to(ROOT)}#{index}:{kind}"


def find(kind: str, name: str, namespace: str | None = NAMESPACE) -> Doc:
    found = [d for d in k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name
             and d["metadata"].get("namespace") == namespace]
    assert len(found) == 1, f"expected exactly one {kind} {namespace}/{name} in deploy/, found {len(found)}"
    return found[0]


def workloads() -> list[Doc]:
    return [d for d in k8s_docs() if d["kind"] in ("Deployment", "StatefulSet")]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def only_container(workload: Doc) -> Doc:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']}: one container expected"
    container: Doc = containers[0]
    return container


def configmap_docs(name: str, key_filter: str | None = None) -> list[tuple[str, Doc]]:
    """The YAML documents inside a ConfigMap's data or a Secret's stringData, with their key."""
    kind, field = ("ConfigMap", "data") if name == MANIFESTS_CONFIGMAP else ("Secret", "stringData")
    holder = find(kind, name)
    out: list[tuple[str, Doc]] = []
    for key, text in holder[field].items():
        if key_filter is None or key == key_filter:
            out.extend((key, doc) for doc in yaml.safe_load_all(text) if doc is not None)
    return out


def example_docs() -> list[Doc]:
    if not EXAMPLES.is_dir():
        return []
    paths = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml"))
    return [d for p in paths for d in load_yaml(p) if isinstance(d, dict)]


def webhook_ports(docs: Iterable[Doc]) -> dict[int, str]:
    """Each port an EventSource listens on → "<name>/<event>" (spec.<type>.<event>.webhook.port;
    for the generic `webhook` type the event itself carries port)."""
    ports: dict[int, str] = {}
    for doc in docs:
        if doc.get("kind") != "EventSource":
            continue
        for source_type, events in (doc.get("spec") or {}).items():
            if source_type == "service" or not isinstance(events, dict):
                continue
            for event, body in events.items():
                if not isinstance(body, dict):
                    continue
                hook = body if source_type == "webhook" else body.get("webhook")
                if isinstance(hook, dict) and hook.get("port") is not None:
                    ports[int(hook["port"])] = f"{doc['metadata']['name']}/{event}"
    return ports


def secret_refs(node: Any) -> Iterator[tuple[str, str]]:
    """Every SecretKeySelector ({name, key[, optional]}) anywhere under node."""
    if isinstance(node, dict):
        if {"name", "key"} <= node.keys() <= {"name", "key", "optional"}:
            yield node["name"], node["key"]
        for value in node.values():
            yield from secret_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from secret_refs(value)


def container_port_numbers(container: Doc) -> dict[str | int, int]:
    """containerPort by name and by number, as probes and Services may name either."""
    ports: dict[str | int, int] = {}
    for p in container.get("ports", []):
        ports[p["containerPort"]] = p["containerPort"]
        if "name" in p:
            ports[p["name"]] = p["containerPort"]
    return ports


def probes(container: Doc) -> dict[str, Doc]:
    return {k: container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in container}


def mount_paths(workload: Doc) -> dict[str, str]:
    """mountPath → volume name."""
    return {m["mountPath"]: m["name"] for m in only_container(workload).get("volumeMounts", [])}


def compose() -> Doc:
    doc: Doc = yaml.safe_load(COMPOSE.read_text())
    return doc


def compose_command(service: Doc) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def compose_ports(service: Doc) -> dict[int, int]:
    """container port → published host port."""
    out: dict[int, int] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out[int(entry["target"])] = int(entry.get("published", entry["target"]))
            continue
        parts = str(entry).split("/")[0].split(":")
        out[int(parts[-1])] = int(parts[-2]) if len(parts) > 1 else int(parts[-1])
    return out


def compose_volumes(service: Doc) -> dict[str, tuple[str, bool]]:
    """container path → (source, read_only)."""
    out: dict[str, tuple[str, bool]] = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            out[entry["target"]] = (entry.get("source", ""), bool(entry.get("read_only")))
            continue
        source, target, *mode = str(entry).split(":")
        out[target] = (source, "ro" in mode[0].split(",") if mode else False)
    return out


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    out = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def rules_of(role: Doc) -> set[tuple[str, str, str, str]]:
    flat: set[tuple[str, str, str, str]] = set()
    for rule in role.get("rules", []):
        names = rule.get("resourceNames") or [""]
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    flat.update((group, resource, verb, name) for name in names)
    return flat


# --- every document ----------------------------------------------------------------------------------


@pytest.mark.parametrize("item", deploy_docs(), ids=doc_id)
def test_every_document_has_api_version_kind_and_name(item: tuple[Path, int, Any]) -> None:
    _, _, doc = item
    assert isinstance(doc, dict)
    assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"]
    assert isinstance(doc.get("kind"), str) and doc["kind"]
    assert isinstance(doc.get("metadata"), dict) and isinstance(doc["metadata"].get("name"), str)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", doc["metadata"]["name"]), "not a DNS-1123 name"


def test_deploy_holds_the_expected_objects() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in k8s_docs()}
    assert kinds >= {
        ("Namespace", NAMESPACE), ("StatefulSet", "nats"), ("Service", "nats"),
        ("ConfigMap", MANIFESTS_CONFIGMAP), ("Secret", SECRET_MANIFESTS),
        ("ServiceAccount", GATEWAY), ("Deployment", GATEWAY), ("Service", GATEWAY),
        ("ServiceAccount", SENSOR), ("Deployment", SENSOR), ("Role", SENSOR), ("RoleBinding", SENSOR),
        ("ClusterRole", "hookgate-sensor-clusterworkflowtemplates"),
        ("ClusterRoleBinding", "hookgate-sensor-clusterworkflowtemplates"),
    }
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in k8s_docs()]
    assert len(names) == len(set(names)), "an object is defined twice"


def test_namespaced_objects_say_their_namespace() -> None:
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for doc in k8s_docs():
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in cluster_scoped:
            assert namespace is None, f"{doc['kind']} {doc['metadata']['name']} is cluster-scoped"
        elif doc["kind"] in ("Role", "RoleBinding"):
            assert namespace, f"{doc['kind']} {doc['metadata']['name']} needs an explicit namespace"
        else:
            assert namespace == NAMESPACE, f"{doc['kind']} {doc['metadata']['name']} not in {NAMESPACE}"


# --- schema ----------------------------------------------------------------------------------------


def schema_validate(doc: Doc, version: str) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (it belongs in the test extras)")
    kubernetes_validate.validate(doc, version, strict=True)


def schema_cases() -> list[Any]:
    docs = [(f"{doc_id((p, i, d))}", d) for p, i, d in deploy_docs() if d.get("kind") not in KUSTOMIZE_KINDS]
    docs += [(f"{SECRET_MANIFESTS}:{key}:{d['metadata']['name']}", d)
             for key, d in configmap_docs(SECRET_MANIFESTS)]
    return [pytest.param(d, v, id=f"{name}@{v}") for name, d in docs for v in K8S_VERSIONS]


@pytest.mark.parametrize(("doc", "version"), schema_cases())
def test_kubernetes_documents_match_the_api_schema(doc: Doc, version: str) -> None:
    schema_validate(doc, version)  # strict: an unknown or misspelt field fails too


@pytest.mark.parametrize(("path", "value"), [
    pytest.param(("spec", "replicas"), "two", id="wrong-type"),
    pytest.param(("spec", "template", "spec", "containers", 0, "imagePullPolicy2"), "Always",
                 id="unknown-field"),
    pytest.param(("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"), None,
                 id="missing-required"),
])
def test_schema_validation_rejects_a_broken_deployment(path: tuple[str | int, ...], value: Any) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (it belongs in the test extras)")
    doc = copy.deepcopy(find("Deployment", GATEWAY))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if value is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSIONS[0], strict=True)


# --- kustomize ---------------------------------------------------------------------------------------


def test_every_deploy_folder_has_a_kustomization_listing_exactly_its_files() -> None:
    folders = {p.parent for p in deploy_files()}
    for folder in folders:
        kustomization = folder / "kustomization.yaml"
        assert kustomization.is_file(), f"{folder.relative_to(ROOT)} has no kustomization.yaml"
        (doc,) = load_yaml(kustomization)
        assert doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
        assert doc["kind"] == "Kustomization"
        assert "namespace" not in doc, "a kustomize namespace would move the Role out of the Sensors' namespace"
        listed = doc.get("resources", [])
        assert len(listed) == len(set(listed)), f"{kustomization}: a resource is listed twice"
        files = {p.name for p in folder.iterdir() if p.suffix in (".yaml", ".yml")} - {kustomization.name}
        where = kustomization.relative_to(ROOT)
        assert set(listed) == files, f"{where} lists {sorted(listed)}, the folder has {sorted(files)}"


def test_the_namespace_comes_first_in_the_kustomization() -> None:
    (doc,) = load_yaml(DEPLOY / "kustomization.yaml")
    assert doc["resources"][0] == "namespace.yaml"


# --- images, ports, probes, selectors ------------------------------------------------------------


def test_images_are_exactly_the_expected_ones() -> None:
    images = {w["metadata"]["name"]: [c["image"] for c in pod_spec(w)["containers"]] for w in workloads()}
    assert images == {"nats": [NATS_IMAGE], GATEWAY: [IMAGE], SENSOR: [IMAGE]}
    for workload in workloads():
        assert not pod_spec(workload).get("initContainers"), "no init containers expected"


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_probes_hit_declared_container_ports(workload: Doc) -> None:
    container = only_container(workload)
    ports = container_port_numbers(container)
    assert probes(container), "every container has probes"
    for kind, probe in probes(container).items():
        assert probe["httpGet"]["port"] in ports, f"{kind} port {probe['httpGet']['port']} is not a containerPort"


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_workload_selector_matches_its_pod_labels(workload: Doc) -> None:
    selector = workload["spec"]["selector"]["matchLabels"]
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert selector and selector.items() <= labels.items()


@pytest.mark.parametrize("service", [d for d in k8s_docs() if d["kind"] == "Service"],
                         ids=lambda s: s["metadata"]["name"])
def test_service_selects_exactly_one_workload_and_targets_its_ports(service: Doc) -> None:
    selector = service["spec"]["selector"]
    matched = [w for w in workloads() if w["metadata"]["namespace"] == service["metadata"]["namespace"]
               and selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
    assert [w["metadata"]["name"] for w in matched] == [service["metadata"]["name"]]
    ports = container_port_numbers(only_container(matched[0]))
    for port in service["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        assert target in ports, f"targetPort {target} is not a containerPort of {matched[0]['metadata']['name']}"
        assert ports[target] == port["port"], "the Service port and the container port differ"


# --- security and resources ------------------------------------------------------------------------


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_pods_meet_the_restricted_pod_security_standard(workload: Doc) -> None:
    pod = pod_spec(workload)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
        assert not sc.get("privileged")
        resources = container["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys() and "memory" in resources["limits"]
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert all("hostPath" not in v for v in pod.get("volumes", []))


@pytest.mark.parametrize("name", [GATEWAY, SENSOR])
def test_hookgate_containers_run_as_the_image_user_within_128mi(name: str) -> None:
    workload = find("Deployment", name)
    assert pod_spec(workload)["securityContext"]["runAsUser"] == 10001
    assert only_container(workload)["resources"]["limits"]["memory"] == MEMORY_LIMIT
    # readOnlyRootFilesystem: /tmp is a volume, for libraries that write temporary files.
    assert "/tmp" in mount_paths(workload)


def test_namespace_enforces_the_restricted_standard() -> None:
    labels = find("Namespace", NAMESPACE, None)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# --- NATS ----------------------------------------------------------------------------------------------


def test_nats_is_one_jetstream_server_with_a_persistent_file_store() -> None:
    sts = find("StatefulSet", "nats")
    assert sts["spec"]["replicas"] == 1
    container = only_container(sts)
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv[0] == "nats-server" and "-js" in argv
    store = argv[argv.index("-sd") + 1]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert mount_paths(sts)[store] == claim["metadata"]["name"], "the JetStream store is not on the PVC"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert int(argv[argv.index("-p") + 1]) == NATS_CLIENT_PORT
    assert int(argv[argv.index("-m") + 1]) == NATS_MONITOR_PORT
    assert set(container_port_numbers(container).values()) == {NATS_CLIENT_PORT, NATS_MONITOR_PORT}
    assert pod_spec(sts)["securityContext"]["fsGroup"], "the volume must be writable by the non-root user"


def test_nats_service_is_the_headless_governing_service() -> None:
    sts = find("StatefulSet", "nats")
    service = find("Service", sts["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert {p["port"] for p in service["spec"]["ports"]} == {NATS_CLIENT_PORT, NATS_MONITOR_PORT}


# --- hookgate command lines ------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    pytest.param(["serve", "-f", "x"], id="unknown-subcommand"),
    pytest.param(["gateway", "--nats", "nats://x:4222"], id="no-f"),
    pytest.param(["gateway", "-f", "x", "--nats"], id="missing-value"),
    pytest.param(["gateway", "-f", "x", "--metrics-port", "7777"], id="sensor-flag-on-gateway"),
    pytest.param(["sensor", "-f", "x", "--spool-dir", "/s"], id="gateway-flag-on-sensor"),
    pytest.param(["sensor", "-f", "x", "--kubeconfig", "k", "--dry-run", "d"], id="exclusive"),
    pytest.param(["sensor", "-f", "x", "--metrics-port", "http"], id="port-not-integer"),
    pytest.param(["sensor", "-f", "x", "--nats", "a", "--nats", "b"], id="twice"),
    pytest.param(["gateway", "-f", "x", "extra"], id="stray-argument"),
])
def test_command_contract_rejects(argv: list[str]) -> None:
    with pytest.raises(ContractError):
        parse_command(argv)


def test_command_contract_accepts_the_documented_forms() -> None:
    assert parse_command(["gateway", "-f", "a", "-f", "b", "--nats=nats://n:4222", "--host", "::"]) == (
        "gateway", {"-f": ["a", "b"], "--nats": ["nats://n:4222"], "--host": ["::"]})
    assert parse_command(["sensor", "-f", "a", "--dry-run", "/out", "--metrics-port", "7777"])[0] == "sensor"


def nats_url_target(url: str) -> tuple[str, int]:
    match = re.fullmatch(r"nats://([a-z0-9.-]+):(\d+)", url)
    assert match, f"--nats {url!r} is not nats://HOST:PORT"
    return match[1], int(match[2])


@pytest.mark.parametrize(("name", "subcommand"), [(GATEWAY, "gateway"), (SENSOR, "sensor")])
def test_kubernetes_commands_follow_the_contract(name: str, subcommand: str) -> None:
    workload = find("Deployment", name)
    container = only_container(workload)
    assert "command" not in container, "the image's ENTRYPOINT is hookgate"
    parsed, flags = parse_command(container["args"])
    assert parsed == subcommand
    mounts = mount_paths(workload)
    for path in flags["-f"]:
        assert path in mounts, f"-f {path} is not a mounted volume"
    host, port = nats_url_target(flags["--nats"][0])
    nats_service = find("Service", host)
    assert port in {p["port"] for p in nats_service["spec"]["ports"]}
    assert "--kubeconfig" not in flags and "--dry-run" not in flags, "in cluster: in-cluster config"


def test_gateway_loads_the_manifests_and_the_secret_manifests() -> None:
    workload = find("Deployment", GATEWAY)
    _, flags = parse_command(only_container(workload)["args"])
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    sources = {mount: volumes[name] for mount, name in mount_paths(workload).items()}
    loaded = [sources[path] for path in flags["-f"]]
    assert [v.get("configMap", {}).get("name") for v in loaded].count(MANIFESTS_CONFIGMAP) == 1
    assert [v.get("secret", {}).get("secretName") for v in loaded].count(SECRET_MANIFESTS) == 1
    spool = flags["--spool-dir"][0]
    assert spool in sources, f"--spool-dir {spool} is not a volume"
    assert {"emptyDir", "persistentVolumeClaim"} & sources[spool].keys()


def shipped_commands() -> list[Any]:
    k8s = [pytest.param(only_container(find("Deployment", n))["args"], id=f"k8s-{n}") for n in (GATEWAY, SENSOR)]
    services = compose()["services"]
    return k8s + [pytest.param(compose_command(services[n]), id=f"compose-{n}") for n in ("gateway", "sensor")]


@pytest.mark.parametrize("argv", shipped_commands())
def test_shipped_commands_parse_with_the_real_cli(argv: list[str]) -> None:
    from hookgate import cli  # the implementation, beside the contract checked above

    args = cli.parser().parse_args(argv)
    assert args.command == argv[0] and args.files


def test_sensor_serves_metrics_and_probes_on_its_metrics_port() -> None:
    container = only_container(find("Deployment", SENSOR))
    _, flags = parse_command(container["args"])
    port = int(flags["--metrics-port"][0])
    assert set(container_port_numbers(container).values()) == {port}
    assert {p["httpGet"]["port"] for p in probes(container).values()} == {port}
    assert {p["httpGet"]["path"] for p in probes(container).values()} == {"/healthz", "/readyz"}


def test_sensor_is_a_single_replica_replaced_not_rolled() -> None:
    sensor = find("Deployment", SENSOR)
    assert sensor["spec"]["replicas"] == 1
    assert sensor["spec"]["strategy"]["type"] == "Recreate"


# --- the manifests hookgate runs in the cluster ---------------------------------------------------------


def test_configmap_holds_only_argo_eventsources_and_sensors() -> None:
    docs = configmap_docs(MANIFESTS_CONFIGMAP)
    assert {d["kind"] for _, d in docs} == ARGO_KINDS
    for key, doc in docs:
        assert key.endswith((".yaml", ".yml")), f"{key}: hookgate loads only .yaml / .yml files"
        assert doc["apiVersion"] == "argoproj.io/v1alpha1"
        assert doc["metadata"]["name"]


def test_gateway_exposes_and_probes_every_configmap_eventsource_port() -> None:
    ports = webhook_ports(d for _, d in configmap_docs(MANIFESTS_CONFIGMAP))
    assert ports
    gateway = find("Deployment", GATEWAY)
    container = only_container(gateway)
    assert set(container_port_numbers(container).values()) == set(ports)
    assert {p["port"] for p in find("Service", GATEWAY)["spec"]["ports"]} == set(ports)
    for kind, probe in probes(container).items():
        port = container_port_numbers(container)[probe["httpGet"]["port"]]
        assert port in ports, f"{kind} probes port {port}, where no EventSource listens"
    assert {p["httpGet"]["path"] for p in probes(container).values()} == {"/healthz", "/readyz"}


def test_gateway_service_and_compose_expose_every_example_eventsource_port() -> None:
    ports = webhook_ports(example_docs())
    if not ports:
        pytest.skip("examples/ holds no EventSource with a webhook port yet")
    service_ports = {p["port"] for p in find("Service", GATEWAY)["spec"]["ports"]}
    compose_gateway = compose_ports(compose()["services"]["gateway"])
    for port, source in ports.items():
        assert port in service_ports, f"{source} listens on {port}: not in the gateway Service"
        assert port in compose_gateway, f"{source} listens on {port}: not published by docker-compose"


def test_configmap_is_a_faithful_copy_of_the_examples() -> None:
    examples = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
                for d in example_docs() if d.get("kind") in ARGO_KINDS}
    if not examples:
        pytest.skip("examples/ holds no EventSource or Sensor yet")
    copied = set()
    for key, doc in configmap_docs(MANIFESTS_CONFIGMAP):
        ident = (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
        assert ident in examples, f"{key}: {ident} is not in examples/ (a stale copy?)"
        assert json.dumps(doc, sort_keys=True) == json.dumps(examples[ident], sort_keys=True), (
            f"{key}: {ident} differs from examples/: copy the example into deploy/manifests-configmap.yaml again")
        copied.add(ident)
    missing = sorted(set(examples) - copied)
    assert not missing, f"examples/ has {missing}, deploy/manifests-configmap.yaml does not"


def test_secret_manifests_have_the_example_secrets_names_and_keys() -> None:
    def shape(docs: Iterable[Doc]) -> dict[tuple[str, str], set[str]]:
        return {(d["metadata"].get("namespace", "default"), d["metadata"]["name"]):
                {*d.get("data", {}), *d.get("stringData", {})} for d in docs if d.get("kind") == "Secret"}

    examples = shape(example_docs())
    if not examples:
        pytest.skip("examples/ holds no Secret yet")
    assert shape(d for _, d in configmap_docs(SECRET_MANIFESTS, "secrets.yaml")) == examples


def test_secret_manifests_provide_every_secret_the_eventsources_reference() -> None:
    provided = {(d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d
                for _, d in configmap_docs(SECRET_MANIFESTS, "secrets.yaml")}
    assert {d["kind"] for d in provided.values()} == {"Secret"}
    for _, doc in configmap_docs(MANIFESTS_CONFIGMAP):
        if doc["kind"] != "EventSource":
            continue
        namespace = doc["metadata"].get("namespace", "default")
        for name, key in secret_refs(doc["spec"]):
            secret = provided.get((namespace, name))
            assert secret, f"EventSource {doc['metadata']['name']} needs Secret {namespace}/{name}"
            assert key in {**secret.get("data", {}), **secret.get("stringData", {})}, f"{name} lacks {key}"


def test_manifests_load_from_kubernetes_volumes(tmp_path: Path) -> None:
    """Lay out the ConfigMap and Secret as kubelet does (files are symlinks through ..data into a
    hidden timestamped folder) and load them the way the gateway does: each document once."""
    from hookgate import manifests  # the product's own loader, as the gateway and sensor use it

    folders = []
    for kind, name, field in (("ConfigMap", MANIFESTS_CONFIGMAP, "data"), ("Secret", SECRET_MANIFESTS, "stringData")):
        volume = tmp_path / name
        real = volume / "..2025_01_01_00_00_00.000000001"
        real.mkdir(parents=True)
        for key, text in find(kind, name)[field].items():
            (real / key).write_text(text)
            (volume / key).symlink_to(Path("..data") / key)
        (volume / "..data").symlink_to(real.name)
        folders.append(volume)
    bundle = manifests.load(folders)
    expected = configmap_docs(MANIFESTS_CONFIGMAP)
    assert len(bundle.eventsources) == sum(d["kind"] == "EventSource" for _, d in expected)
    assert len(bundle.sensors) == sum(d["kind"] == "Sensor" for _, d in expected)
    assert len(bundle.secrets) == len(configmap_docs(SECRET_MANIFESTS))


# --- RBAC ---------------------------------------------------------------------------------------------


def test_sensor_role_grants_exactly_the_minimal_rules() -> None:
    roles = [d for d in k8s_docs() if d["kind"] == "Role"]
    assert [r["metadata"]["name"] for r in roles] == [SENSOR]
    assert rules_of(roles[0]) == SENSOR_RULES


def test_sensor_role_lives_where_the_sensors_submit_workflows() -> None:
    role = find("Role", SENSOR, "default")
    namespaces = {d["metadata"].get("namespace", "default")
                  for _, d in configmap_docs(MANIFESTS_CONFIGMAP) if d["kind"] == "Sensor"}
    assert namespaces == {role["metadata"]["namespace"]}


def test_optional_cluster_role_only_reads_clusterworkflowtemplates() -> None:
    roles = [d for d in k8s_docs() if d["kind"] == "ClusterRole"]
    assert len(roles) == 1 and rules_of(roles[0]) == SENSOR_CLUSTER_RULES
    assert all(p.parent.name == "optional" for p, _, d in deploy_docs() if d["kind"].startswith("Cluster"))


@pytest.mark.parametrize("binding", [d for d in k8s_docs() if d["kind"] in ("RoleBinding", "ClusterRoleBinding")],
                         ids=lambda b: f"{b['kind']}:{b['metadata']['name']}")
def test_bindings_reference_existing_roles_and_the_sensor_account(binding: Doc) -> None:
    ref = binding["roleRef"]
    assert ref["apiGroup"] == "rbac.authorization.k8s.io"
    expected_kind = "Role" if binding["kind"] == "RoleBinding" else "ClusterRole"
    assert ref["kind"] == expected_kind
    find(ref["kind"], ref["name"], binding["metadata"].get("namespace"))
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SENSOR, "namespace": NAMESPACE}]
    find("ServiceAccount", SENSOR)


def test_gateway_has_no_kubernetes_api_access() -> None:
    account = find("ServiceAccount", GATEWAY)
    assert account["automountServiceAccountToken"] is False
    pod = pod_spec(find("Deployment", GATEWAY))
    assert pod["serviceAccountName"] == GATEWAY and pod["automountServiceAccountToken"] is False
    subjects = [s for d in k8s_docs() for s in d.get("subjects", [])]
    assert all(s["name"] != GATEWAY for s in subjects)
    assert pod_spec(find("Deployment", SENSOR))["serviceAccountName"] == SENSOR


# --- docker-compose.yml ------------------------------------------------------------------------------


def test_compose_runs_nats_gateway_and_sensor_from_the_expected_images() -> None:
    services = compose()["services"]
    assert set(services) == {"nats", "gateway", "sensor"}
    assert services["nats"]["image"] == NATS_IMAGE
    for name in ("gateway", "sensor"):
        assert services[name]["image"] == IMAGE
        assert services[name]["build"] == "."
        assert "nats" in services[name]["depends_on"]
        assert "entrypoint" not in services[name], "the image's ENTRYPOINT is hookgate"


def test_compose_nats_keeps_jetstream_on_a_volume() -> None:
    doc = compose()
    nats = doc["services"]["nats"]
    argv = [*nats.get("entrypoint", []), *compose_command(nats)]
    assert argv[0] == "nats-server" and "-js" in argv
    store = argv[argv.index("-sd") + 1]
    source, _ = compose_volumes(nats)[store]
    assert source in doc["volumes"], "the JetStream store is not a named volume"
    assert NATS_CLIENT_PORT in compose_ports(nats)


@pytest.mark.parametrize("name", ["gateway", "sensor"])
def test_compose_commands_follow_the_contract(name: str) -> None:
    doc = compose()
    service = doc["services"][name]
    subcommand, flags = parse_command(compose_command(service))
    assert subcommand == name
    volumes = compose_volumes(service)
    for path in flags["-f"]:
        assert volumes.get(path) == ("./examples", True), f"-f {path} is not examples/ mounted read-only"
    host, port = nats_url_target(flags["--nats"][0])
    assert host in doc["services"] and port == NATS_CLIENT_PORT
    for flag in ("--spool-dir", "--dry-run"):
        for path in flags.get(flag, []):
            assert path in volumes, f"{flag} {path} is not a volume"
            source, read_only = volumes[path]
            assert not read_only and (source in doc["volumes"] or source.startswith("./"))


def test_compose_sensor_writes_dry_run_files_to_the_host() -> None:
    sensor = compose()["services"]["sensor"]
    _, flags = parse_command(compose_command(sensor))
    assert compose_volumes(sensor)[flags["--dry-run"][0]] == ("./hookgate-out", False)
    assert "--kubeconfig" not in flags
    port = int(flags.get("--metrics-port", ["7777"])[0])
    assert compose_ports(sensor) == {port: port}


def test_compose_gateway_publishes_exactly_the_configmap_eventsource_ports() -> None:
    ports = webhook_ports(d for _, d in configmap_docs(MANIFESTS_CONFIGMAP))
    assert compose_ports(compose()["services"]["gateway"]) == {p: p for p in ports}


# --- Dockerfile ----------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    froms = [args for ins, args in dockerfile_instructions() if ins == "FROM"]
    assert len(froms) >= 2, "build and runtime stages expected"
    assert all(f.split()[0] == "python:3.11-slim" for f in froms)
    assert " AS " not in froms[-1].upper(), "the last stage is the runtime image"


def test_dockerfile_runs_hookgate_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    last_stage = instructions[max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM"):]
    users = [args for ins, args in last_stage if ins == "USER"]
    assert users, "no USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user == "10001"
    assert [i for i, _ in last_stage].index("USER") > max(
        i for i, (ins, _) in enumerate(last_stage) if ins == "RUN"), "a RUN after USER would run as the user"
    (entrypoint,) = [args for ins, args in last_stage if ins == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["hookgate"]
    (expose,) = [args for ins, args in last_stage if ins == "EXPOSE"]
    assert {int(p) for p in expose.split()} == {12000, 13000, 7777}


def test_dockerfile_copies_every_package_and_nothing_the_dockerignore_drops() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in include}
    copied: set[str] = set()
    for ins, args in dockerfile_instructions():
        if ins == "COPY" and "--from=" not in args:
            *sources, _ = args.split()
            copied.update(s.rstrip("/") for s in sources)
    assert packages | {"pyproject.toml", "README.md"} <= copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repo (the image build would fail)"
    kept = {line[1:].strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    assert DOCKERIGNORE.read_text().splitlines().count("*") == 1 and copied <= kept


def test_dockerfile_installs_from_built_wheels_without_network() -> None:
    # RUN --mount (the wheels bound from the build stage, never copied into a layer) needs BuildKit.
    assert DOCKERFILE.read_text().splitlines()[0] == "# syntax=docker/dockerfile:1"
    runs = [args for ins, args in dockerfile_instructions() if ins == "RUN"]
    assert any("pip wheel" in r for r in runs)
    assert any("pip install --no-index" in r and "hookgate" in r for r in runs)
