"""Faults under load: workers killed with SIGKILL, the broker killed and restarted, security
files reloaded while clients run. Every request must end in its reply or an explicit error
reply, within the time the broker promises; none may vanish.

The worker-death run lasts ZGUARD_SOAK_SECONDS (default 30; e.g. 300 for a soak). Figures go
to $ZGUARD_FAULT_REPORT (JSON) when it is set, and are printed.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List

import zmq
import zmq.auth
import zmq.utils.monitor

import mdp
from conftest import ZGUARD_BIN, ConfigBroker, unique_ports
from test_security import keygen, render_config

HERE = Path(__file__).resolve().parent
SOAK_SECONDS = float(os.environ.get("ZGUARD_SOAK_SECONDS", "30"))
HEARTBEAT = 0.2      # broker.heartbeat_interval (s)
LIVENESS = 3         # broker.heartbeat_liveness
REQUEST_TIMEOUT = 2.0
# A request is answered (reply or error) by its deadline; the client allows for the expiry of
# a dead worker's heartbeats and scheduling on top.
CLIENT_WAIT = REQUEST_TIMEOUT + HEARTBEAT * LIVENESS + 2.0


def report(name: str, figures: Dict) -> None:
    print(f"{name}: {json.dumps(figures)}")
    path = os.environ.get("ZGUARD_FAULT_REPORT")
    if path:
        existing = json.loads(Path(path).read_text()) if Path(path).exists() else {}
        existing[name] = figures
        Path(path).write_text(json.dumps(existing, indent=2) + "\n")


def set_broker(text: str, **settings) -> str:
    """Replaces `  key: value` lines of the config's broker section."""
    for key, value in settings.items():
        new, count = re.subn(rf"^  {key}: .*$", f"  {key}: {value}", text, flags=re.M)
        assert count == 1, key
        text = new
    return text


def grasslands_pair(ports: Dict[str, int]) -> List[Dict]:
    """A grasslands clients endpoint `public` and workers endpoint `workers` on `ports`."""
    return [{"name": name, "bind": f"tcp://127.0.0.1:{ports[name]}", "role": role,
             "profile": "grasslands"} for name, role in (("public", "clients"),
                                                         ("workers", "workers"))]


