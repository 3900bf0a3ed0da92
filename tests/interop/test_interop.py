"""Interop: independent pyzmq Majordomo peers (tests/interop/mdp.py) talking
through a real `zguard serve` process, plus zguard's own CLI client and echo
worker talking to the Python peers.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import threading
import time

import pytest
import zmq

import mdp
from conftest import ZGUARD_BIN

MODES = ["req", "dealer"]

# Binary body with zero bytes, an empty frame in the middle and every byte value.
BINARY_BODY = [
    b"hello",
    b"\x00",
    b"",
    b"\x00\x01\x02\x00\xff\xfe\x00",
    bytes(range(256)),
    "snowman \u2603".encode("utf-8"),
    b"MDPC01",  # protocol headers inside a body are just bytes
    b"MDPW01",
]


def echo_handler(tag: bytes):
    return lambda request: [tag] + request.body


def start_worker(context, broker, workers, service, handler, name="worker"):
    thread = mdp.WorkerThread(context, broker.worker_endpoint, service, handler,
                              heartbeat=0.1, name=name).start()
    workers.append(thread)
    return thread


# --------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_multiframe_binary(context, broker, workers, mode):
    worker = start_worker(context, broker, workers, "echo", echo_handler(b"py"))
    mdp.wait_for_service(context, broker.client_endpoint, "echo")
    client = mdp.Client(context, broker.client_endpoint, mode=mode)
    try:
        for i in range(5):
            body = BINARY_BODY + [str(i).encode()]
            reply = client.request("echo", body, timeout=5)
            assert not reply.is_error, reply
            assert reply.service == b"echo"
            assert reply.body == [b"py"] + body
    finally:
        client.close()
    # The broker's client address is an opaque 8-byte frame (zguard contract).
    assert worker.addresses and all(len(a) == 8 for a in worker.addresses)


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_single_empty_frame_and_large_body(context, broker, workers, mode):
    start_worker(context, broker, workers, "echo", echo_handler(b"py"))
    mdp.wait_for_service(context, broker.client_endpoint, "echo")
    client = mdp.Client(context, broker.client_endpoint, mode=mode)
    try:
        assert client.request("echo", [b""], timeout=5).body == [b"py", b""]
        big = bytes(random.Random(7).getrandbits(8) for _ in range(64 * 1024)) * 8  # 512 KiB
        reply = client.request("echo", [big, b"\x00"], timeout=10)
        assert reply.body == [b"py", big, b"\x00"]
    finally:
        client.close()


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_request_without_body(context, broker, workers, mode):
    """RFC 7 puts no lower bound on body frames: [MDPC01][service] alone is a request."""
    start_worker(context, broker, workers, "count", lambda r: [str(len(r.body)).encode()])
    mdp.wait_for_service(context, broker.client_endpoint, "count")
    client = mdp.Client(context, broker.client_endpoint, mode=mode)
    try:
        reply = client.request("count", [], timeout=5)
        assert reply.body == [b"0"]
    finally:
        client.close()


def test_worker_reply_without_body(context, broker, workers):
    start_worker(context, broker, workers, "void", lambda r: [])
    mdp.wait_for_service(context, broker.client_endpoint, "void")
    client = mdp.Client(context, broker.client_endpoint, mode="dealer")
    try:
        reply = client.request("void", [b"x"], timeout=5)
        assert reply.service == b"void" and reply.body == []
    finally:
        client.close()


def test_python_clients_to_zguard_echo_worker(context, broker):
    proc = subprocess.Popen(
        [ZGUARD_BIN, "echo-worker", "--connect", broker.worker_endpoint, "--service", "cecho",
         "--heartbeat", "100ms", "--count", "4"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "cecho")
        for i, mode in enumerate(["req", "dealer", "req", "dealer"]):
            client = mdp.Client(context, broker.client_endpoint, mode=mode)
            try:
                body = BINARY_BODY + [bytes([i]) * 3]
                reply = client.request("cecho", body, timeout=5)
                assert not reply.is_error, reply
                assert reply.body == body
            finally:
                client.close()
        # --count 4: it leaves on its own after the fourth request.
        out, err = proc.communicate(timeout=5)
        assert proc.returncode == 0, err
        assert b"answered 4 request(s)" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    # Its DISCONNECT unregisters it.
    client = mdp.Client(context, broker.client_endpoint)
    try:
        deadline = time.monotonic() + 3
        while client.request("mmi.service", ["cecho"], timeout=2).body != [b"404"]:
            assert time.monotonic() < deadline, "echo-worker still registered after exit"
            time.sleep(0.02)
    finally:
        client.close()


def test_zguard_call_to_python_worker(context, broker, workers):
    start_worker(context, broker, workers, "upper", lambda r: [b.upper() for b in r.body])
    mdp.wait_for_service(context, broker.client_endpoint, "upper")
    result = subprocess.run(
        [ZGUARD_BIN, "call", "--connect", broker.client_endpoint, "-t", "5s", "upper", "hello",
         "big world", "x"],
        capture_output=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"HELLO\nBIG WORLD\nX\n"


# --------------------------------------------------------------------------
# MMI (RFC 8) and error replies


@pytest.mark.parametrize("mode", MODES)
def test_mmi(context, start_broker, workers, mode):
    broker = start_broker(services={"declared": {}})
    start_worker(context, broker, workers, "present", echo_handler(b"p"))
    mdp.wait_for_service(context, broker.client_endpoint, "present")
    client = mdp.Client(context, broker.client_endpoint, mode=mode)
    try:
        cases = [
            ("mmi.service", [b"present"], [b"200"]),
            ("mmi.service", [b"absent"], [b"404"]),
            ("mmi.service", [b"declared"], [b"404"]),  # declared, but no worker
            ("mmi.frobnicate", [b"present"], [b"501"]),
            ("mmi.", [], [b"501"]),
        ]
        for service, body, expected in cases:
            reply = client.request(service, body, timeout=5)
            assert reply.service == service.encode()
            assert reply.body == expected, (service, body)
    finally:
        client.close()


@pytest.mark.parametrize("mode", MODES)
def test_unknown_service_error_reply(context, broker, mode):
    client = mdp.Client(context, broker.client_endpoint, mode=mode)
    try:
        client.send("nosuch", [b"payload", b"\x00"])
        frames = mdp.poll_recv(client.socket, 5)
        if mode == "dealer":
            assert frames[0] == b""
            frames = frames[1:]
        assert frames == [b"MDPC01", b"nosuch", b"zguard.error", b"404", b"unknown service"]
        reply = client.request("nosuch", [], timeout=5)
        assert reply.is_error and reply.code == 404
    finally:
        client.close()


def test_oversized_request_gets_413(context, start_broker, workers):
    broker = start_broker(broker={"max_message_size": "1KiB"})
    start_worker(context, broker, workers, "echo", echo_handler(b"py"))
    mdp.wait_for_service(context, broker.client_endpoint, "echo")
    client = mdp.Client(context, broker.client_endpoint)
    try:
        reply = client.request("echo", [b"a" * 600, b"b" * 600], timeout=5)
        assert reply.is_error and reply.code == 413, reply
        assert client.request("echo", [b"a" * 1000], timeout=5).body == [b"py", b"a" * 1000]
    finally:
        client.close()


# --------------------------------------------------------------------------
# Timeouts, dead workers, redispatch


def test_request_timeout_then_late_reply_dropped(context, start_broker):
    broker = start_broker(broker={"heartbeat_liveness": 10},
                          services={"slow": {"request_timeout": "300ms"}})
    worker = mdp.Worker(context, broker.worker_endpoint, "slow", heartbeat=0.1)
    client = mdp.Client(context, broker.client_endpoint, mode="dealer")
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "slow")
        started = time.monotonic()
        client.send("slow", [b"first"])
        first = worker.recv(timeout=5)
        assert first.body == [b"first"]
        worker.pump(0.5)  # keep heartbeating, do not reply
        reply = client.recv(timeout=5)
        elapsed = time.monotonic() - started
        assert reply.service == b"slow"
        assert reply.is_error and reply.code == 504, reply
        assert elapsed >= 0.25, f"504 after {elapsed:.3f}s, request_timeout is 300ms"

        # The worker answers at last: the broker must drop that reply...
        worker.reply(first.address, [b"late answer"])
        # ...and route the next request normally.
        client.send("slow", [b"second"])
        second = worker.recv(timeout=5)
        assert second.body == [b"second"]
        worker.reply(second.address, [b"answer to second"])
        reply = client.recv(timeout=5)
        assert not reply.is_error and reply.body == [b"answer to second"]
        assert client.socket.poll(300) == 0, "late reply leaked to the client"
    finally:
        client.close()
        worker.disconnect()


def test_worker_killed_mid_request_gets_502(context, broker, workers):
    worker = mdp.Worker(context, broker.worker_endpoint, "fragile", heartbeat=0.1)
    client = mdp.Client(context, broker.client_endpoint, mode="req")
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "fragile")
        client.send("fragile", [b"work"])
        worker.recv(timeout=5)
        started = time.monotonic()
        worker.kill()  # no DISCONNECT, no more heartbeats
        reply = client.recv(timeout=4)  # request_timeout is 5s: this must be the expiry
        elapsed = time.monotonic() - started
        assert reply.is_error and reply.code == 502, reply
        assert "worker lost" in reply.reason
        assert elapsed < 3, f"dead worker noticed after {elapsed:.2f}s"
        # The broker carries on with a new worker.
        start_worker(context, broker, workers, "fragile", echo_handler(b"new"))
        mdp.wait_for_service(context, broker.client_endpoint, "fragile")
        assert client.request("fragile", [b"again"], timeout=5).body == [b"new", b"again"]
    finally:
        client.close()
        worker.kill()


def test_redispatch_to_second_worker(context, start_broker, workers):
    broker = start_broker(services={"durable": {"redispatch": True}})
    first = mdp.Worker(context, broker.worker_endpoint, "durable", heartbeat=0.1)
    client = mdp.Client(context, broker.client_endpoint, mode="dealer")
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "durable")
        body = [b"important", b"\x00\x01"]
        client.send("durable", body)
        request = first.recv(timeout=5)
        assert request.body == body
        second = start_worker(context, broker, workers, "durable", echo_handler(b"second"))
        first.kill()  # dies without replying or saying goodbye
        reply = client.recv(timeout=4)
        assert not reply.is_error, reply
        assert reply.body == [b"second"] + body
        assert second.handled == 1
        assert client.socket.poll(200) == 0
    finally:
        client.close()
        first.kill()


def test_worker_disconnect_unregisters(context, broker):
    worker = mdp.Worker(context, broker.worker_endpoint, "leaving", heartbeat=0.1)
    mdp.wait_for_service(context, broker.client_endpoint, "leaving")
    worker.disconnect()
    client = mdp.Client(context, broker.client_endpoint)
    try:
        deadline = time.monotonic() + 2
        while client.request("mmi.service", ["leaving"], timeout=2).body != [b"404"]:
            assert time.monotonic() < deadline, "worker still registered after DISCONNECT"
            time.sleep(0.01)
    finally:
        client.close()


def test_broker_heartbeats_and_expires_silent_worker(context, broker):
    # A well-behaved worker sees the broker's HEARTBEATs.
    live = mdp.Worker(context, broker.worker_endpoint, "beating", heartbeat=0.1)
    # A worker that sends READY and then never speaks again.
    silent = context.socket(zmq.DEALER)
    silent.setsockopt(zmq.LINGER, 0)
    silent.connect(broker.worker_endpoint)
    silent.send_multipart([b"", mdp.WORKER_HEADER, mdp.READY, b"mute"])
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "mute")
        live.pump(0.6)  # 6 broker heartbeat intervals
        assert live.heartbeats_received >= 2
        client = mdp.Client(context, broker.client_endpoint)
        try:
            deadline = time.monotonic() + 3
            while client.request("mmi.service", ["mute"], timeout=2).body != [b"404"]:
                assert time.monotonic() < deadline, "silent worker never expired"
                time.sleep(0.02)
            assert client.request("mmi.service", ["beating"], timeout=2).body == [b"200"]
        finally:
            client.close()
        # The broker says DISCONNECT to the worker it expired (RFC 7 allows it).
        got = []
        while silent.poll(100):
            got.append(silent.recv_multipart())
        assert [b"", mdp.WORKER_HEADER, mdp.DISCONNECT] in got, got
    finally:
        silent.close(linger=0)
        live.disconnect()


# --------------------------------------------------------------------------
# Many peers


def test_many_clients_many_workers(context, broker, workers):
    n_clients, n_workers, n_requests = 4, 3, 50
    threads = [start_worker(context, broker, workers, "multi", echo_handler(f"w{i}".encode()),
                            name=f"w{i}") for i in range(n_workers)]
    mdp.wait_for_service(context, broker.client_endpoint, "multi")
    errors = []
    answered_by = {}

    def run_client(index: int) -> None:
        # Clients 0-1 are REQ (one at a time); 2-3 are DEALER and pipeline
        # all their requests before reading the replies.
        mode = "req" if index < 2 else "dealer"
        client = mdp.Client(context, broker.client_endpoint, mode=mode)
        rng = random.Random(index)
        try:
            def body_for(seq):
                return [f"c{index}".encode(), str(seq).encode(),
                        bytes(rng.getrandbits(8) for _ in range(16)) + b"\x00"]
            if mode == "req":
                for seq in range(n_requests):
                    body = body_for(seq)
                    reply = client.request("multi", body, timeout=10)
                    assert reply.body[1:] == body, (index, seq, reply)
                    answered_by.setdefault(reply.body[0], 0)
                    answered_by[reply.body[0]] += 1
            else:
                sent = {}
                for seq in range(n_requests):
                    body = body_for(seq)
                    sent[seq] = body
                    client.send("multi", body)
                for _ in range(n_requests):
                    reply = client.recv(timeout=10)
                    assert reply.service == b"multi" and not reply.is_error, reply
                    assert reply.body[1] == f"c{index}".encode(), "reply for another client"
                    seq = int(reply.body[2])
                    assert reply.body[1:] == sent.pop(seq)
                    answered_by.setdefault(reply.body[0], 0)
                    answered_by[reply.body[0]] += 1
                assert not sent
            assert client.socket.poll(100) == 0, "extra reply"
        except BaseException as e:  # noqa: BLE001 - reported on the main thread
            errors.append((index, e))
        finally:
            client.close()

    clients = [threading.Thread(target=run_client, args=(i,)) for i in range(n_clients)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(30)
    assert not any(t.is_alive() for t in clients), "client thread hung"
    assert not errors, errors
    assert sum(t.handled for t in threads) == n_clients * n_requests
    assert sum(answered_by.values()) == n_clients * n_requests
    assert all(t.handled > 0 for t in threads), [t.handled for t in threads]


# --------------------------------------------------------------------------
# Garbage


CLIENT_GARBAGE = [
    [b"hello"],
    [b""],
    [b"", b""],
    [b"MDPC01"],
    [b"", b"MDPC01"],
    [b"MDPC02", b"echo", b"x"],
    [b"", b"MDPC0", b"echo"],
    [b"", b"MDPW01", mdp.READY, b"echo"],
    [b"", b"MDPC01", b""],  # empty service name
    [b"\x00" * 1000],
    [b"\xff" * 7, b"\x00", b"\x01"],
]

WORKER_GARBAGE = [
    [b"hello"],
    [b""],
    [b"", b""],
    [b"", b"MDPW01"],
    [b"", b"MDPW01", b""],
    [b"", b"MDPW01", b"\x09"],
    [b"", b"MDPW01", b"\x01\x02", b"echo"],
    [b"", b"MDPW01", mdp.READY],
    [b"", b"MDPW01", mdp.READY, b""],
    [b"", b"MDPW01", mdp.READY, b"mmi.service"],
    [b"", b"MDPW01", mdp.REQUEST, b"12345678", b"", b"x"],
    [b"", b"MDPW01", mdp.REPLY],
    [b"", b"MDPW01", mdp.REPLY, b"12345678"],
    [b"", b"MDPW01", mdp.REPLY, b"12345678", b"", b"x"],
    [b"", b"MDPW01", mdp.HEARTBEAT],
    [b"", b"MDPW01", mdp.DISCONNECT],
    [b"", b"MDPC01", b"echo", b"x"],
    [b"\x00" * 1000],
]


def test_garbage_does_not_crash_broker(context, broker, workers):
    # ZMTP peers sending non-MDP frames to both endpoints.
    for endpoint, garbage in ((broker.client_endpoint, CLIENT_GARBAGE),
                              (broker.worker_endpoint, WORKER_GARBAGE)):
        for frames in garbage:
            raw = context.socket(zmq.DEALER)
            raw.setsockopt(zmq.LINGER, 0)
            raw.connect(endpoint)
            raw.send_multipart(frames)
            raw.poll(20)  # let it be read; whatever comes back is ignored
            raw.close(linger=0)
    # One connection sending all of it in a row, too.
    for endpoint, garbage in ((broker.client_endpoint, CLIENT_GARBAGE),
                              (broker.worker_endpoint, WORKER_GARBAGE)):
        raw = context.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(endpoint)
        for frames in garbage:
            raw.send_multipart(frames)
        raw.poll(50)
        raw.close(linger=0)
    # A registered worker that starts talking nonsense.
    rogue = mdp.Worker(context, broker.worker_endpoint, "rogue", heartbeat=0.1, reconnect=False)
    mdp.wait_for_service(context, broker.client_endpoint, "rogue")
    rogue.send_raw([b"", b"MDPW01", b"\x42", b"??"])
    # Not even ZMTP: raw bytes on the TCP ports.
    rng = random.Random(1)
    for port in (broker.client_port, broker.worker_port):
        for payload in (b"GET / HTTP/1.0\r\n\r\n", bytes(rng.getrandbits(8) for _ in range(4096)),
                        b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL" + b"\x00" * 300):
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                try:
                    s.sendall(payload)
                except OSError:
                    pass  # the broker may hang up on us first
    rogue.kill()

    assert broker.alive(), broker.log()
    start_worker(context, broker, workers, "echo", echo_handler(b"still here"))
    mdp.wait_for_service(context, broker.client_endpoint, "echo")
    for mode in MODES:
        client = mdp.Client(context, broker.client_endpoint, mode=mode)
        try:
            reply = client.request("echo", [b"ping"], timeout=5)
            assert reply.body == [b"still here", b"ping"]
        finally:
            client.close()
    assert broker.alive(), broker.log()


# --------------------------------------------------------------------------
# Queueing, limits, misbehaving peers


def test_unknown_service_queue_mode(context, start_broker, workers):
    broker = start_broker(broker={"unknown_service": "queue", "request_timeout": "3s"})
    client = mdp.Client(context, broker.client_endpoint, mode="dealer")
    try:
        client.send("later", [b"queued"])
        assert client.socket.poll(200) == 0, "queued request answered without a worker"
        start_worker(context, broker, workers, "later", echo_handler(b"arrived"))
        reply = client.recv(timeout=3)
        assert reply.body == [b"arrived", b"queued"]
    finally:
        client.close()


def test_queue_limit_429(context, start_broker, workers):
    broker = start_broker(services={"small": {"max_queued_requests": 2}})
    client = mdp.Client(context, broker.client_endpoint, mode="dealer")
    try:
        for i in range(3):
            client.send("small", [str(i).encode()])
        refused = client.recv(timeout=2)  # the third one, at once
        assert refused.is_error and refused.code == 429, refused
        start_worker(context, broker, workers, "small", echo_handler(b"w"))
        bodies = sorted(client.recv(timeout=3).body for _ in range(2))
        assert bodies == [[b"w", b"0"], [b"w", b"1"]]
    finally:
        client.close()


def test_declared_service_without_worker_503(context, start_broker):
    broker = start_broker(services={"nobody": {"request_timeout": "300ms"}})
    client = mdp.Client(context, broker.client_endpoint, mode="req")
    try:
        started = time.monotonic()
        reply = client.request("nobody", [b"x"], timeout=3)
        elapsed = time.monotonic() - started
        assert reply.is_error and reply.code == 503, reply
        assert 0.25 <= elapsed < 2, elapsed
    finally:
        client.close()


def test_oversized_reply_gets_413(context, start_broker, workers):
    broker = start_broker(broker={"max_message_size": "1KiB"})
    start_worker(context, broker, workers, "blow", lambda r: [b"z" * 2048])
    mdp.wait_for_service(context, broker.client_endpoint, "blow")
    client = mdp.Client(context, broker.client_endpoint)
    try:
        reply = client.request("blow", [b"x"], timeout=5)
        assert reply.is_error and reply.code == 413, reply
    finally:
        client.close()


def test_redispatch_happens_only_once(context, start_broker):
    broker = start_broker(services={"durable": {"redispatch": True}})
    first = mdp.Worker(context, broker.worker_endpoint, "durable", heartbeat=0.1)
    second = None
    client = mdp.Client(context, broker.client_endpoint, mode="dealer")
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "durable")
        client.send("durable", [b"cursed"])
        first.recv(timeout=5)
        second = mdp.Worker(context, broker.worker_endpoint, "durable", heartbeat=0.1)
        first.kill()
        assert second.recv(timeout=3).body == [b"cursed"]
        second.kill()
        reply = client.recv(timeout=3)
        assert reply.is_error and reply.code == 502, reply
    finally:
        client.close()
        first.kill()
        if second is not None:
            second.kill()


def test_client_gone_before_reply(context, broker, workers):
    worker = mdp.Worker(context, broker.worker_endpoint, "echo", heartbeat=0.1)
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "echo")
        for mode in MODES:
            gone = mdp.Client(context, broker.client_endpoint, mode=mode)
            gone.send("echo", [b"bye"])
            request = worker.recv(timeout=5)
            gone.close()
            worker.pump(0.1)
            worker.reply(request.address, [b"nobody listens"])
        # The broker dropped the replies and still routes.
        client = mdp.Client(context, broker.client_endpoint, mode="dealer")
        try:
            client.send("echo", [b"hi"])
            request = worker.recv(timeout=5)
            worker.reply(request.address, request.body)
            assert client.recv(timeout=5).body == [b"hi"]
        finally:
            client.close()
        assert broker.alive()
    finally:
        worker.disconnect()


def test_reply_with_wrong_address_does_not_orphan_request(context, start_broker):
    """A worker that sends a REPLY with an address it was never given, then the
    right REPLY. The broker may drop the bogus reply (and deliver the right one)
    or treat the worker as broken (502/redispatch), but the client must not be
    left waiting for request_timeout with its answer thrown away."""
    broker = start_broker(broker={"request_timeout": "3s"})
    worker = mdp.Worker(context, broker.worker_endpoint, "echo", heartbeat=0.1)
    client = mdp.Client(context, broker.client_endpoint, mode="dealer")
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "echo")
        client.send("echo", [b"real"])
        request = worker.recv(timeout=5)
        bogus = bytes(b ^ 0xFF for b in request.address)
        worker.reply(bogus, [b"bogus"])
        worker.pump(0.1)
        worker.reply(request.address, [b"right"])
        started = time.monotonic()
        try:
            reply = client.recv(timeout=1.5)
        except mdp.MdpTimeout:
            reply = client.recv(timeout=3)
            pytest.fail(f"client got {reply} after {time.monotonic() - started:.2f}s "
                        "instead of the worker's reply")
        assert reply.body == [b"right"] or (reply.is_error and reply.code == 502), reply
    finally:
        client.close()
        worker.kill()


def _raw_worker(context, endpoint):
    raw = context.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(endpoint)
    return raw


def _wait_for_disconnect(raw, timeout=2.0):
    """Reads worker-side messages until DISCONNECT; heartbeats are skipped."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if raw.poll(50):
            frames = raw.recv_multipart()
            seen.append(frames)
            if frames == [b"", mdp.WORKER_HEADER, mdp.DISCONNECT]:
                return
    pytest.fail(f"no DISCONNECT from the broker; got {seen!r}")


