"""The container image of deploy/Dockerfile, built and run for real (see conftest.py).

An ironhouse broker in one container, an echo worker in another, clients on the host: a known
client key gets a reply, an unknown one is refused and counted, /metrics answers, the broker
runs as UID 10001, and `docker stop` drains an in-flight request and exits 0 in time.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import zmq
import zmq.auth

import mdp
from conftest import (REPO, REPORT, free_ports, http_get, keygen, wait_until, zguard)

SHUTDOWN_GRACE = 5  # deploy/zguard.yaml


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def container_config(client_port: int, worker_port: int, metrics_port: int) -> str:
    """deploy/zguard.yaml with the test's loopback ports: the shipped file, not a copy."""
    text = (REPO / "deploy" / "zguard.yaml").read_text()
    for old, new in (("tcp://0.0.0.0:5555", f"tcp://127.0.0.1:{client_port}"),
                     ("tcp://0.0.0.0:5556", f"tcp://127.0.0.1:{worker_port}"),
                     ("listen: 0.0.0.0:9464", f"listen: 127.0.0.1:{metrics_port}")):
        assert text.count(old) == 1, f"deploy/zguard.yaml no longer has {old!r} once"
        text = text.replace(old, new)
    return text


def make_keys(root: Path) -> dict:
    """The broker's folder (secret key + stores) and the issued client/worker secrets."""
    keys, issued = root / "keys", root / "issued"
    keygen("broker", keys)
    for name in ("alice", "worker1", "mallory"):
        keygen(name, issued)
    (keys / "clients").mkdir()
    (keys / "workers").mkdir()
    shutil.copy(issued / "alice.key", keys / "clients" / "alice.key")
    shutil.copy(issued / "worker1.key", keys / "workers" / "worker1.key")
    shutil.copy(keys / "broker.key", issued / "broker.key")
    # The image runs as 10001: hand the mounted files to it, modes unchanged (0600 secrets).
    for folder in (keys, issued):
        for path in [folder, *folder.rglob("*")]:
            shutil.chown(path, 10001, 10001)
    return {"keys": keys, "issued": issued}


