"""Attacks from the security review of 33e4510 (issue 10), each against a real broker on
127.0.0.1 with real pyzmq peers or raw ZMTP over TCP, bounded in time and memory.

* A routing id is not an identity: a connection that reuses the routing id of a worker or
  client that is gone gets nothing of theirs (ironhouse, two identities).
* Peer-chosen sizes cannot grow the broker: routing ids over 255 bytes, messages of tens of
  thousands of frames, and service names of megabytes, against a broker whose address space
  is limited (RLIMIT_AS; under ASan, its resident memory) so that an unbounded copy ends it
  instead of swapping.
* Undeclared services are bounded (broker.max_undeclared_services, undeclared_services: deny)
  and their metric series go with them.
* Peer-chosen strings cannot forge log lines.
"""

from __future__ import annotations

import functools
import os
import re
import resource
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import zmq
import zmq.auth

import mdp
from conftest import ZGUARD_BIN, ConfigBroker, unique_ports
from test_handshake_garbage import frame, greeting3
from test_security import curve_options, keygen

# --------------------------------------------------------------------------
# helpers


def metrics_text(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series, 0 when it is not exposed."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_until(what: str, check, timeout: float = 5.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def vm_kib(pid: int, field: str) -> int:
    """VmRSS / VmSize of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@functools.lru_cache(maxsize=None)
def built_with_asan() -> bool:
    """Whether ZGUARD_BIN is an AddressSanitizer build (CI runs this suite under one too)."""
    return b"__asan_init" in Path(ZGUARD_BIN).read_bytes()


class LimitedBroker(ConfigBroker):
    """A `zguard serve` whose address space is limited to `limit_mib` MiB (RLIMIT_AS), with
    at most two malloc arenas so that the limit measures what the broker allocates rather
    than what glibc reserves per thread."""

    def __init__(self, config_path: Path, ports: Dict[str, int], log_path: Path,
                 limit_mib: int):
        self.config_path = config_path
        self.ports = dict(ports)
        first, *rest = list(self.ports.values())
        self.client_port, self.worker_port = first, rest[0] if rest else first
        self.client_endpoint = f"tcp://127.0.0.1:{self.client_port}"
        self.worker_endpoint = f"tcp://127.0.0.1:{self.worker_port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        limit = limit_mib << 20

        def limit_address_space():
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        env = dict(os.environ, MALLOC_ARENA_MAX="2")
        limit_memory = limit_address_space
        if built_with_asan():
            # ASan reserves terabytes of shadow address space at start, so RLIMIT_AS cannot
            # apply; its own watchdog ends the process when its resident memory passes the
            # limit instead (plus room for the shadow pages it touches), and a small
            # quarantine keeps freed messages from counting as growth.
            options = [env.get("ASAN_OPTIONS", ""), f"hard_rss_limit_mb={limit_mib + 256}",
                       "quarantine_size_mb=16"]
            env["ASAN_OPTIONS"] = ":".join(option for option in options if option)
            limit_memory = None
        self.proc = subprocess.Popen([ZGUARD_BIN, "serve", "-c", str(config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=limit_memory)


@pytest.fixture
def limited(tmp_path):
    """Factory: limited(broker_yaml_lines, services_yaml, limit_mib) -> LimitedBroker, with
    grasslands endpoints `public` and `workers` and metrics on."""
    started: List[LimitedBroker] = []

    def start(broker: str = "", services: str = "", limit_mib: int = 768) -> LimitedBroker:
        ports = unique_ports(["public", "workers", "metrics"])
        text = (f"broker:\n  heartbeat_interval: 100ms\n  request_timeout: 30s\n{broker}"
                "log: { level: info, format: text }\n"
                f'metrics: {{ listen: "127.0.0.1:{ports["metrics"]}" }}\n'
                "endpoints:\n"
                f'  - {{ name: public, bind: "tcp://127.0.0.1:{ports["public"]}", '
                "role: clients, profile: grasslands }\n"
                f'  - {{ name: workers, bind: "tcp://127.0.0.1:{ports["workers"]}", '
                "role: workers, profile: grasslands }\n"
                f"services:\n{services or '  echo: {}'}\n")
        config = tmp_path / f"limited-{len(started)}.yaml"
        config.write_text(text)
        process = LimitedBroker(config, {"public": ports["public"], "workers": ports["workers"]},
                                tmp_path / f"limited-{len(started)}.log", limit_mib)
        process.metrics_port = ports["metrics"]
        started.append(process)
        process.wait_ready()
        process.wait_log("metrics on http://")
        return process

    yield start
    for process in started:
        process.kill()


def assert_alive_and_serving(broker, context) -> None:
    assert broker.alive(), f"the broker died:\n{broker.log()[-3000:]}"
    worker = mdp.WorkerThread(context, broker.worker_endpoint, "echo",
                              lambda request: request.body).start()
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "echo")
        client = mdp.Client(context, broker.client_endpoint)
        try:
            assert client.request("echo", [b"still here"], timeout=5).body == [b"still here"]
        finally:
            client.close()
    finally:
        worker.stop()


class RawNullPeer:
    """A ZMTP 3.0 NULL peer written from RFC 23 over a plain TCP socket, so that it can send
    what libzmq's own API refuses to (here: a routing id of any length)."""

    def __init__(self, port: int, identity: bytes, socket_type: bytes = b"DEALER"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(greeting3(b"NULL"))
        self._read_exactly(64)  # the broker's greeting
        properties = b""
        for name, value in ((b"Socket-Type", socket_type), (b"Identity", identity)):
            properties += bytes([len(name)]) + name + struct.pack(">I", len(value)) + value
        self.sock.sendall(frame(b"\x05READY" + properties, command=True))
        flags, body = self._read_frame()  # the broker's READY (after its ZAP check)
        assert flags & 0x04 and body.startswith(b"\x05READY"), body[:40]

    def _read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return data

    def _read_frame(self):
        flags = self._read_exactly(1)[0]
        size = (struct.unpack(">Q", self._read_exactly(8))[0] if flags & 0x02
                else self._read_exactly(1)[0])
        return flags, self._read_exactly(size)

    def send(self, frames: List[bytes]) -> None:
        data = b"".join(frame(part, more=i + 1 < len(frames)) for i, part in enumerate(frames))
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------
# Ironhouse with two identities


@pytest.fixture
def ironhouse(tmp_path, serve_config):
    keys, store = tmp_path / "keys", tmp_path / "store"
    keys.mkdir(mode=0o700)
    store.mkdir()
    server_public = keygen(keys, "broker").encode()
    for name in ("alice", "mallory", "worker"):
        keygen(keys, name, f"name={name}")
        shutil.copy(keys / f"{name}.key", store / f"{name}.key")
    ports = unique_ports(["iron", "iron-workers", "metrics"])
    config = tmp_path / "ironhouse.yaml"
    config.write_text(
        "broker:\n  heartbeat_interval: 100ms\n  heartbeat_liveness: 30\n  request_timeout: 10s\n"
        "log: { level: info, format: text }\n"
        f'metrics: {{ listen: "127.0.0.1:{ports["metrics"]}" }}\n'
        "keys: { broker: keys/broker.key_secret }\n"
        "endpoints:\n"
        f'  - {{ name: iron, bind: "tcp://127.0.0.1:{ports["iron"]}", role: clients, '
        "profile: ironhouse, certificates: store }\n"
        f'  - {{ name: iron-workers, bind: "tcp://127.0.0.1:{ports["iron-workers"]}", '
        "role: workers, profile: ironhouse, certificates: store }\n"
        "services:\n"
        '  echo: { workers: ["user:worker"] }\n')
    broker = serve_config(config, {"iron": ports["iron"], "iron-workers": ports["iron-workers"]})
    broker.metrics_port = ports["metrics"]
    broker.wait_log("metrics on http://")
    certs = {name: zmq.auth.load_certificate(str(keys / f"{name}.key_secret"))
             for name in ("alice", "mallory", "worker")}
    return broker, server_public, certs


def curve_socket(context, kind, endpoint, server_public, cert, routing_id: bytes):
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    for option, value in curve_options(server_public, *cert).items():
        sock.setsockopt(option, value)
    sock.setsockopt(zmq.ROUTING_ID, routing_id)
    sock.connect(endpoint)
    return sock


def worker_send(sock, command: bytes, *frames: bytes) -> None:
    sock.send_multipart([b"", mdp.WORKER_HEADER, command, *frames])


def recv_within(sock, seconds: float) -> Optional[List[bytes]]:
    if sock.poll(int(seconds * 1000), zmq.POLLIN):
        return sock.recv_multipart()
    return None


def test_a_worker_routing_id_taken_over_by_another_identity_gets_nothing(ironhouse, context):
    broker, server_public, certs = ironhouse
    workers_endpoint = broker.endpoint("iron-workers")
    worker = curve_socket(context, zmq.DEALER, workers_endpoint, server_public,
                          certs["worker"], b"W")
    worker_send(worker, mdp.READY, b"echo")
    alice = curve_socket(context, zmq.DEALER, broker.endpoint("iron"), server_public,
                         certs["alice"], b"alice")
    # The registration is in place before the worker drops (mmi.service answers 200).
    wait_until("echo registered", lambda: (
        alice.send_multipart([b"", mdp.CLIENT_HEADER, b"mmi.service", b"echo"]),
        recv_within(alice, 2) == [b"", mdp.CLIENT_HEADER, b"mmi.service", b"200"])[1])
    worker.close()  # gone without DISCONNECT; its heartbeats are not yet overdue
    time.sleep(0.3)

    # mallory is in the store, so the endpoint admits her, but she may not serve echo. She
    # claims the worker's routing id and carries on where it left off.
    mallory = curve_socket(context, zmq.DEALER, workers_endpoint, server_public,
                           certs["mallory"], b"W")
    worker_send(mallory, mdp.HEARTBEAT)
    reply = recv_within(mallory, 2)
    assert reply is not None and reply[2:3] == [mdp.DISCONNECT], reply
    alice.send_multipart([b"", mdp.CLIENT_HEADER, b"echo", b"for the real worker"])
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        got = recv_within(mallory, deadline - time.monotonic())
        assert got is None or got[2] != mdp.REQUEST, f"mallory got a request: {got!r}"
        if got is not None and got[2] == mdp.HEARTBEAT:
            continue
    text = metrics_text(broker.metrics_port)
    assert sample(text, "zguard_worker_refusals_total", endpoint="iron-workers",
                  reason="not_registered") >= 1, text
    assert sample(text, "zguard_workers", service="echo", state="idle") == 0
    mallory.close()
    alice.close()


def test_a_client_routing_id_taken_over_by_another_identity_gets_no_reply(ironhouse, context):
    broker, server_public, certs = ironhouse
    worker = curve_socket(context, zmq.DEALER, broker.endpoint("iron-workers"), server_public,
                          certs["worker"], b"W")
    worker_send(worker, mdp.READY, b"echo")
    alice = curve_socket(context, zmq.DEALER, broker.endpoint("iron"), server_public,
                         certs["alice"], b"C")
    # alice's request reaches the worker, which holds it (and keeps heartbeating).
    alice.send_multipart([b"", mdp.CLIENT_HEADER, b"echo", b"for alice only"])
    request = None
    deadline = time.monotonic() + 5
    while request is None and time.monotonic() < deadline:
        got = recv_within(worker, 0.1)
        if got is not None and got[2] == mdp.REQUEST:
            request = got
        worker_send(worker, mdp.HEARTBEAT)
    assert request is not None, "the request did not reach the worker"
    address = request[3]
    alice.close()  # she drops while her request is in flight
    time.sleep(0.3)

    # mallory takes "C" and makes sure the broker has seen her (her own MMI call works).
    mallory = curve_socket(context, zmq.DEALER, broker.endpoint("iron"), server_public,
                           certs["mallory"], b"C")
    mallory.send_multipart([b"", mdp.CLIENT_HEADER, b"mmi.service", b"echo"])
    assert recv_within(mallory, 3) == [b"", mdp.CLIENT_HEADER, b"mmi.service", b"200"]
    worker_send(worker, mdp.REPLY, address, b"", b"alice's secret")
    got = recv_within(mallory, 1.5)
    assert got is None, f"mallory received {got!r}"
    text = metrics_text(broker.metrics_port)
    assert sample(text, "zguard_requests_total", service="echo", outcome="client_gone") == 1
    assert sample(text, "zguard_late_replies_total", service="echo") == 1
    # The worker is free again and mallory is served as herself.
    mallory.send_multipart([b"", mdp.CLIENT_HEADER, b"echo", b"mallory's own"])
    got = None
    deadline = time.monotonic() + 3
    while got is None and time.monotonic() < deadline:
        frames = recv_within(worker, 0.1)
        if frames is not None and frames[2] == mdp.REQUEST:
            got = frames
    assert got is not None and got[5:] == [b"mallory's own"], got
    worker.close()
    mallory.close()


# --------------------------------------------------------------------------
# Sizes a peer chooses


def test_routing_ids_over_255_bytes_are_refused_and_pin_nothing(limited, context):
    """On 33e4510 every request copied the peer's routing id: 1000 queued 19-byte requests
    from a 1 MiB id needed 1000 MiB, more than the broker's address-space limit."""
    broker = limited(services="  echo: {}\n  hold: {}", limit_mib=768)
    rss_before = vm_kib(broker.proc.pid, "VmRSS")
    peer = RawNullPeer(broker.client_port, b"L" * (1 << 20))
    try:
        for _ in range(1000):
            # [""] ["MDPC01"] ["hold"] ["x"]: queued (hold has no worker) if it were accepted.
            peer.send([b"", mdp.CLIENT_HEADER, b"hold", b"x"])
        wait_until("every message handled", lambda: not broker.alive() or sample(
            metrics_text(broker.metrics_port), "zguard_refused_messages_total",
            endpoint="public", reason="routing_id_too_long") == 1000 or sample(
            metrics_text(broker.metrics_port), "zguard_requests_queued", service="hold") >= 1000,
            timeout=30)
    finally:
        peer.close()
    assert broker.alive(), broker.log()[-3000:]
    text = metrics_text(broker.metrics_port)
    assert sample(text, "zguard_requests_queued", service="hold") == 0
    assert sample(text, "zguard_refused_messages_total", endpoint="public",
                  reason="routing_id_too_long") == 1000
    assert vm_kib(broker.proc.pid, "VmRSS") - rss_before < 64 * 1024
    assert "routing id is 1048576 bytes (the limit is 255)" in broker.log()
    # A 255-byte id is fine (test_handshake_garbage.py has one on every profile).
    assert_alive_and_serving(broker, context)


def test_many_frames_get_413_and_cost_no_memory(limited, context):
    """On 33e4510 a request kept every frame (about 64 bytes each, empty or not): 200
    queued requests of 50,000 empty frames (100 KB each on the wire) held 640 MB, and
    vectors never gave their capacity back."""
    broker = limited(services="  echo: {}\n  hold: {}", limit_mib=768)  # max_frames: 64
    rss_before = vm_kib(broker.proc.pid, "VmRSS")
    client = mdp.Client(context, broker.client_endpoint)
    try:
        body = [b""] * 50_000
        for _ in range(200):
            client.send("hold", body)
            try:
                reply = client.recv(timeout=10 if broker.alive() else 0.1)
            except mdp.MdpTimeout:
                assert broker.alive(), f"the broker died:\n{broker.log()[-3000:]}"
                raise
            assert reply.code == 413, reply
            assert "max_frames (64)" in reply.reason
        # At the limit it is an ordinary request (queued: hold has no worker).
        client.send("hold", [b""] * 64)
        with pytest.raises(mdp.MdpTimeout):
            client.recv(timeout=0.5)
    finally:
        client.close()
    assert broker.alive(), broker.log()[-3000:]
    assert vm_kib(broker.proc.pid, "VmRSS") - rss_before < 64 * 1024
    text = metrics_text(broker.metrics_port)
    assert sample(text, "zguard_requests_total", service="hold", outcome="too_large") == 200
    assert_alive_and_serving(broker, context)


def test_service_names_are_bounded_and_metrics_stay_small(limited, context):
    """On 33e4510 eight READYs with 2 MiB names made /metrics 528 MiB."""
    broker = limited(services="  echo: {}", limit_mib=768)
    for i in range(8):
        worker = context.socket(zmq.DEALER)
        worker.setsockopt(zmq.LINGER, 0)
        worker.connect(broker.worker_endpoint)
        worker.send_multipart([b"", mdp.WORKER_HEADER, mdp.READY, bytes([65 + i]) * (2 << 20)])
        got = recv_within(worker, 3)
        assert got is not None and got[2] == mdp.DISCONNECT, got
        worker.close()
    text = metrics_text(broker.metrics_port)
    assert len(text) < 256 * 1024, len(text)
    assert sample(text, "zguard_worker_refusals_total", endpoint="workers",
                  reason="bad_service") == 8
    assert "may not register service AAAAAAAA" in broker.log()
    # A client naming such a service gets 400 at once.
    client = mdp.Client(context, broker.client_endpoint)
    try:
        reply = client.request(b"B" * 300, [b"x"], timeout=3)
        assert reply.code == 400 and "longer than 255 bytes" in reply.reason
    finally:
        client.close()
    assert_alive_and_serving(broker, context)


def test_undeclared_services_are_capped_and_their_series_removed(limited, context):
    broker = limited(broker="  max_undeclared_services: 5\n  service_retention: 200ms\n",
                     services="  echo: {}")
    sockets = []
    for i in range(8):
        worker = context.socket(zmq.DEALER)
        worker.setsockopt(zmq.LINGER, 0)
        worker.connect(broker.worker_endpoint)
        worker.send_multipart([b"", mdp.WORKER_HEADER, mdp.READY, f"made-up-{i}".encode()])
        sockets.append(worker)
    wait_until("three refused", lambda: sample(
        metrics_text(broker.metrics_port), "zguard_worker_refusals_total", endpoint="workers",
        reason="bad_service") == 3)
    text = metrics_text(broker.metrics_port)
    registered = {m for m in re.findall(r'service="(made-up-\d)"', text)}
    assert len(registered) == 5, registered
    assert "max_undeclared_services" in broker.log()
    for worker in sockets:
        worker.close()  # the broker sees them go, and forgets the services after 200 ms
    wait_until("series removed", lambda: "made-up-" not in metrics_text(broker.metrics_port),
               timeout=5)
    assert_alive_and_serving(broker, context)


def test_undeclared_services_can_be_denied(limited, context):
    broker = limited(broker="  undeclared_services: deny\n", services="  echo: {}")
    worker = context.socket(zmq.DEALER)
    worker.setsockopt(zmq.LINGER, 0)
    worker.connect(broker.worker_endpoint)
    worker.send_multipart([b"", mdp.WORKER_HEADER, mdp.READY, b"not-declared"])
    got = recv_within(worker, 3)
    assert got is not None and got[2] == mdp.DISCONNECT, got
    worker.close()
    assert "the service is not declared (broker.undeclared_services: deny)" in broker.log()
    assert "not-declared" not in metrics_text(broker.metrics_port)
    assert_alive_and_serving(broker, context)


# --------------------------------------------------------------------------
# Logs


def test_peer_chosen_strings_cannot_forge_log_lines(limited, context):
    broker = limited(broker="  undeclared_services: deny\n", services="  echo: {}")
    forged = b"evil\n2026-01-01T00:00:00.000 info  auth allowed: endpoint=admin\x1b[31m"
    worker = context.socket(zmq.DEALER)
    worker.setsockopt(zmq.LINGER, 0)
    worker.connect(broker.worker_endpoint)
    worker.send_multipart([b"", mdp.WORKER_HEADER, mdp.READY, forged])
    assert recv_within(worker, 3) is not None
    worker.close()
    log = broker.wait_log("may not register service evil")
    assert "evil\\x0a2026-01-01T00:00:00.000 info  auth allowed: endpoint=admin\\x1b[31m" in log
    assert not any(line.startswith("2026-01-01T00:00:00.000") for line in log.splitlines())
    assert "\x1b" not in log


def test_a_worker_dropped_for_missed_heartbeats_is_logged(limited, context):
    broker = limited(broker="  heartbeat_liveness: 2\n", services="  echo: {}")
    worker = context.socket(zmq.DEALER)
    worker.setsockopt(zmq.LINGER, 0)
    worker.connect(broker.worker_endpoint)
    worker.send_multipart([b"", mdp.WORKER_HEADER, mdp.READY, b"echo"])
    # It says nothing more: dropped after 2 x 100 ms (plus at most one interval).
    log = broker.wait_log("of service echo sent nothing for 200ms: dropped", timeout=3)
    assert "endpoint workers: worker anonymous" in log
    worker.close()


def test_handshake_failures_are_logged_once_per_window(limited, context):
    """libzmq's monitor reports them (counted since 33e4510, never logged): a PLAIN client on
    a NULL endpoint, again and again, is one log line and, after the window, one summary."""
    broker = limited(services="  echo: {}")
    for _ in range(3):
        client = context.socket(zmq.DEALER)
        client.setsockopt(zmq.LINGER, 0)
        client.setsockopt(zmq.PLAIN_USERNAME, b"user")
        client.setsockopt(zmq.PLAIN_PASSWORD, b"password")
        client.connect(broker.client_endpoint)
        client.send_multipart([b"", mdp.CLIENT_HEADER, b"echo", b"x"])
        time.sleep(0.3)
        client.close()
    line = ("endpoint public: handshake failed: security mechanism mismatch (the peer does not "
            "use this endpoint's profile)")
    log = broker.wait_log(line)
    assert log.count(line) == 1, log
    # The summary comes when the 10 s window ends (libzmq retries the PLAIN client on its own,
    # so there may be more than two).
    summary = re.compile(re.escape(line) + r" \((\d+) more like it in the last 10 s\)")
    deadline = time.monotonic() + 15
    while not summary.search(broker.log()) and time.monotonic() < deadline:
        time.sleep(0.2)
    found = summary.search(broker.log())
    assert found and int(found.group(1)) >= 2, broker.log()


def test_old_zmtp_peers_are_refused_with_a_logged_reason(limited):
    """ZMTP 1.0/2.0 peers are refused at once (every endpoint has a ZAP domain), and libzmq
    says nothing about it: the broker sums such closes up once per window."""
    broker = limited(services="  echo: {}")
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", broker.client_port), timeout=2)
        # RFC 15 greeting: signature, revision 1 (ZMTP 2.0), socket type DEALER, no identity.
        sock.sendall(b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x01\x05" + b"\x00\x00")
        sock.settimeout(2)
        try:
            while sock.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        sock.close()
    wait_until("counted", lambda: sample(metrics_text(broker.metrics_port),
                                         "zguard_connections_closed_silent_total",
                                         endpoint="public") >= 3)
    log = broker.wait_log("closed in the last 10 s before sending anything", timeout=15)
    assert "zguard needs ZMTP 3.0 or later" in log


# --------------------------------------------------------------------------
# Revocation is one step


@pytest.fixture
def revocable(tmp_path, serve_config):
    """Ironhouse clients and workers with a revocation list the test rewrites."""
    keys, store = tmp_path / "keys", tmp_path / "store"
    keys.mkdir(mode=0o700)
    store.mkdir()
    server_public = keygen(keys, "broker").encode()
    names = ("client", "w1", "w2", "w3")
    publics = {}
    for name in names:
        publics[name] = keygen(keys, name, f"name={name}")
        shutil.copy(keys / f"{name}.key", store / f"{name}.key")
    revoked = tmp_path / "revoked.txt"
    revoked.write_text("# nobody yet\n")
    ports = unique_ports(["iron", "iron-workers", "metrics"])
    config = tmp_path / "revocable.yaml"
    config.write_text(
        "broker:\n  heartbeat_interval: 100ms\n  heartbeat_liveness: 30\n  request_timeout: 20s\n"
        "log: { level: info, format: text }\n"
        f'metrics: {{ listen: "127.0.0.1:{ports["metrics"]}" }}\n'
        "keys: { broker: keys/broker.key_secret }\n"
        "endpoints:\n"
        f'  - {{ name: iron, bind: "tcp://127.0.0.1:{ports["iron"]}", role: clients, '
        "profile: ironhouse, certificates: store, revoked: revoked.txt }\n"
        f'  - {{ name: iron-workers, bind: "tcp://127.0.0.1:{ports["iron-workers"]}", '
        "role: workers, profile: ironhouse, certificates: store, revoked: revoked.txt }\n"
        "services:\n"
        "  work: { redispatch: true }\n"
        "  slow: {}\n")
    broker = serve_config(config, {"iron": ports["iron"], "iron-workers": ports["iron-workers"]})
    broker.metrics_port = ports["metrics"]
    broker.wait_log("metrics on http://")
    certs = {name: zmq.auth.load_certificate(str(keys / f"{name}.key_secret")) for name in names}

    def revoke(*who: str) -> None:
        reloads = broker.log().count("security policy reloaded")
        staged = tmp_path / "revoked.txt.new"
        staged.write_text("".join(publics[name] + "\n" for name in who))
        os.replace(staged, revoked)
        wait_until("reload", lambda: broker.log().count("security policy reloaded") > reloads)

    return broker, server_public, certs, revoke


class HeldWorker:
    """A worker socket driven by the test: it heartbeats while it waits, and holds requests."""

    def __init__(self, context, broker, server_public, cert, service: bytes, name: bytes):
        self.sock = curve_socket(context, zmq.DEALER, broker.endpoint("iron-workers"),
                                 server_public, cert, name)
        worker_send(self.sock, mdp.READY, service)
        self.requests: List[List[bytes]] = []
        self.disconnected = False

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            got = recv_within(self.sock, 0.05)
            if got is not None and got[2] == mdp.REQUEST:
                self.requests.append(got)
            elif got is not None and got[2] == mdp.DISCONNECT:
                self.disconnected = True
            elif not self.disconnected:
                worker_send(self.sock, mdp.HEARTBEAT)

    def close(self) -> None:
        self.sock.close()


def test_revoking_two_workers_at_once_never_hands_the_request_to_the_second(revocable, context):
    """On 33e4510 the revoked workers were dropped one by one: the request held by the first
    went to the second, which was revoked too."""
    broker, server_public, certs, revoke = revocable
    w1 = HeldWorker(context, broker, server_public, certs["w1"], b"work", b"w1")
    client = curve_socket(context, zmq.DEALER, broker.endpoint("iron"), server_public,
                          certs["client"], b"client")
    client.send_multipart([b"", mdp.CLIENT_HEADER, b"work", b"the job"])
    deadline = time.monotonic() + 5
    while not w1.requests and time.monotonic() < deadline:
        w1.pump(0.1)
    assert w1.requests, "w1 never got the request"
    w2 = HeldWorker(context, broker, server_public, certs["w2"], b"work", b"w2")
    w2.pump(0.5)  # registered and idle
    revoke("w1", "w2")
    for _ in range(20):
        w1.pump(0.05)
        w2.pump(0.05)
    assert w1.disconnected and w2.disconnected
    assert w2.requests == [], "the request was re-sent to another revoked worker"
    # It waits for a worker that stays, and gets there.
    w3 = HeldWorker(context, broker, server_public, certs["w3"], b"work", b"w3")
    deadline = time.monotonic() + 5
    while not w3.requests and time.monotonic() < deadline:
        w3.pump(0.1)
    assert w3.requests and w3.requests[0][5:] == [b"the job"], w3.requests
    for sock in (w1, w2, w3):
        sock.close()
    client.close()


def test_a_revoked_client_gets_403_for_everything_it_had_asked(revocable, context):
    """On 33e4510 a revoked client's queued requests were still handed to workers and
    answered; only its next message was refused."""
    broker, server_public, certs, revoke = revocable
    worker = HeldWorker(context, broker, server_public, certs["w1"], b"slow", b"w1")
    client = curve_socket(context, zmq.DEALER, broker.endpoint("iron"), server_public,
                          certs["client"], b"client")
    client.send_multipart([b"", mdp.CLIENT_HEADER, b"slow", b"in flight"])
    client.send_multipart([b"", mdp.CLIENT_HEADER, b"slow", b"queued"])
    deadline = time.monotonic() + 5
    while not worker.requests and time.monotonic() < deadline:
        worker.pump(0.1)
    assert len(worker.requests) == 1
    revoke("client")
    answers = [recv_within(client, 3), recv_within(client, 3)]
    for answer in answers:
        assert answer is not None and answer[3:5] == [mdp.ERROR_MARKER, b"403"], answers
    # The worker finishes the first one; the reply goes nowhere and the queued one never comes.
    worker_send(worker.sock, mdp.REPLY, worker.requests[0][3], b"", b"done")
    worker.pump(1.0)
    assert len(worker.requests) == 1, worker.requests
    assert recv_within(client, 0.5) is None
    worker.close()
    client.close()