def test_unregistered_worker_commands_get_disconnect(context, broker):
    """RFC 7: a command other than READY from an unknown worker is answered with DISCONNECT."""
    for command in ([mdp.HEARTBEAT], [mdp.REPLY, b"\x00" * 8, b"", b"x"]):
        raw = _raw_worker(context, broker.worker_endpoint)
        try:
            raw.send_multipart([b"", mdp.WORKER_HEADER, *command])
            _wait_for_disconnect(raw)
        finally:
            raw.close(linger=0)


def test_ready_twice_is_a_protocol_error(context, broker):
    raw = _raw_worker(context, broker.worker_endpoint)
    try:
        raw.send_multipart([b"", mdp.WORKER_HEADER, mdp.READY, b"twice"])
        mdp.wait_for_service(context, broker.client_endpoint, "twice")
        raw.send_multipart([b"", mdp.WORKER_HEADER, mdp.READY, b"twice"])
        _wait_for_disconnect(raw)
        client = mdp.Client(context, broker.client_endpoint)
        try:
            assert client.request("mmi.service", ["twice"], timeout=2).body == [b"404"]
        finally:
            client.close()
    finally:
        raw.close(linger=0)


def test_services_do_not_cross(context, broker, workers):
    services = [b"alpha", b"beta", b"gamma"]
    for name in services:
        for n in range(2):
            start_worker(context, broker, workers, name, echo_handler(name + b"/%d" % n))
        mdp.wait_for_service(context, broker.client_endpoint, name)
    client = mdp.Client(context, broker.client_endpoint, mode="dealer")
    try:
        for i in range(30):
            client.send(services[i % 3], [b"%d" % i])
        for _ in range(30):
            reply = client.recv(timeout=5)
            i = int(reply.body[1])
            assert reply.service == services[i % 3]
            assert reply.body[0].split(b"/")[0] == services[i % 3], reply
    finally:
        client.close()


def test_zguard_echo_worker_stops_on_sigterm(context, broker):
    proc = subprocess.Popen(
        [ZGUARD_BIN, "echo-worker", "--connect", broker.worker_endpoint, "--service", "term",
         "--heartbeat", "100ms"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "term")
        client = mdp.Client(context, broker.client_endpoint, mode="req")
        try:
            assert client.request("term", [b"\x00x\x00"], timeout=5).body == [b"\x00x\x00"]
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=5)
            assert proc.returncode == 0, err
            deadline = time.monotonic() + 3
            while client.request("mmi.service", ["term"], timeout=2).body != [b"404"]:
                assert time.monotonic() < deadline, "echo-worker did not DISCONNECT"
                time.sleep(0.02)
        finally:
            client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
