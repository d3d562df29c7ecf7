"""`hookgate test`: the real command, in-process (and once as a process), on real payloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hookgate.cli import main
from tests.conftest import EXAMPLES, FIXTURES, ROOT, SEED

DATA = Path(__file__).resolve().parent / "data" / "explain"
PAIR = DATA / "pair.yaml"
OTHER = DATA / "other.yaml"
LABELED = DATA / "labeled.cloudevent.json"
LOOSE = DATA / "loose.bare.json"
ZEROS = "0" * 40


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not here (the shared examples and fixtures sit beside the repository)")
    return path


def payload(provider: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(shared(FIXTURES / provider / name).read_text())
    return doc


def write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def hookgate_test(capfd: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    # capfd rather than capsys: `main` registers faulthandler on sys.stderr, which needs a real descriptor.
    code = main(["test", *(str(a) for a in argv)])
    out, err = capfd.readouterr()
    return code, out, err


def as_json(capfd: pytest.CaptureFixture[str], *argv: str | Path) -> dict[str, Any]:
    code, out, err = hookgate_test(capfd, *argv, "--json")
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def trigger(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in report["triggers"] if t["name"] == name)
    return found


def parameters(resource: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: p.get("value") for p in resource["spec"]["arguments"]["parameters"]}


def gitlab_raw(path: Path, hook: str) -> tuple[str, ...]:
    return ("--event", str(path), "--provider", "gitlab", "--header", f"X-Gitlab-Event:{hook}")


# --- the seed sensors and real GitLab payloads ----------------------------------------------------


def test_open_merge_request_fires_with_branch_and_iid(capfd: pytest.CaptureFixture[str]) -> None:
    event = shared(FIXTURES / "gitlab" / "merge_request.open.json")
    report = as_json(capfd, "-f", shared(SEED), "--dependency", "pr", *gitlab_raw(event, "Merge Request Hook"))
    assert list(report["dependencies"]) == ["pr"]
    pr = report["dependencies"]["pr"]
    assert pr["matched"] is True and pr["error"] is None
    assert pr["filters"][0]["passed"] is True
    assert 'found "opened"' in pr["filters"][0]["reason"]
    fired = trigger(report, "argo-workflow-trigger")
    assert fired["fired"] is True
    assert parameters(fired["resource"]) == {"branch": "ms-viewport", "pr": "1"}
    assert fired["resource"]["metadata"]["name"].startswith("default-")
    assert fired["resource"]["spec"]["workflowTemplateRef"] == {"name": "default"}


def test_open_merge_request_human_report(capfd: pytest.CaptureFixture[str]) -> None:
    event = shared(FIXTURES / "gitlab" / "merge_request.open.json")
    code, out, _ = hookgate_test(capfd, "-f", shared(SEED), "--dependency", "pr",
                                 *gitlab_raw(event, "Merge Request Hook"))
    assert code == 0
    assert "sensor default, dependency pr: MATCHED" in out
    assert '  ✓ data body.object_attributes.state matches "opened"' in out
    assert "trigger argo-workflow-trigger: FIRES" in out
    assert "(workflowTemplateRef default; branch=ms-viewport, pr=1)" in out
    assert "      name: default-" in out  # the YAML of the resource, name already chosen


def test_closed_merge_request_does_not_match(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = payload("gitlab", "merge_request.open.json")
    body["object_attributes"]["state"] = "closed"
    bare = write(tmp_path, "closed.json", {"headers": {"X-Gitlab-Event": ["Merge Request Hook"]}, "body": body})
    report = as_json(capfd, "-f", shared(SEED), "--dependency", "pr", "--event", bare)
    pr = report["dependencies"]["pr"]
    assert pr["matched"] is False and pr["error"] is None
    assert pr["filters"][0]["passed"] is False
    assert 'found "closed"' in pr["filters"][0]["reason"]
    assert trigger(report, "argo-workflow-trigger") == {
        "name": "argo-workflow-trigger", "fired": False, "reason": "pr did not match (condition pr)",
        "resource": None}


def test_release_sensor_fires_on_a_new_release_branch(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = {**payload("gitlab", "push.json"), "before": ZEROS, "ref": "refs/heads/release-1.2"}
    raw = write(tmp_path, "push.json", body)
    report = as_json(capfd, "-f", shared(SEED), "--dependency", "push", *gitlab_raw(raw, "Push Hook"))
    push = report["dependencies"]["push"]
    assert push["matched"] is True
    assert [(f["kind"], f["passed"]) for f in push["filters"]] == [
        ("expr", True), ("expr", False), ("data", True), ("data", True)]
    assert "not evaluated" in push["filters"][1]["reason"]  # exprLogicalOperator or: the first one passed
    fired = trigger(report, "trigger")
    assert fired["fired"] is True
    assert parameters(fired["resource"]) == {"branch": "refs/heads/release-1.2"}


def test_release_sensor_explains_each_group_on_a_master_push(capfd: pytest.CaptureFixture[str]) -> None:
    event = shared(FIXTURES / "gitlab" / "push.json")
    report = as_json(capfd, "-f", shared(SEED), "--dependency", "push", *gitlab_raw(event, "Push Hook"))
    push = report["dependencies"]["push"]
    assert push["matched"] is False
    assert [(f["kind"], f["passed"]) for f in push["filters"]] == [
        ("expr", False), ("expr", True), ("data", True), ("data", False)]
    assert 'ref="refs/heads/master"' in push["filters"][1]["reason"]
    assert 'found "95790bf891e76fee5e1747ab589903a6a1f80f22"' in push["filters"][3]["reason"]
    assert trigger(report, "trigger")["fired"] is False


def test_bare_event_in_the_wrong_shape_gets_a_note(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bare = write(tmp_path, "mr.json", {"header": {}, "body": payload("gitlab", "merge_request.open.json")})
    code, out, err = hookgate_test(capfd, "-f", shared(SEED), "--dependency", "pr", "--event", bare, "--json")
    assert code == 0
    assert 'note: EventSource default is of type gitlab, whose events carry "headers"' in err
    assert json.loads(out)["dependencies"]["pr"]["matched"] is True


# --- GitHub raw payloads --------------------------------------------------------------------------


def test_github_raw_push_is_shaped_as_the_gateway_does(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = {**payload("github", "push.1.json"), "ref": "refs/heads/main"}
    raw = write(tmp_path, "push.json", body)
    report = as_json(capfd, "-f", EXAMPLES / "github", "--dependency", "push", "--event", raw,
                     "--provider", "github", "--header", "X-GitHub-Event:push")
    assert list(report["dependencies"]) == ["push"]
    header, ref = report["dependencies"]["push"]["filters"]
    assert header["passed"] and "unanchored regex: 'push' matches inside '[\"push\"]'" in header["reason"]
    assert ref["passed"] and 'found "refs/heads/main"' in ref["reason"]
    fired = trigger(report, "push-ci")
    assert fired["fired"] is True
    assert parameters(fired["resource"]) == {"repo": "Codertocat/Hello-World", "revision": body["after"]}


def test_github_event_the_source_does_not_subscribe_gets_a_note(capfd: pytest.CaptureFixture[str]) -> None:
    event = shared(FIXTURES / "github" / "ping.1.json")
    code, out, err = hookgate_test(capfd, "-f", EXAMPLES / "github", "--dependency", "push", "--event", event,
                                   "--provider", "github", "--header", "X-GitHub-Event:ping", "--json")
    assert code == 0
    assert "the gateway would not publish this event" in err
    assert json.loads(out)["dependencies"]["push"]["matched"] is False


def test_github_raw_payload_without_its_event_header(capfd: pytest.CaptureFixture[str]) -> None:
    event = shared(FIXTURES / "github" / "push.1.json")
    code, out, err = hookgate_test(capfd, "-f", EXAMPLES / "github", "--dependency", "push", "--event", event,
                                   "--provider", "github")
    assert (code, out) == (1, "")
    assert str(event) in err and "X-GitHub-Event" in err


# --- CloudEvents, conditions, paths and regexes ---------------------------------------------------


def test_cloud_event_is_routed_by_source_and_subject(capfd: pytest.CaptureFixture[str]) -> None:
    report = as_json(capfd, "-f", PAIR, "--event", LABELED)
    assert list(report["dependencies"]) == ["a", "deep"]  # hooks/a; not b (hooks/b) nor loose (hooks/c)
    assert [t["name"] for t in report["triggers"]] == ["both", "deep-one"]


def test_cloud_event_no_dependency_listens_to(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    event = write(tmp_path, "ce.json", {**json.loads(LABELED.read_text()), "subject": "zzz"})
    code, out, err = hookgate_test(capfd, "-f", PAIR, "--event", event)
    assert (code, out) == (1, "")
    assert "no dependency listens to source 'hooks', subject 'zzz'" in err
    assert "loose (sensor pair; eventSourceName hooks, eventName c)" in err


def test_missing_path_names_the_missing_segment(capfd: pytest.CaptureFixture[str]) -> None:
    deep = as_json(capfd, "-f", PAIR, "--event", LABELED)["dependencies"]["deep"]
    assert deep["matched"] is False
    assert deep["error"] == "data filter error (path 'body.pull_request.head.sha' does not exist)"
    assert "segment `pull_request` missing under `body`" in deep["filters"][0]["reason"]


def test_unanchored_regex_is_explained(capfd: pytest.CaptureFixture[str]) -> None:
    a = as_json(capfd, "-f", PAIR, "--event", LABELED)["dependencies"]["a"]
    assert a["matched"] is True
    assert a["filters"][0]["reason"] == "found \"unlabeled\"; unanchored regex: 'labeled' matches inside 'unlabeled'"


def test_condition_waits_for_the_other_dependency(capfd: pytest.CaptureFixture[str]) -> None:
    both = trigger(as_json(capfd, "-f", PAIR, "--event", LABELED), "both")
    assert both == {"name": "both", "fired": False, "reason": "a matched; waits for b (condition a && b)",
                    "resource": None}


def test_condition_human_report(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = hookgate_test(capfd, "-f", PAIR, "--event", LABELED)
    assert code == 0
    assert "trigger both: DOES NOT FIRE\n  a matched; waits for b (condition a && b)" in out
    assert "sensor pair, dependency deep: NOT MATCHED" in out
    assert "  error: data filter error (path 'body.pull_request.head.sha' does not exist)" in out
    assert out.rstrip().endswith("1 of 2 dependencies matched; 0 of 2 triggers fire")


def test_parameter_that_does_not_resolve(capfd: pytest.CaptureFixture[str]) -> None:
    report = as_json(capfd, "-f", PAIR, "--dependency", "loose", "--event", LOOSE)
    assert report["dependencies"]["loose"] == {"matched": True, "error": None, "filters": []}
    broken = trigger(report, "broken")
    assert broken["fired"] is False and broken["resource"] is None
    assert "unable to resolve 'loose' parameter value" in broken["reason"]
    assert "'body.head.sha'" in broken["reason"]


# --- choosing the dependency ----------------------------------------------------------------------


def test_no_dependency_given_when_several_exist(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = hookgate_test(capfd, "-f", PAIR, "--event", LOOSE)
    assert (code, out) == (1, "")
    assert "--dependency NAME" in err
    for name in ("a", "b", "deep", "loose"):
        assert f"\n  {name} (sensor pair; " in err


def test_one_dependency_in_all_needs_no_flag(capfd: pytest.CaptureFixture[str]) -> None:
    report = as_json(capfd, "-f", OTHER, "--event", LOOSE)
    assert report["dependencies"] == {"a": {"matched": True, "error": None, "filters": []}}
    assert trigger(report, "both")["resource"]["metadata"]["name"] == "other-fixed"  # explicit name kept


def test_unknown_dependency_name(capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = hookgate_test(capfd, "-f", PAIR, "--dependency", "nope", "--event", LOOSE)
    assert code == 1
    assert "no dependency named 'nope'" in err


def test_colliding_names_are_keyed_by_sensor(capfd: pytest.CaptureFixture[str]) -> None:
    report = as_json(capfd, "-f", DATA, "--event", LABELED)
    assert sorted(report["dependencies"]) == ["deep", "other/a", "pair/a"]
    assert sorted(t["name"] for t in report["triggers"]) == ["deep-one", "other/both", "pair/both"]
    assert trigger(report, "other/both")["fired"] is True


def test_colliding_name_must_be_qualified(capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = hookgate_test(capfd, "-f", DATA, "--dependency", "a", "--event", LOOSE)
    assert code == 1
    assert "use one of: other/a, pair/a" in err
    report = as_json(capfd, "-f", DATA, "--dependency", "pair/a", "--event", LOOSE)
    assert list(report["dependencies"]) == ["pair/a"]


# --- the --json contract --------------------------------------------------------------------------


def test_json_shape_key_by_key(capfd: pytest.CaptureFixture[str]) -> None:
    report = as_json(capfd, "-f", DATA, "--event", LABELED)
    assert set(report) == {"dependencies", "triggers"}
    assert isinstance(report["dependencies"], dict) and report["dependencies"]
    for entry in report["dependencies"].values():
        assert set(entry) == {"matched", "error", "filters"}
        assert isinstance(entry["matched"], bool)
        assert entry["error"] is None or isinstance(entry["error"], str)
        for f in entry["filters"]:
            assert set(f) == {"kind", "spec", "passed", "reason"}
            assert f["kind"] in ("data", "expr", "context", "time")
            assert isinstance(f["spec"], str) and isinstance(f["reason"], str) and isinstance(f["passed"], bool)
    assert isinstance(report["triggers"], list) and report["triggers"]
    for t in report["triggers"]:
        assert set(t) == {"name", "fired", "reason", "resource"}
        assert isinstance(t["name"], str) and isinstance(t["reason"], str) and isinstance(t["fired"], bool)
        assert isinstance(t["resource"], dict) if t["fired"] else t["resource"] is None


# --- invalid input --------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    pytest.param("{nope", "not valid JSON", id="not-json"),
    pytest.param("[1, 2]", "neither a CloudEvent", id="not-an-event"),
    pytest.param('{"specversion": "1.0", "source": "hooks"}', "not a valid CloudEvent: CloudEvent attribute(s) "
                 "missing or not strings: id, type", id="bad-cloudevent"),
])
def test_invalid_event_file(capfd: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str) -> None:
    event = tmp_path / "event.json"
    event.write_text(content)
    code, out, err = hookgate_test(capfd, "-f", PAIR, "--dependency", "a", "--event", event)
    assert (code, out) == (1, "")
    assert f"{event}: {message}" in err


def test_missing_event_file(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = hookgate_test(capfd, "-f", PAIR, "--event", tmp_path / "absent.json")
    assert code == 1
    assert f"{tmp_path / 'absent.json'}: no such file" in err


def test_invalid_manifest(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sensor = tmp_path / "sensor.yaml"
    sensor.write_text(PAIR.read_text().replace("conditions: a && b", "conditions: a && zzz"))
    code, _, err = hookgate_test(capfd, "-f", sensor, "--event", LABELED)
    assert code == 1
    assert str(sensor) in err and "'zzz'" in err


@pytest.mark.parametrize("argv", [
    pytest.param(("--header", "X-GitHub-Event:push"), id="header-without-provider"),
    pytest.param(("--provider", "github", "--header", "no-colon"), id="header-without-colon"),
])
def test_usage_errors(capfd: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    code, out, err = hookgate_test(capfd, "-f", PAIR, "--event", LOOSE, *argv)
    assert (code, out) == (2, "")
    assert "--header" in err


# --- as a process ---------------------------------------------------------------------------------


def test_as_a_process() -> None:
    command = [sys.executable, "-m", "hookgate", "test", "-f", str(PAIR), "--event", str(LABELED), "--json"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dependencies"]["a"]["matched"] is True
    assert trigger(report, "both")["reason"] == "a matched; waits for b (condition a && b)"
    failed = subprocess.run([*command[:-1], "--dependency", "zzz"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=False)
    assert failed.returncode == 1 and failed.stdout == ""
    assert "no dependency named 'zzz' listens to source 'hooks'" in failed.stderr
