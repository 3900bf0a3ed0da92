"""deploy/k8s: the kustomize base rendered and checked in code.

Rendered with `kubectl kustomize` when kubectl is installed (.ci/deps installs Debian's
kubernetes-client where none is present); otherwise the kustomization's resources are read
directly, so every check still runs. The broker config in the ConfigMap is then run for real
(paths and ports moved to a temp folder and loopback) to prove the probes' paths answer.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, free_ports, http_get, keygen, wait_until, zguard

K8S = REPO / "deploy" / "k8s"
BROKER_LABELS = {"app.kubernetes.io/name": "zguard", "app.kubernetes.io/component": "broker"}


def render() -> list:
    kubectl = shutil.which("kubectl")
    if kubectl:
        result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        text = result.stdout
    else:
        kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
        text = "\n---\n".join((K8S / name).read_text() for name in kustomization["resources"])
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="module")
def objects() -> dict:
    found = {}
    for doc in render():
        found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def broker_pod(objects) -> dict:
    return objects[("Deployment", "zguard")]["spec"]["template"]


def broker_config(objects) -> dict:
    return yaml.safe_load(objects[("ConfigMap", "zguard-config")]["data"]["zguard.yaml"])


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_every_config_port_is_exposed(objects):
    config = broker_config(objects)
    container = broker_pod(objects)["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    binds = {e["role"]: port_of(e["bind"]) for e in config["endpoints"]}
    assert ports["clients"] == binds["clients"]
    assert ports["workers"] == binds["workers"]
    assert ports["metrics"] == port_of(config["metrics"]["listen"])
    assert sorted(ports.values()) == sorted([*binds.values(), ports["metrics"]])
    # Clients through the Service, workers through the headless one (every pod).
    clients = objects[("Service", "zguard")]["spec"]
    headless = objects[("Service", "zguard-brokers")]["spec"]
    assert clients["selector"] == BROKER_LABELS and headless["selector"] == BROKER_LABELS
    assert broker_pod(objects)["metadata"]["labels"] == BROKER_LABELS
    assert [p["targetPort"] for p in clients["ports"]] == ["clients"]
    workers = objects[("Service", "zguard-workers")]["spec"]
    assert workers["selector"] == BROKER_LABELS
    assert [p["targetPort"] for p in workers["ports"]] == ["workers"]
    assert headless["clusterIP"] == "None"
    assert "workers" in [p["targetPort"] for p in headless["ports"]]
    # Prometheus: the annotations and the PodMonitor name the metrics port.
    annotations = broker_pod(objects)["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] == "/metrics"
    monitor = objects[("PodMonitor", "zguard")]["spec"]
    assert monitor["selector"]["matchLabels"] == BROKER_LABELS
    assert monitor["podMetricsEndpoints"][0]["port"] == "metrics"


def test_deployment_hardening(objects):
    deployment = objects[("Deployment", "zguard")]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    for spec in (pod, objects[("Deployment", "zguard-echo-worker")]["spec"]["template"]["spec"]):
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
    # Draining fits the grace period: preStop, then the broker's shutdown_grace.
    container = pod["containers"][0]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = broker_config(objects)["broker"]["shutdown_grace"]
    assert grace.endswith("s") and not grace.endswith("ms")
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + int(grace[:-1])


def test_secrets_mounted_read_only_and_never_in_the_configmap(objects):
    pod = broker_pod(objects)["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    secret_volumes = [v for v in pod["volumes"] if "secret" in v]
    assert {v["secret"]["secretName"] for v in secret_volumes} == {
        "zguard-broker-key", "zguard-clients", "zguard-workers"}
    for volume in secret_volumes:
        assert volume["secret"]["defaultMode"] == 0o400, volume
        assert mounts[volume["name"]]["readOnly"] is True, volume
    # Every path the config reads is on a mount; key material only on Secret mounts.
    config = broker_config(objects)
    secret_paths = [mounts[v["name"]]["mountPath"] for v in secret_volumes]
    assert any(config["keys"]["broker"].startswith(p + "/") for p in secret_paths)
    for endpoint in config["endpoints"]:
        assert endpoint["certificates"] in secret_paths, endpoint
    worker_pod = objects[("Deployment", "zguard-echo-worker")]["spec"]["template"]["spec"]
    for volume in worker_pod["volumes"]:
        assert volume["secret"]["defaultMode"] == 0o400
    # No Secret objects with data in the base (they are created out of band), and nothing
    # that looks like a key in any ConfigMap.
    assert not [name for kind, name in objects if kind == "Secret"]
    z85_key = re.compile(r"(?<![\w.+/=-])[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}(?![\w])")
    for (kind, name), doc in objects.items():
        if kind != "ConfigMap":
            continue
        for key, value in doc["data"].items():
            assert "secret-key" not in value and "public-key" not in value, (name, key)
            assert not z85_key.search(value), (name, key)


def test_worker_example_uses_real_flags(objects):
    container = objects[("Deployment", "zguard-echo-worker")]["spec"]["template"]["spec"][
        "containers"][0]
    args = container["args"]
    assert args[0] == "echo-worker"
    connect = args[args.index("--connect") + 1]
    assert connect == "tcp://zguard-brokers:" + str(port_of(connect))
    assert "--each-address" in args
    help_text = zguard("echo-worker", "--help").stdout
    for flag in (a for a in args if a.startswith("--")):
        assert flag in help_text, flag


def test_configmap_config_runs_and_probe_paths_answer(objects, tmp_path):
    """The ConfigMap's zguard.yaml, moved to loopback and a temp folder, passes `zguard check`,
    serves, and answers 200 on the liveness and readiness paths."""
    text = objects[("ConfigMap", "zguard-config")]["data"]["zguard.yaml"]
    client_port, worker_port, metrics_port = free_ports(3)
    config = broker_config(objects)
    replacements = {
        config["endpoints"][0]["bind"]: f"tcp://127.0.0.1:{client_port}",
        config["endpoints"][1]["bind"]: f"tcp://127.0.0.1:{worker_port}",
        config["metrics"]["listen"]: f"127.0.0.1:{metrics_port}",
        "/etc/zguard/": f"{tmp_path}/",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    keygen("broker", tmp_path / "keys")
    (tmp_path / "clients").mkdir()
    (tmp_path / "workers").mkdir()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "revoked.txt").write_text(
        objects[("ConfigMap", "zguard-config")]["data"]["revoked.txt"])
    path = tmp_path / "config" / "zguard.yaml"
    path.write_text(text)
    checked = zguard("check", "-c", str(path))
    assert checked.returncode == 0, checked.stderr
    container = broker_pod(objects)["spec"]["containers"][0]
    probes = [container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]]
    assert [p["port"] for p in probes] == ["metrics", "metrics"]
    from conftest import ZGUARD_BIN
    proc = subprocess.Popen([ZGUARD_BIN, "serve", "-c", str(path)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for probe in probes:
            url = f"http://127.0.0.1:{metrics_port}{probe['path']}"
            wait_until(f"{url} answers", lambda: http_get(url) is not None, 10)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err


def test_prestop_command_exists_in_the_image(engine, zguard_image, objects):
    pre_stop = broker_pod(objects)["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]
    result = engine.docker("run", "--rm", "--network", "none", "--entrypoint",
                           pre_stop["command"][0], zguard_image, "0.1", check=False)
    assert result.returncode == 0, result.stderr
