"""deploy/docker-compose.yml brought up for real (see conftest.py for the engine).

The shipped compose file with the Debian-Prometheus override merged in, adapted in code to put
every service on the host network with the test's loopback ports. Checks: the `keys` service
makes the certificates, a CURVE client on the host round-trips through broker and worker,
Prometheus has scraped the broker (`up == 1` from its HTTP API), `down -v` leaves nothing.
"""

from __future__ import annotations

import json
import os
import stat
import time
import urllib.parse

import yaml

from conftest import REPO, REPORT, free_ports, http_get, wait_until, zguard


def test_compose_stack(engine, zguard_image, tmp_path):
    client_port, worker_port, metrics_port, prometheus_port = free_ports(4)
    keys = tmp_path / "keys"

    broker_config = (REPO / "deploy" / "zguard.yaml").read_text()
    for old, new in (("tcp://0.0.0.0:5555", f"tcp://127.0.0.1:{client_port}"),
                     ("tcp://0.0.0.0:5556", f"tcp://127.0.0.1:{worker_port}"),
                     ("listen: 0.0.0.0:9464", f"listen: 127.0.0.1:{metrics_port}")):
        assert broker_config.count(old) == 1, old
        broker_config = broker_config.replace(old, new)
    (tmp_path / "zguard.yaml").write_text(broker_config)

    scrape = (REPO / "deploy" / "compose" / "prometheus.yml").read_text()
    assert scrape.count('"zguard:9464"') == 1
    (tmp_path / "prometheus.yml").write_text(
        scrape.replace('"zguard:9464"', f'"127.0.0.1:{metrics_port}"'))

    # The shipped files, merged and adapted in code: host networking, so no published ports
    # (compose refuses both at once), the test's config and ports, builds on the host network.
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    debian = yaml.safe_load((REPO / "deploy" / "compose" / "debian-prometheus.yml").read_text())
    compose["services"]["prometheus"].update(debian["services"]["prometheus"])
    services = compose["services"]
    assert set(services) == {"keys", "zguard", "echo-worker", "prometheus"}, set(services)
    for name, service in services.items():
        service.pop("ports", None)
        service["network_mode"] = "none" if name == "keys" else "host"
        if "build" in service:
            service["build"]["network"] = "host"
    services["zguard"]["volumes"].append(f"{tmp_path / 'zguard.yaml'}:/etc/zguard/zguard.yaml:ro")
    services["zguard"]["healthcheck"].update({"interval": "1s", "start_period": "1s"})
    services["prometheus"]["command"].append(f"--web.listen-address=127.0.0.1:{prometheus_port}")
    volumes = services["prometheus"]["volumes"]
    assert volumes[0].startswith("./compose/prometheus.yml:/etc/prometheus/prometheus.yml")
    volumes[0] = f"{tmp_path / 'prometheus.yml'}:/etc/prometheus/prometheus.yml:ro"
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(compose))
    project = f"zguardtest{os.getpid()}"
    # Relative paths in the file still mean deploy/.
    files = ["-p", project, "--project-directory", str(REPO / "deploy"),
             "-f", str(tmp_path / "docker-compose.yml")]
    env = {"ZGUARD_KEYS_DIR": str(keys), "ZGUARD_TAG": zguard_image.split(":")[1],
           "ZGUARD_BROKER_HOST": "127.0.0.1", "ZGUARD_WORKER_PORT": str(worker_port)}

    try:
        started = time.monotonic()
        engine.compose(*files, "up", "-d", "--build", env=env)
        REPORT["compose_up_seconds"] = round(time.monotonic() - started, 1)

        # The keys service: the broker's folder holds only its own secret; 0600, UID 10001.
        broker_dir, issued = keys / "broker", keys / "issued"
        secrets = sorted(p.name for p in broker_dir.rglob("*_secret"))
        assert secrets == ["broker.key_secret"], secrets
        assert sorted(p.name for p in (broker_dir / "clients").iterdir()) == ["demo-client.key"]
        assert sorted(p.name for p in (broker_dir / "workers").iterdir()) == ["echo-worker.key"]
        assert sorted(p.name for p in (issued / "echo-worker").iterdir()) == [
            "broker.key", "echo-worker.key", "echo-worker.key_secret"]
        for secret in [broker_dir / "broker.key_secret",
                       issued / "demo-client" / "demo-client.key_secret",
                       issued / "echo-worker" / "echo-worker.key_secret"]:
            info = secret.stat()
            assert stat.S_IMODE(info.st_mode) == 0o600, secret
            assert info.st_uid == 10001, secret

        def round_trip():
            result = zguard("call", "--connect", f"tcp://127.0.0.1:{client_port}",
                            "--server-key", str(issued / "demo-client" / "broker.key"),
                            "--cert", str(issued / "demo-client" / "demo-client.key_secret"),
                            "-t", "2s", "echo", "through compose")
            return result if result.returncode == 0 else None

        reply = wait_until("a round trip through the compose stack", round_trip, 90)
        assert reply.stdout == "through compose\n"
        REPORT["compose_first_round_trip_seconds"] = round(time.monotonic() - started, 1)

        # The keys service again (as on every `up`): no key is replaced, and a public key taken
        # out of the broker's store (revoked) stays out.
        broker_secret = (broker_dir / "broker.key_secret").read_bytes()
        (broker_dir / "clients" / "demo-client.key").unlink()
        engine.compose(*files, "run", "--rm", "keys", env=env)
        assert (broker_dir / "broker.key_secret").read_bytes() == broker_secret
        assert list((broker_dir / "clients").iterdir()) == []

        query = urllib.parse.urlencode({"query": 'up{job="zguard"}'})

        def scraped():
            answer = json.loads(http_get(f"http://127.0.0.1:{prometheus_port}/api/v1/query?"
                                         + query))
            results = answer["data"]["result"]
            return results if results and results[0]["value"][1] == "1" else None

        results = wait_until("Prometheus scraping the broker (up == 1)", scraped, 90, 1.0)
        assert results[0]["metric"]["instance"] == f"127.0.0.1:{metrics_port}"
        REPORT["compose_scraped_seconds"] = round(time.monotonic() - started, 1)

        broker_id = engine.compose(*files, "ps", "-q", "zguard", env=env).stdout.strip()
        state = json.loads(engine.docker("inspect", broker_id).stdout)[0]
        assert state["State"]["Health"]["Status"] == "healthy"
        assert state["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert state["HostConfig"]["ReadonlyRootfs"] is True
        assert state["Config"]["User"] == "10001:10001"
    finally:
        down_started = time.monotonic()
        down = engine.compose(*files, "down", "-v", "--remove-orphans", env=env, check=False)
        REPORT["compose_down_seconds"] = round(time.monotonic() - down_started, 1)
    assert down.returncode == 0, down.stderr
    left = engine.docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                         "-q").stdout.strip()
    assert left == "", left
    volumes = engine.docker("volume", "ls", "-q", "--filter",
                            f"label=com.docker.compose.project={project}").stdout.strip()
    assert volumes == "", volumes
