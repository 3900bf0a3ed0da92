"""Fixtures for the zguard interop and CLI tests.

Each test that needs a broker gets its own `zguard serve` subprocess on fresh
loopback ports with a config written to the test's tmp_path; it is always
killed at teardown. The binary comes from $ZGUARD_BIN (default: the CMake
build tree).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mdp  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ZGUARD_BIN = os.environ.get("ZGUARD_BIN", str(REPO / "build" / "broker" / "zguard"))

# Broker settings used unless a test overrides them: short heartbeats so that
# tests waiting on worker expiry stay fast.
DEFAULT_BROKER = {
    "io_threads": 1,
    "heartbeat_interval": "100ms",
    "heartbeat_liveness": 3,
    "request_timeout": "5s",
    "max_message_size": "1MiB",
    "shutdown_grace": "5s",
    "unknown_service": "reject",
    "max_queued_requests": 10000,
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_ports(names) -> Dict[str, int]:
    """A distinct free loopback port for each name (free_port alone may repeat one)."""
    ports: Dict[str, int] = {}
    for name in names:
        port = free_port()
        while port in ports.values():
            port = free_port()
        ports[name] = port
    return ports


def wait_port(port: int, deadline: float, proc: Optional[subprocess.Popen] = None) -> None:
    """Polls until 127.0.0.1:port accepts a TCP connection or `deadline` passes."""
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"port {port} did not open in time")
            time.sleep(0.01)


def _yaml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def make_config(client_port: int, worker_port: int, broker: Optional[Dict] = None,
                services: Optional[Dict[str, Dict]] = None, log_level: str = "info",
                log_format: str = "text") -> str:
    """Renders a zguard YAML config (the format of config/zguard.yaml)."""
    settings = dict(DEFAULT_BROKER)
    settings.update(broker or {})
    lines = ["broker:"]
    lines += [f"  {key}: {_yaml_scalar(value)}" for key, value in settings.items()]
    lines.append(f"log: {{ level: {log_level}, format: {log_format} }}")
    lines += [
        "endpoints:",
        "  - name: public",
        f"    bind: tcp://127.0.0.1:{client_port}",
        "    role: clients",
        "    profile: grasslands",
        "  - name: workers",
        f"    bind: tcp://127.0.0.1:{worker_port}",
        "    role: workers",
        "    profile: grasslands",
    ]
    if services:
        lines.append("services:")
        for name, options in services.items():
            if options:
                inner = ", ".join(f"{k}: {_yaml_scalar(v)}" for k, v in options.items())
                lines.append(f"  {name}: {{ {inner} }}")
            else:
                lines.append(f"  {name}: {{}}")
    return "\n".join(lines) + "\n"


class BrokerProcess:
    """A running `zguard serve`."""

    def __init__(self, config_path: Path, client_port: int, worker_port: int, log_path: Path):
        self.config_path = config_path
        self.client_port = client_port
        self.worker_port = worker_port
        self.client_endpoint = f"tcp://127.0.0.1:{client_port}"
        self.worker_endpoint = f"tcp://127.0.0.1:{worker_port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([ZGUARD_BIN, "serve", "-c", str(config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        try:
            wait_port(self.client_port, deadline, self.proc)
            wait_port(self.worker_port, deadline, self.proc)
        except Exception as e:
            raise RuntimeError(f"zguard serve did not come up: {e}\n{self.log()}") from e

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._log.close()


@pytest.fixture
def zguard_bin() -> str:
    if not os.access(ZGUARD_BIN, os.X_OK):
        pytest.fail(f"zguard binary not found at {ZGUARD_BIN} (set ZGUARD_BIN)")
    return ZGUARD_BIN


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def start_broker(tmp_path, zguard_bin):
    """Factory: start_broker(broker={...}, services={...}) -> BrokerProcess (ready)."""
    started: List[BrokerProcess] = []

    def start(broker: Optional[Dict] = None, services: Optional[Dict[str, Dict]] = None,
              log_level: str = "info", log_format: str = "text") -> BrokerProcess:
        client_port, worker_port = free_port(), free_port()
        while worker_port == client_port:
            worker_port = free_port()
        n = len(started)
        config_path = tmp_path / f"zguard-{n}.yaml"
        config_path.write_text(make_config(client_port, worker_port, broker, services,
                                           log_level, log_format))
        process = BrokerProcess(config_path, client_port, worker_port,
                                tmp_path / f"zguard-{n}.log")
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def broker(start_broker) -> BrokerProcess:
    """A broker with the default test settings and no declared services."""
    return start_broker()


@pytest.fixture
def workers():
    """Collects WorkerThreads and always stops them at teardown."""
    running: List[mdp.WorkerThread] = []
    yield running
    errors = []
    for thread in running:
        try:
            thread.stop()
        except BaseException as e:  # noqa: BLE001 - report all of them
            errors.append(e)
    if errors:
        raise errors[0]



# --------------------------------------------------------------------------
# Hand-written configs (security tests) and helper processes.


class ConfigBroker(BrokerProcess):
    """A `zguard serve` on a config the test wrote itself, with any endpoints.

    `ports` maps endpoint name -> loopback port; all of them must open before
    the broker counts as ready.
    """

    def __init__(self, config_path: Path, ports: Dict[str, int], log_path: Path):
        self.ports = dict(ports)
        first, *rest = list(self.ports.values())
        super().__init__(config_path, first, rest[0] if rest else first, log_path)

    def endpoint(self, name: str) -> str:
        return f"tcp://127.0.0.1:{self.ports[name]}"

    def wait_ready(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        try:
            for port in self.ports.values():
                wait_port(port, deadline, self.proc)
        except Exception as e:
            raise RuntimeError(f"zguard serve did not come up: {e}\n{self.log()}") from e

    def wait_log(self, text: str, timeout: float = 5.0) -> str:
        """Waits until `text` appears in the broker's output; returns the output."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if text in log:
                return log
            if time.monotonic() >= deadline:
                raise AssertionError(f"{text!r} not in the broker log:\n{log}")
            time.sleep(0.02)


@pytest.fixture
def serve_config(tmp_path, zguard_bin):
    """Factory: serve_config(config_path, {endpoint: port}) -> ConfigBroker (ready)."""
    started: List[ConfigBroker] = []

    def start(config_path: Path, ports: Dict[str, int], timeout: float = 5.0) -> ConfigBroker:
        process = ConfigBroker(config_path, ports, tmp_path / f"serve-{len(started)}.log")
        started.append(process)
        process.wait_ready(timeout)
        return process

    yield start
    for process in started:
        process.kill()


class HelperProcess:
    """A background zguard subcommand (e.g. echo-worker) with its output in a file."""

    def __init__(self, args: List[str], log_path: Path):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def spawn(tmp_path, zguard_bin):
    """Factory: spawn(name, *zguard_args) -> HelperProcess; stopped at teardown."""
    running: List[HelperProcess] = []

    def start(name: str, *args: str) -> HelperProcess:
        process = HelperProcess([zguard_bin, *args], tmp_path / f"{name}.log")
        running.append(process)
        return process

    yield start
    for process in running:
        process.stop()