class LoadClient(threading.Thread):
    """Sends numbered requests one at a time and records how each one ended."""

    def __init__(self, context: zmq.Context, endpoint: str, service: str, name: str,
                 stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.client = mdp.Client(context, endpoint, mode="dealer")
        self.service = service
        self.prefix = name
        self.stop_event = stop
        self.outcomes: Dict[str, str] = {}  # id -> "ok" | "error <code>" | "lost"
        self.error: BaseException = None

    def run(self) -> None:
        seq = 0
        try:
            while not self.stop_event.is_set():
                request_id = f"{self.prefix}-{seq}"
                seq += 1
                self.client.send(self.service, [request_id.encode()])
                try:
                    reply = self.client.recv(timeout=CLIENT_WAIT)
                except mdp.MdpTimeout:
                    self.outcomes[request_id] = "lost"
                    continue
                if reply.is_error:
                    self.outcomes[request_id] = f"error {reply.code}"
                elif reply.body == [request_id.encode()]:
                    self.outcomes[request_id] = "ok"
                else:
                    self.outcomes[request_id] = f"wrong reply {reply.body!r}"
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.client.close()


def start_fault_worker(endpoint: str, service: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(["/usr/bin/python3", str(HERE / "fault_worker.py"), endpoint, service,
                             "0.02", str(log)], stdin=subprocess.DEVNULL)


def test_workers_killed_under_load(tmp_path, zguard_bin, context):
    """4 workers (2 per service), 8 clients; a worker is killed with SIGKILL every ~1.5 s and
    replaced. `once` has redispatch off (at most once), `again` has it on (at least once)."""
    ports = unique_ports(["public", "workers"])
    config = tmp_path / "faults.yaml"
    config.write_text(
        set_broker(render_config(grasslands_pair(ports)),
                   heartbeat_interval=f"{int(HEARTBEAT * 1000)}ms", heartbeat_liveness=LIVENESS,
                   request_timeout=f"{int(REQUEST_TIMEOUT * 1000)}ms")
        + "services:\n  once: { redispatch: false }\n  again: { redispatch: true }\n")
    broker = ConfigBroker(config, ports, tmp_path / "broker.log")
    logs: Dict[str, List[Path]] = {"once": [], "again": []}
    slots: List[list] = []  # [service, generation, process]
    clients: List[LoadClient] = []
    try:
        broker.wait_ready()
        worker_endpoint = f"tcp://127.0.0.1:{ports['workers']}"
        for index in range(4):
            service = "once" if index % 2 == 0 else "again"
            log = tmp_path / f"worker-{index}-0.log"
            logs[service].append(log)
            slots.append([service, 0, start_fault_worker(worker_endpoint, service, log)])
        for service in ("once", "again"):
            mdp.wait_for_service(context, broker.client_endpoint, service, timeout=10)

        stop = threading.Event()
        clients = [LoadClient(context, broker.client_endpoint, "once" if i < 4 else "again",
                              f"c{i}", stop) for i in range(8)]
        for client in clients:
            client.start()
        rng = random.Random(7)
        kills = 0
        deadline = time.monotonic() + SOAK_SECONDS
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(1.0, 2.0))
            slot = rng.choice(slots)
            slot[2].send_signal(signal.SIGKILL)
            slot[2].wait(5)
            kills += 1
            slot[1] += 1
            log = tmp_path / f"worker-{slots.index(slot)}-{slot[1]}.log"
            logs[slot[0]].append(log)
            slot[2] = start_fault_worker(worker_endpoint, slot[0], log)
        stop.set()
        for client in clients:
            client.join(CLIENT_WAIT + 5)
            assert not client.is_alive(), f"{client.name} hung"
            assert client.error is None, client.error
        assert broker.alive(), broker.log()[-3000:]
    finally:
        for _, _, process in slots:
            process.kill()
            process.wait(5)
        broker.kill()

    figures = {"seconds": SOAK_SECONDS, "worker_kills": kills}
    for service, service_clients in (("once", clients[:4]), ("again", clients[4:])):
        outcomes = Counter()
        for client in service_clients:
            outcomes.update(client.outcomes.values())
        executed = Counter()
        for log in logs[service]:
            if log.exists():
                executed.update(line for line in log.read_text().splitlines() if line)
        duplicates = sum(count - 1 for count in executed.values() if count > 1)
        figures[service] = {"sent": sum(outcomes.values()), "answered": outcomes["ok"],
                            "failed": {k: v for k, v in outcomes.items()
                                       if k not in ("ok", "lost")},
                            "lost": outcomes["lost"], "executed_twice": duplicates}
        # Every request ended in its reply or an explicit error: none lost, none garbled.
        assert outcomes["lost"] == 0, figures
        assert set(outcomes) <= {"ok", "error 502", "error 503", "error 504"}, outcomes
        assert outcomes["ok"] > 0.9 * sum(outcomes.values()), figures
        if service == "once":
            assert duplicates == 0, figures  # no redispatch: never executed twice
    report("worker_death", figures)
    # The kills hit requests in flight: the test exercised what it claims to.
    assert figures["once"]["failed"].get("error 502", 0) + \
        figures["again"]["executed_twice"] > 0, figures


def test_broker_restart_under_load(tmp_path, zguard_bin):
    """Kill -9 the broker under load and start it again on the same ports: our workers
    (zguard echo-worker) re-register within 3 heartbeats, clients using our client library
    (zguard call) with a retry policy get every request answered."""
    ports = unique_ports(["public", "workers"])
    config = tmp_path / "restart.yaml"
    config.write_text(
        set_broker(render_config(grasslands_pair(ports), services=["echo"]),
                   heartbeat_interval="250ms"))
    heartbeat = 0.25
    broker = ConfigBroker(config, ports, tmp_path / "broker-0.log")
    workers = [subprocess.Popen([ZGUARD_BIN, "echo-worker", "--connect",
                                 f"tcp://127.0.0.1:{ports['workers']}", "--service", "echo",
                                 "--heartbeat", "250ms"], stdin=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(2)]
    stop = threading.Event()
    results: Dict[str, List] = {}
    lock = threading.Lock()

    def client_loop(name: str) -> None:
        seq = 0
        while not stop.is_set():
            request_id = f"{name}-{seq}"
            seq += 1
            attempts = 0
            while True:  # retry policy: up to 20 attempts of 500 ms
                attempts += 1
                result = subprocess.run([ZGUARD_BIN, "call", "--connect",
                                         f"tcp://127.0.0.1:{ports['public']}", "-t", "500ms",
                                         "echo", request_id], capture_output=True, text=True,
                                        timeout=10)
                if result.returncode == 0 or attempts >= 20:
                    break
                time.sleep(0.05)
            with lock:
                results[request_id] = [result.returncode, result.stdout, attempts,
                                       time.monotonic()]

    threads = [threading.Thread(target=client_loop, args=(f"r{i}",), daemon=True)
               for i in range(4)]
    try:
        broker.wait_ready()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run([ZGUARD_BIN, "call", "--connect",
                                    f"tcp://127.0.0.1:{ports['public']}", "-t", "500ms",
                                    "mmi.service", "echo"], capture_output=True, text=True)
            if probe.stdout.strip() == "200":
                break
        for thread in threads:
            thread.start()
        time.sleep(3)
        broker.proc.send_signal(signal.SIGKILL)
        broker.proc.wait(5)
        killed_at = time.monotonic()
        time.sleep(1.0)
        broker = ConfigBroker(config, ports, tmp_path / "broker-1.log")
        broker.wait_ready()
        restarted_at = time.monotonic()
        # Workers: registered again within 3 heartbeats of the restart (plus process start).
        registered_at = None
        while time.monotonic() < restarted_at + 5:
            probe = subprocess.run([ZGUARD_BIN, "call", "--connect",
                                    f"tcp://127.0.0.1:{ports['public']}", "-t", "200ms",
                                    "mmi.service", "echo"], capture_output=True, text=True)
            if probe.stdout.strip() == "200":
                registered_at = time.monotonic()
                break
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        stop.set()
        for worker in workers:
            worker.kill()
            worker.wait(5)
        broker.kill()

    assert registered_at is not None, "workers did not re-register"
    reregistration = registered_at - restarted_at
    assert reregistration <= 3 * heartbeat + 0.5, reregistration
    failed = {k: v for k, v in results.items() if v[0] != 0 or v[1] != k + "\n"}
    assert not failed, failed
    first_after = min((v[3] for v in results.values() if v[3] > restarted_at), default=None)
    assert first_after is not None, "no request answered after the restart"
    retried = sum(1 for v in results.values() if v[2] > 1)
    report("broker_restart", {
        "requests": len(results), "answered": len(results) - len(failed), "lost": len(failed),
        "requests_that_needed_retries": retried,
        "workers_reregistered_seconds_after_restart": round(reregistration, 2),
        "first_reply_seconds_after_restart": round(first_after - restarted_at, 2),
        "outage_seconds_kill_to_first_reply": round(first_after - killed_at, 2)})


def test_reload_under_load(tmp_path, zguard_bin, context):
    """8 ironhouse clients run while the certificate store, the revocation list and SIGHUP
    reloads change things that do not concern them: no request fails, no connection drops."""
    keys, store = tmp_path / "keys", tmp_path / "store"
    keys.mkdir(mode=0o700)
    store.mkdir()
    keygen(keys, "broker")
    for index in range(8):
        keygen(keys, f"client{index}")
        (store / f"client{index}.key").write_bytes((keys / f"client{index}.key").read_bytes())
    (tmp_path / "revoked.txt").write_text("# revoked\n")
    ports = unique_ports(["iron", "workers"])
    config = tmp_path / "reload.yaml"
    config.write_text(render_config([
        {"name": "iron", "bind": f"tcp://127.0.0.1:{ports['iron']}", "role": "clients",
         "profile": "ironhouse", "certificates": "store", "revoked": "revoked.txt"},
        {"name": "workers", "bind": f"tcp://127.0.0.1:{ports['workers']}", "role": "workers",
         "profile": "grasslands"},
    ], keys_broker="keys/broker.key_secret", services=["echo"]))
    broker = ConfigBroker(config, ports, tmp_path / "broker.log")
    broker.wait_ready()
    worker = mdp.WorkerThread(context, f"tcp://127.0.0.1:{ports['workers']}", "echo",
                              lambda r: r.body).start()
    server_public, _ = zmq.auth.load_certificate(str(keys / "broker.key"))
    stop = threading.Event()
    contexts, clients, monitors = [], [], []
    try:
        for index in range(8):
            public, secret = zmq.auth.load_certificate(str(keys / f"client{index}.key_secret"))
            client_context = zmq.Context()
            for option, value in ((zmq.CURVE_SERVERKEY, server_public),
                                  (zmq.CURVE_PUBLICKEY, public), (zmq.CURVE_SECRETKEY, secret)):
                client_context.setsockopt(option, value)
            contexts.append(client_context)
            client = LoadClient(client_context, f"tcp://127.0.0.1:{ports['iron']}", "echo",
                                f"k{index}", stop)
            monitors.append(client.client.socket.get_monitor_socket(
                zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED))
            clients.append(client)
        for client in clients:
            client.start()
        time.sleep(1)
        reloads = 0
        for round_number in range(5):
            outsider = f"outsider{round_number}"
            keygen(keys, outsider)
            (store / f"{outsider}.key").write_bytes((keys / f"{outsider}.key").read_bytes())
            public_key = zmq.auth.load_certificate(str(keys / f"{outsider}.key"))[0].decode()
            with open(tmp_path / "revoked.txt", "a") as revoked:
                revoked.write(public_key + "\n")
            broker.signal(signal.SIGHUP)
            reloads += 1
            time.sleep(0.7)
        time.sleep(1)
        stop.set()
        for client in clients:
            client.join(CLIENT_WAIT + 5)
            assert client.error is None, client.error
    finally:
        stop.set()
        worker.stop()
        broker.kill()
    outcomes = Counter()
    for client in clients:
        outcomes.update(client.outcomes.values())
    events = Counter()
    for monitor in monitors:
        while monitor.poll(0):
            event = zmq.utils.monitor.recv_monitor_message(monitor)
            events[event["event"]] += 1
        monitor.close(linger=0)
    for client_context in contexts:
        client_context.destroy(linger=0)
    report("reload_under_load", {"requests": sum(outcomes.values()), "outcomes": dict(outcomes),
                                 "reloads": reloads,
                                 "connects": events[zmq.EVENT_CONNECTED],
                                 "disconnects": events[zmq.EVENT_DISCONNECTED]})
    assert set(outcomes) == {"ok"}, outcomes
    assert sum(outcomes.values()) > 100
    assert events[zmq.EVENT_DISCONNECTED] == 0, events
    assert "security policy reloaded" in (tmp_path / "broker.log").read_text()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def test_request_flood_is_bounded(tmp_path, zguard_bin, context):
    """One client sends 20,000 requests at once for a service without workers: the queue cap
    answers 429 at once, the queued ones get 503 at their deadline, every request is answered,
    another client is served meanwhile, and the broker's memory stays bounded."""
    ports = unique_ports(["public", "workers"])
    config = tmp_path / "flood.yaml"
    config.write_text(set_broker(render_config(grasslands_pair(ports), services=["void"]),
                                 max_queued_requests=1000, request_timeout="2s"))
    broker = ConfigBroker(config, ports, tmp_path / "broker.log")
    flood = 20_000
    try:
        broker.wait_ready()
        rss_before = rss_kib(broker.proc.pid)
        flooder = context.socket(zmq.DEALER)
        flooder.setsockopt(zmq.LINGER, 0)
        flooder.setsockopt(zmq.SNDHWM, 0)
        flooder.connect(broker.client_endpoint)
        codes = Counter()
        started = time.monotonic()
        for index in range(flood):
            flooder.send_multipart([b"", mdp.CLIENT_HEADER, b"void", b"%d" % index])
        # Meanwhile another client is served at once (MMI needs no worker).
        other = mdp.Client(context, broker.client_endpoint)
        asked = time.monotonic()
        assert other.request("mmi.service", ["void"], timeout=5).body == [b"404"]
        other_latency = time.monotonic() - asked
        other.close()
        peak = rss_kib(broker.proc.pid)
        deadline = time.monotonic() + 15
        while sum(codes.values()) < flood and time.monotonic() < deadline:
            if flooder.poll(200):
                frames = flooder.recv_multipart()
                reply = mdp.parse_reply(frames[1:])
                codes[reply.code] += 1
                peak = max(peak, rss_kib(broker.proc.pid)) if sum(codes.values()) % 1000 == 0 \
                    else peak
        elapsed = time.monotonic() - started
        flooder.close()
        assert broker.alive(), broker.log()[-2000:]
    finally:
        broker.kill()
    report("request_flood", {"requests": flood, "replies": dict(codes),
                             "seconds": round(elapsed, 2),
                             "other_client_latency_ms": round(other_latency * 1000, 1),
                             "rss_before_kib": rss_before, "rss_peak_kib": peak})
    assert sum(codes.values()) == flood, codes
    assert codes[503] == 1000 and codes[429] == flood - 1000, codes
    assert other_latency < 1.0, other_latency
    assert peak - rss_before < 100 * 1024, (rss_before, peak)
