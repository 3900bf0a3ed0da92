"""A small, independent Majordomo (MDP/0.1, ZeroMQ RFC 7) client and worker.

Written from the RFC text, not from zguard's C++ code, so that the interop tests
exercise the broker against a second implementation of the protocol:

* Client (RFC 7 "Client Protocol"): sends [MDPC01][service][body...] and gets
  back [MDPC01][service][body...]. Over a REQ socket the empty delimiter is
  added and stripped by libzmq; over a DEALER socket this module adds and
  checks it itself, exactly as RFC 7 shows the frames "on the wire".
* Worker (RFC 7 "Worker Protocol"): a DEALER socket speaking
  [""][MDPW01][command][...]: READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT.

zguard's error-reply extension ([MDPC01][service]["zguard.error"][code][reason])
and MMI (RFC 8) replies are decoded into `Reply` as well.

Every receive is bounded by a timeout: nothing here blocks forever.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import zmq

CLIENT_HEADER = b"MDPC01"
WORKER_HEADER = b"MDPW01"

READY = b"\x01"
REQUEST = b"\x02"
REPLY = b"\x03"
HEARTBEAT = b"\x04"
DISCONNECT = b"\x05"

ERROR_MARKER = b"zguard.error"


class MdpTimeout(Exception):
    """No (complete) message arrived before the deadline."""


class MdpProtocolError(Exception):
    """The peer sent frames that do not follow RFC 7."""


def _to_frames(body: Sequence) -> List[bytes]:
    out = []
    for part in body:
        out.append(part.encode() if isinstance(part, str) else bytes(part))
    return out


@dataclass
class Reply:
    service: bytes
    body: List[bytes]
    # zguard error reply (body[0] == b"zguard.error")
    is_error: bool = False
    code: int = 200
    reason: str = ""


def parse_reply(frames: List[bytes]) -> Reply:
    """Decodes [MDPC01][service][body...] (delimiter already removed)."""
    if len(frames) < 2:
        raise MdpProtocolError(f"reply has {len(frames)} frame(s), need at least 2: {frames!r}")
    if frames[0] != CLIENT_HEADER:
        raise MdpProtocolError(f"reply header is {frames[0]!r}, expected {CLIENT_HEADER!r}")
    reply = Reply(service=frames[1], body=list(frames[2:]))
    if reply.body and reply.body[0] == ERROR_MARKER:
        if len(reply.body) != 3:
            raise MdpProtocolError(f"error reply must have 3 body frames: {reply.body!r}")
        reply.is_error = True
        reply.code = int(reply.body[1].decode("ascii"))
        reply.reason = reply.body[2].decode("utf-8", "replace")
    return reply


def poll_recv(socket: zmq.Socket, timeout: float) -> List[bytes]:
    """Receives one multipart message or raises MdpTimeout after `timeout` seconds."""
    if socket.poll(int(max(0.0, timeout) * 1000), zmq.POLLIN) == 0:
        raise MdpTimeout(f"nothing received within {timeout:.3f}s")
    return socket.recv_multipart()


class Client:
    """An MDP client over REQ (zguide style) or DEALER (explicit delimiter)."""

    def __init__(self, context: zmq.Context, endpoint: str, mode: str = "dealer",
                 identity: Optional[bytes] = None):
        if mode not in ("req", "dealer"):
            raise ValueError(f"mode must be 'req' or 'dealer', got {mode!r}")
        self.context = context
        self.endpoint = endpoint
        self.mode = mode
        self.identity = identity
        self.socket: Optional[zmq.Socket] = None
        self._connect()

    def _connect(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
        kind = zmq.REQ if self.mode == "req" else zmq.DEALER
        self.socket = self.context.socket(kind)
        self.socket.setsockopt(zmq.LINGER, 0)
        if self.identity is not None:
            self.socket.setsockopt(zmq.ROUTING_ID, self.identity)
        self.socket.connect(self.endpoint)

    def send(self, service, body: Sequence = ()) -> None:
        frames = [CLIENT_HEADER] + _to_frames([service]) + _to_frames(body)
        if self.mode == "dealer":
            frames.insert(0, b"")  # what REQ would add on the wire
        self.socket.send_multipart(frames)

    def recv(self, timeout: float = 5.0) -> Reply:
        try:
            frames = poll_recv(self.socket, timeout)
        except MdpTimeout:
            if self.mode == "req":
                # A REQ socket that never got its reply cannot send again: the
                # "lazy pirate" way out is a fresh socket.
                self._connect()
            raise
        if self.mode == "dealer":
            if not frames or frames[0] != b"":
                raise MdpProtocolError(f"DEALER reply without empty delimiter: {frames!r}")
            frames = frames[1:]
        return parse_reply(frames)

    def request(self, service, body: Sequence = (), timeout: float = 5.0) -> Reply:
        service_bytes = _to_frames([service])[0]
        self.send(service_bytes, body)
        reply = self.recv(timeout)
        if reply.service != service_bytes:
            raise MdpProtocolError(
                f"reply for service {reply.service!r}, expected {service_bytes!r}")
        return reply

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None


@dataclass
class WorkerRequest:
    address: bytes  # opaque client address (envelope) to echo back
    body: List[bytes] = field(default_factory=list)


class Worker:
    """An MDP worker over DEALER.

    `recv(timeout)` returns the next REQUEST while keeping the heartbeat going;
    `pump(seconds)` only heartbeats (requests arriving meanwhile are kept for
    the next `recv`). Liveness follows RFC 7: any command from the broker
    counts as a heartbeat; after `liveness` silent intervals, or on DISCONNECT,
    the worker reconnects (if `reconnect` is true) with a fresh READY.
    """

    def __init__(self, context: zmq.Context, endpoint: str, service, heartbeat: float = 0.1,
                 liveness: int = 3, reconnect: bool = True, identity: Optional[bytes] = None):
        self.context = context
        self.endpoint = endpoint
        self.service = _to_frames([service])[0]
        self.heartbeat = heartbeat
        self.liveness = liveness
        self.reconnect = reconnect
        self.identity = identity
        self.socket: Optional[zmq.Socket] = None
        self.connections = 0
        self.disconnects_received = 0
        self.heartbeats_received = 0
        self._pending: List[WorkerRequest] = []
        self._connect()

    # -- wire ------------------------------------------------------------
    def _send(self, command: bytes, *frames: bytes) -> None:
        self.socket.send_multipart([b"", WORKER_HEADER, command, *frames])

    def _connect(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if self.identity is not None:
            self.socket.setsockopt(zmq.ROUTING_ID, self.identity)
        self.socket.connect(self.endpoint)
        self._send(READY, self.service)
        self.connections += 1
        self._liveness_left = self.liveness
        self._next_heartbeat = time.monotonic() + self.heartbeat

    def _handle(self, frames: List[bytes]) -> None:
        """Processes one message from the broker."""
        if len(frames) < 3 or frames[0] != b"" or frames[1] != WORKER_HEADER:
            raise MdpProtocolError(f"not an MDP worker message: {frames!r}")
        self._liveness_left = self.liveness
        command = frames[2]
        if command == REQUEST:
            if len(frames) < 5 or frames[4] != b"":
                raise MdpProtocolError(f"REQUEST without address and delimiter: {frames!r}")
            self._pending.append(WorkerRequest(address=frames[3], body=list(frames[5:])))
        elif command == HEARTBEAT:
            self.heartbeats_received += 1
        elif command == DISCONNECT:
            self.disconnects_received += 1
            if self.reconnect:
                self._connect()
        else:
            raise MdpProtocolError(f"unexpected command {command!r} from broker")

    def _tick(self, deadline: float, stop_when_pending: bool) -> None:
        while True:
            if stop_when_pending and self._pending:
                return
            now = time.monotonic()
            if now >= deadline:
                return
            wait = min(deadline, self._next_heartbeat) - now
            if self.socket.poll(max(0, int(wait * 1000)), zmq.POLLIN):
                # Drain whatever is there without blocking.
                while self.socket.poll(0, zmq.POLLIN):
                    self._handle(self.socket.recv_multipart())
                continue
            if time.monotonic() >= self._next_heartbeat:
                self._liveness_left -= 1
                if self._liveness_left <= 0 and self.reconnect:
                    self._connect()
                    continue
                self._send(HEARTBEAT)
                self._next_heartbeat = time.monotonic() + self.heartbeat

    # -- API -------------------------------------------------------------
    def recv(self, timeout: float = 5.0) -> WorkerRequest:
        self._tick(time.monotonic() + timeout, stop_when_pending=True)
        if not self._pending:
            raise MdpTimeout(f"no REQUEST within {timeout:.3f}s")
        return self._pending.pop(0)

    def pump(self, seconds: float) -> None:
        """Keeps heartbeating for `seconds` without handling requests."""
        self._tick(time.monotonic() + seconds, stop_when_pending=False)

    def reply(self, address: bytes, body: Sequence = ()) -> None:
        self._send(REPLY, address, b"", *_to_frames(body))
        self._next_heartbeat = time.monotonic() + self.heartbeat

    def send_raw(self, frames: Sequence[bytes]) -> None:
        self.socket.send_multipart(list(frames))

    def disconnect(self) -> None:
        """Polite goodbye: DISCONNECT, then close."""
        if self.socket is not None:
            self._send(DISCONNECT)
            self.socket.close(linger=200)
            self.socket = None

    def kill(self) -> None:
        """Simulates a crash: close the socket without telling the broker."""
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None

    close = kill


Handler = Callable[[WorkerRequest], Optional[Sequence]]


class WorkerThread:
    """Runs a Worker on its own thread (one socket per thread, as ZeroMQ wants).

    `handler(request)` returns the reply body, or None to send no reply.
    Errors raised on the thread are re-raised by `stop()`.
    """

    def __init__(self, context: zmq.Context, endpoint: str, service, handler: Handler,
                 heartbeat: float = 0.1, name: str = "worker"):
        self.context = context
        self.endpoint = endpoint
        self.service = service
        self.handler = handler
        self.heartbeat = heartbeat
        self.handled = 0
        self.addresses: List[bytes] = []
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "WorkerThread":
        self._thread.start()
        if not self._started.wait(5):
            raise RuntimeError("worker thread did not start")
        return self

    def _run(self) -> None:
        worker = None
        try:
            worker = Worker(self.context, self.endpoint, self.service, heartbeat=self.heartbeat)
            self._started.set()
            while not self._stop.is_set():
                try:
                    request = worker.recv(timeout=0.05)
                except MdpTimeout:
                    continue
                self.addresses.append(request.address)
                body = self.handler(request)
                self.handled += 1
                if body is not None:
                    worker.reply(request.address, body)
        except BaseException as e:  # reported by stop()
            self.error = e
            self._started.set()
        finally:
            if worker is not None:
                worker.disconnect()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("worker thread did not stop")
        if self.error is not None:
            raise self.error


def wait_for_service(context: zmq.Context, endpoint: str, service, timeout: float = 5.0) -> None:
    """Polls MMI (RFC 8) mmi.service until `service` has a registered worker."""
    client = Client(context, endpoint, mode="dealer")
    deadline = time.monotonic() + timeout
    try:
        while True:
            reply = client.request("mmi.service", [service], timeout=2.0)
            if reply.body == [b"200"]:
                return
            if time.monotonic() >= deadline:
                raise MdpTimeout(f"service {service!r} has no worker after {timeout}s")
            time.sleep(0.01)
    finally:
        client.close()
