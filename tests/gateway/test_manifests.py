"""Loading manifests: every error names the file, the document index and the field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.errors import ManifestError, format_path
from gateway.models import DEFAULT_MAX_PAYLOAD, EventSource
from hookgate.app import compile_sensors
from hookgate.manifests import load, parse_document
from sensors.kube import DryRunCluster
from tests.conftest import SHARED

ARGO_EXAMPLES = SHARED / "reference" / "argo-examples"
EXAMPLE_FILES = sorted(ARGO_EXAMPLES.rglob("*.yaml"))


def eventsource(spec: dict[str, Any], *, name: str = "es") -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource", "metadata": {"name": name}, "spec": spec}


def webhook_es(name: str = "es", **fields: Any) -> dict[str, Any]:
    return eventsource({"webhook": {"example": {"endpoint": "/hook", "port": "12000", **fields}}}, name=name)


def sensor(dependency: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {"name": "s"},
            "spec": {"dependencies": [{"name": "dep", "eventSourceName": "es", "eventName": "example", **dependency}],
                     "triggers": [{"template": {"name": "t", "log": {}}}]}}


def write(path: Path, *docs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def load_error(path: Path) -> ManifestError:
    with pytest.raises(ManifestError) as err:
        load([path])
    return err.value


# --- errors name file, document and field ---------------------------------------------------------


@pytest.mark.parametrize(("doc", "path", "message"), [
    pytest.param(webhook_es(methd="POST"), "spec.webhook.example.methd", "unknown field",
                 id="unknown-field-in-webhook"),
    pytest.param({**webhook_es(), "extra": 1}, "extra", "unknown field", id="unknown-top-level-field"),
    pytest.param(eventsource({"calendar": {"every": {"interval": "10s"}}}), "spec.calendar",
                 "not supported by hookgate", id="calendar-source"),
    pytest.param(eventsource({"kafka": {"x": {}}}), "spec.kafka", "not supported by hookgate", id="kafka-source"),
    pytest.param(webhook_es(filter={"expression": "sprig.trim(body.a) == 'x'"}),
                 "spec.webhook.example.filter.expression", "not supported by hookgate: sprig functions",
                 id="eventsource-level-filter"),
    pytest.param(webhook_es(serverCertSecret={"name": "tls", "key": "crt"}), "spec.webhook.example.serverCertSecret",
                 "not supported by hookgate", id="TLS-secret"),
    pytest.param(sensor({"transform": {"jq": ".body"}}), "spec.dependencies.0.transform",
                 "not supported by hookgate", id="dependency-transform"),
    pytest.param(webhook_es(port="abc"), "spec.webhook.example.port",
                 "port must be a number from 1 to 65535, got 'abc'", id="port-not-a-number"),
    pytest.param(webhook_es(port="0"), "spec.webhook.example.port", "port must be a number", id="port-zero"),
    pytest.param(webhook_es(port="70000"), "spec.webhook.example.port", "port must be a number", id="port-too-big"),
    pytest.param(webhook_es(port="12000.5"), "spec.webhook.example.port", "port must be a number", id="port-decimal"),
    pytest.param(webhook_es(endpoint="hook"), "spec.webhook.example.endpoint", "must start with '/', got 'hook'",
                 id="endpoint-without-slash"),
    pytest.param(eventsource({"webhook": {"example": {"endpoint": "/hook"}}}), "spec.webhook.example.port",
                 "required field missing", id="port-missing"),
    pytest.param(eventsource({"gitlab": {"example": {"webhook": {"endpoint": "/gl", "port": "12000"},
                                                     "events": ["PushEvents", "MergeRequestEvents"]}}}),
                 "spec.gitlab.example.events", "MergeRequestEvents", id="unknown-gitlab-event-name"),
    pytest.param(eventsource({"github": {"example": {"webhook": {"endpoint": "/gh", "port": "12000"},
                                                     "contentType": "xml"}}}),
                 "spec.github.example.contentType", "json", id="github-content-type"),
    pytest.param({**webhook_es(), "apiVersion": "argoproj.io/v1beta1"}, "apiVersion", "argoproj.io/v1alpha1",
                 id="wrong-api-version"),
    pytest.param({**webhook_es(), "metadata": {"namespace": "ci"}}, "metadata.name", "required",
                 id="metadata-name-missing"),
    pytest.param({k: v for k, v in webhook_es().items() if k != "metadata"}, "metadata", "required",
                 id="metadata-missing"),
    pytest.param({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "kind",
                 "unknown kind 'ConfigMap'", id="unknown-kind"),
    pytest.param({"apiVersion": "v1", "metadata": {"name": "c"}}, "kind", "unknown kind", id="kind-missing"),
    pytest.param({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "not base64!"}},
                 "data", "data.k is not valid base64", id="secret-data-not-base64"),
])
def test_a_bad_document_is_an_error_naming_file_document_and_field(tmp_path: Path, doc: dict[str, Any], path: str,
                                                                    message: str) -> None:
    file = write(tmp_path / "manifests.yaml", webhook_es(name="fine"), doc)
    err = load_error(file)
    assert err.file == str(file)
    assert err.document == 1
    assert format_path(err.path) == path
    assert message in err.message
    text = str(err)
    assert str(file) in text
    assert "document 1" in text
    assert f"{path}:" in text
    assert "{" not in err.message, "an unformatted message template leaked into the error"


def test_the_error_names_the_kind_and_the_object() -> None:
    with pytest.raises(ManifestError) as err:
        parse_document(webhook_es(name="my-hooks", methd="GET"), file="f.yaml", document=4)
    assert "EventSource/my-hooks" in str(err.value)
    assert str(err.value).startswith("f.yaml, document 4")


def test_several_errors_report_the_first_and_count_the_rest() -> None:
    with pytest.raises(ManifestError) as err:
        parse_document(webhook_es(methd="GET", color="red"), file="f.yaml", document=0)
    assert "1 more error" in str(err.value)


@pytest.mark.parametrize("doc", [pytest.param([1, 2], id="a-list"), pytest.param("text", id="a-string")])
def test_a_document_that_is_not_a_mapping_is_an_error(tmp_path: Path, doc: Any) -> None:
    err = load_error(write(tmp_path / "m.yaml", doc))
    assert err.document == 0
    assert "mapping" in err.message


@pytest.mark.parametrize(("text", "line"), [
    pytest.param("apiVersion: v1\nkind: Secret\nmetadata:\n  name: [a\nstringData: {}\n", 5, id="unclosed-flow"),
    pytest.param("apiVersion: v1\n kind: Secret\n", 2, id="bad-indentation"),
    pytest.param("kind: Secret\n---\nkind: Secret\nmetadata: {name: a\n", 5, id="in-the-second-document"),
])
def test_invalid_yaml_is_an_error_with_the_line_number(tmp_path: Path, text: str, line: int) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text(text)
    err = load_error(file)
    assert err.file == str(file)
    assert f"line {line}," in err.message
    assert "not valid YAML" in err.message


def test_a_missing_path_is_an_error_naming_it(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nowhere.yaml")
    assert err.file == str(tmp_path / "nowhere.yaml")
    assert "no such file" in err.message


def test_the_same_eventsource_twice_is_an_error_naming_both_places(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", webhook_es(name="dup"))
    second = write(tmp_path / "b.yaml", webhook_es(name="other"), webhook_es(name="dup"))
    with pytest.raises(ManifestError) as err:
        load([first, second])
    assert err.value.file == str(second)
    assert err.value.document == 1
    assert str(first) in err.value.message


def test_two_sensors_whose_nats_consumer_names_collide_are_an_error_naming_both(tmp_path: Path) -> None:
    dotted, underscored = sensor({}), sensor({})
    dotted["metadata"]["name"], underscored["metadata"]["name"] = "ci.build", "ci_build"
    first = write(tmp_path / "a.yaml", dotted)
    second = write(tmp_path / "b.yaml", underscored)
    with pytest.raises(ManifestError) as err:
        compile_sensors(load([first, second]), DryRunCluster(None))
    assert (err.value.file, err.value.document, err.value.name) == (str(second), 0, "ci_build")
    assert "sensor_default_ci_build" in err.value.message and "default/ci.build" in err.value.message
    assert str(first) in err.value.message


# --- what loads -----------------------------------------------------------------------------------


def test_a_folder_is_read_recursively_in_sorted_order_skipping_other_files(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    write(folder / "40-third.yml", webhook_es(name="third"))
    write(folder / "20-nested" / "30-second.yaml", webhook_es(name="second"))
    write(folder / "10-first.yaml", webhook_es(name="first"))
    (folder / "50-notes.txt").write_text("kind: not a manifest\n")
    # A mounted ConfigMap keeps hidden `..data` / `..<timestamp>` copies of every file.
    write(folder / "..data" / "10-first.yaml", webhook_es(name="first"))
    write(folder / ".hidden.yaml", {"kind": "Nonsense"})
    bundle = load([folder])
    assert [es.name for es in bundle.eventsources] == ["first", "second", "third"]
    assert bundle.origin(bundle.eventsources[1]) == (str(folder / "20-nested" / "30-second.yaml"), 0)


def test_a_file_named_explicitly_is_read_whatever_its_suffix(tmp_path: Path) -> None:
    file = write(tmp_path / "hooks.txt", webhook_es(name="named"))
    assert [es.name for es in load([file]).eventsources] == ["named"]


def test_empty_documents_are_skipped_but_keep_their_index(tmp_path: Path) -> None:
    file = tmp_path / "m.yaml"
    file.write_text("---\n# only a comment\n---\n" + yaml.safe_dump(webhook_es(name="x", port="bad")))
    err = load_error(file)
    assert err.document == 1


def test_every_kind_of_a_multi_document_file_lands_in_the_bundle(tmp_path: Path) -> None:
    file = write(tmp_path / "all.yaml",
                 {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ci"},
                  "stringData": {"token": "abc"}, "data": {"b64": "aGVsbG8="}},
                 webhook_es(name="hooks"),
                 {"apiVersion": "argoproj.io/v1alpha1", "kind": "EventBus", "metadata": {"name": "default"},
                  "spec": {"jetstream": {"version": "latest"}}})
    bundle = load([file])
    assert [es.name for es in bundle.eventsources] == ["hooks"]
    assert len(bundle.eventbuses) == 1
    secret = bundle.secret("ci", "s")
    assert secret is not None
    assert (secret.value("token"), secret.value("b64"), secret.value("nope")) == ("abc", "hello", None)
    assert bundle.secret("default", "s") is None


def test_argo_defaults_apply_when_fields_are_omitted() -> None:
    es = parse_document(webhook_es(), file="f.yaml", document=0)
    assert isinstance(es, EventSource)
    ctx = es.spec.webhook["example"]
    assert (ctx.method, ctx.port_number, ctx.maxPayloadSize, ctx.metadata) == ("POST", 12000, DEFAULT_MAX_PAYLOAD, {})
    assert es.namespace == "default"


def test_a_numeric_port_and_numeric_gitlab_projects_are_read_as_argo_reads_them() -> None:
    doc = eventsource({"gitlab": {"example": {"webhook": {"endpoint": "/gl", "port": 12000, "method": "post"},
                                              "projects": [3, "group/app"], "events": ["PushEvents"]}}})
    es = parse_document(doc, file="f.yaml", document=0)
    assert isinstance(es, EventSource)
    gl = es.spec.gitlab["example"]
    assert (gl.webhook.port, gl.webhook.method, gl.projects) == ("12000", "POST", ["3", "group/app"])


@pytest.mark.parametrize("name", ["webhook.yaml", "github.yaml", "gitlab.yaml"])
def test_argos_own_webhook_family_eventsource_examples_load_unchanged(name: str) -> None:
    bundle = load([ARGO_EXAMPLES / "event-sources" / name])
    assert len(bundle.eventsources) == 1


@pytest.mark.parametrize("file", [pytest.param(f, id=str(f.relative_to(ARGO_EXAMPLES))) for f in EXAMPLE_FILES])
def test_every_argo_example_loads_or_is_refused_with_a_manifest_error_naming_a_field(file: Path) -> None:
    try:
        bundle = load([file])
    except ManifestError as e:
        assert e.file == str(file)
        assert e.document is not None
        assert e.path, f"the error names no field: {e}"
        assert f"{format_path(e.path)}:" in str(e)
        assert "{" not in e.message, "an unformatted message template leaked into the error"
    else:
        assert bundle.eventsources or bundle.sensors or bundle.eventbuses