def test_image_metadata_and_no_keys_inside(engine, zguard_image):
    config = json.loads(engine.docker("image", "inspect", zguard_image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["zguard"]
    assert config["Cmd"] == ["serve", "-c", "/etc/zguard/zguard.yaml"]
    assert set(config["ExposedPorts"]) == {"5555/tcp", "5556/tcp", "9464/tcp"}
    assert config["Healthcheck"]["Test"] == ["CMD", "zguard", "health", "-c",
                                             "/etc/zguard/zguard.yaml"]
    assert config["StopSignal"] == "SIGTERM"
    # No key material anywhere in the image, and an empty key folder for the mount.
    found = engine.docker("run", "--rm", "--network", "none", "--user", "0",
                          "--entrypoint", "find", zguard_image, "/", "-xdev",
                          "(", "-name", "*.key_secret", "-o", "-name", "*.key", ")")
    assert found.stdout.strip() == "", found.stdout
    listing = engine.docker("run", "--rm", "--network", "none", "--entrypoint", "ls",
                            zguard_image, "-A", "/etc/zguard/keys")
    assert listing.stdout.strip() == ""
    version = engine.docker("run", "--rm", "--network", "none", zguard_image, "--version")
    assert version.stdout.startswith("zguard ")


def test_default_config_checks_with_mounted_keys(engine, zguard_image, tmp_path):
    keys = make_keys(tmp_path)["keys"]
    result = engine.docker("run", "--rm", "--network", "none",
                           "-v", f"{keys}:/etc/zguard/keys:ro", zguard_image, "check",
                           check=False)
    assert result.returncode == 0, result.stderr
    assert "/etc/zguard/zguard.yaml: OK (2 endpoints" in result.stdout
    # Without keys it refuses to start and says which file is missing.
    bare = engine.docker("run", "--rm", "--network", "none", zguard_image, check=False)
    assert bare.returncode != 0
    assert "keys.broker: no such file: /etc/zguard/keys/broker.key_secret" in bare.stderr


def test_ironhouse_broker_in_a_container(engine, zguard_image, container_names, tmp_path):
    client_port, worker_port, metrics_port = free_ports(3)
    files = make_keys(tmp_path)
    keys, issued = files["keys"], files["issued"]
    config = tmp_path / "zguard.yaml"
    config.write_text(container_config(client_port, worker_port, metrics_port))
    broker = container_names("broker")
    started = time.monotonic()
    engine.docker("run", "-d", "--name", broker, "--network", "host",
                  "-v", f"{config}:/etc/zguard/zguard.yaml:ro",
                  "-v", f"{keys}:/etc/zguard/keys:ro", zguard_image)
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    wait_until("/healthz answers", lambda: http_get(metrics_url + "/healthz") is not None, 20)
    REPORT["container_healthz_seconds"] = round(time.monotonic() - started, 2)
    # Docker's own HEALTHCHECK (zguard health inside the container) reports healthy.
    wait_until("docker reports healthy", lambda: engine.docker(
        "inspect", "-f", "{{.State.Health.Status}}", broker).stdout.strip() == "healthy", 40)
    REPORT["container_healthy_seconds"] = round(time.monotonic() - started, 2)

    assert engine.docker("exec", broker, "id", "-u").stdout.strip() == "10001"
    assert engine.docker("exec", broker, "id", "-g").stdout.strip() == "10001"

    # The echo worker in a second container of the same image.
    worker = container_names("worker")
    engine.docker("run", "-d", "--name", worker, "--network", "host",
                  "-v", f"{issued}:/etc/zguard/issued:ro", zguard_image, "echo-worker",
                  "--connect", f"tcp://127.0.0.1:{worker_port}", "--service", "echo",
                  "--server-key", "/etc/zguard/issued/broker.key",
                  "--cert", "/etc/zguard/issued/worker1.key_secret")

    client_endpoint = f"tcp://127.0.0.1:{client_port}"
    server_key = str(issued / "broker.key")

    def alice_call():
        result = zguard("call", "--connect", client_endpoint, "--server-key", server_key,
                        "--cert", str(issued / "alice.key_secret"), "-t", "2s", "echo", "hello")
        return result if result.returncode == 0 else None

    reply = wait_until("alice's call through the container", alice_call, 30)
    REPORT["first_round_trip_seconds"] = round(time.monotonic() - started, 2)
    assert reply.stdout == "hello\n"

    # mallory's key is not in the store: no reply, the handshake is refused.
    refused = zguard("call", "--connect", client_endpoint, "--server-key", server_key,
                     "--cert", str(issued / "mallory.key_secret"), "-t", "1500ms", "echo", "hi")
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert refused.stdout == ""

    def denial_counted():
        text = http_get(metrics_url + "/metrics")
        return text if metric_sum(text, "zguard_auth_decisions_total", endpoint="public",
                                  decision="denied") >= 1 else None

    text = wait_until("the denial in /metrics", denial_counted, 10)
    assert metric_sum(text, "zguard_auth_decisions_total", endpoint="public",
                      decision="allowed") >= 1
    assert metric_sum(text, "zguard_requests_total", service="echo", outcome="ok") >= 1
    assert "zguard_build_info{" in text

    # docker stop while a request is in flight: the reply still arrives, exit code 0.
    # A context per identity: pyzmq applies a context's CURVE options to every socket it makes,
    # reconnects included. Sends time out instead of blocking a test forever.
    broker_public, _ = zmq.auth.load_certificate(str(issued / "broker.key"))
    contexts = []
    for name in ("worker1", "alice"):
        public, secret = zmq.auth.load_certificate(str(issued / f"{name}.key_secret"))
        context = zmq.Context()
        for option, value in ((zmq.CURVE_SERVERKEY, broker_public), (zmq.CURVE_PUBLICKEY, public),
                              (zmq.CURVE_SECRETKEY, secret), (zmq.SNDTIMEO, 5000)):
            context.setsockopt(option, value)
        contexts.append(context)
    worker_context, client_context = contexts
    try:
        # The broker heartbeats every 2.5 s (deploy/zguard.yaml): match it, or the worker
        # would take the broker for dead between heartbeats.
        slow = mdp.Worker(worker_context, f"tcp://127.0.0.1:{worker_port}", "slow",
                          heartbeat=2.5)
        client = mdp.Client(client_context, client_endpoint)

        def registered():
            slow.pump(0.05)
            return client.request("mmi.service", ["slow"], timeout=2).body == [b"200"]

        wait_until("the slow worker registers", registered, 15, 0.05)
        client.send("slow", [b"in flight"])
        request = slow.recv(timeout=10)
        stop_result = {}

        def stop():
            begun = time.monotonic()
            stop_result["result"] = engine.docker("stop", "-t", "20", broker, check=False)
            stop_result["seconds"] = time.monotonic() - begun

        stopper = threading.Thread(target=stop)
        stopper.start()
        slow.pump(1.0)  # the broker has the SIGTERM and is draining meanwhile
        slow.reply(request.address, [b"drained"])
        reply = client.recv(timeout=10)
        stopper.join(30)
        assert reply.body == [b"drained"], reply
        slow.kill()
        client.close()
    finally:
        for context in contexts:
            context.destroy(linger=0)
    assert stop_result["result"].returncode == 0, stop_result["result"].stderr
    assert stop_result["seconds"] < SHUTDOWN_GRACE + 3, stop_result
    REPORT["docker_stop_seconds"] = round(stop_result["seconds"], 2)
    state = json.loads(engine.docker("inspect", broker).stdout)[0]["State"]
    assert state["Running"] is False
    assert state["ExitCode"] == 0, engine.docker("logs", broker).stderr[-3000:]
    logs = engine.docker("logs", broker)
    assert "draining in-flight requests" in logs.stdout + logs.stderr
