"""Fixtures for the deployment tests: a private Docker engine and the images of deploy/.

No registry is reachable, so the session makes its own base image: debootstrap a Debian 12
minbase, import it as debian:bookworm-slim (the Dockerfiles keep their normal FROM line), and
build with the legacy builder on a dockerd of its own: no bridge, no iptables, its own data
root and socket. Every container runs with host networking and binds 127.0.0.1 ports the test
picks. Teardown removes the containers and images, stops the daemon by PID and deletes the
temporary folder.

Needs root, and the packages docker.io, docker-compose and debootstrap (`bash .ci/deps`
installs them); `ctest -LE deploy` leaves these tests out. ZGUARD_DEPLOY_CACHE=DIR keeps the
base root filesystem and the engine's layer cache in DIR between runs (local iteration only).
Timings and the image size go to $ZGUARD_DEPLOY_REPORT (JSON) when it is set.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
ZGUARD_BIN = os.environ.get("ZGUARD_BIN", str(REPO / "build" / "broker" / "zguard"))
IMAGE = "zguard:test"
BASE_IMAGE = "debian:bookworm-slim"
CONTAINER_PREFIX = "zguard-test-"
REPORT: Dict[str, object] = {}

sys.path.insert(0, str(REPO / "tests" / "interop"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> List[int]:
    ports: List[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def http_get(url: str, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def wait_until(what: str, check, timeout: float, interval: float = 0.2):
    """Calls check() until it returns a true value; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_error = e
        time.sleep(interval)
    pytest.fail(f"{what}: not within {timeout} s (last error: {last_error!r})")


def zguard(*args, timeout: float = 20, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([ZGUARD_BIN, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kwargs)


def keygen(name: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    result = zguard("keygen", name, "--dir", str(folder))
    assert result.returncode == 0, result.stderr


def _debian_mirror() -> str:
    """The Debian mirror the host's apt uses (this machine may reach no other)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


class Engine:
    """A private dockerd and the CLI pointed at it."""

    def __init__(self, root: Path, cache: Optional[Path]):
        self.root = root
        self.cache = cache
        self.socket = root / "docker.sock"
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.socket}")
        # Debian's client matches Debian's daemon; any newer client negotiates down.
        self.docker_bin = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
        self.process: Optional[subprocess.Popen] = None
        self._log = None

    def start(self) -> None:
        data = (self.cache / "docker-data") if self.cache else (self.root / "data")
        data.mkdir(parents=True, exist_ok=True)
        self._log = open(self.root / "dockerd.log", "wb")
        self.process = subprocess.Popen(
            ["dockerd", "--bridge", "none", "--iptables=false", "--ip6tables=false",
             "--data-root", str(data), "--exec-root", str(self.root / "exec"),
             "-H", f"unix://{self.socket}", "--pidfile", str(self.root / "dockerd.pid")],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_until("dockerd answers",
                   lambda: self.docker("version", check=False, timeout=5).returncode == 0, 30)

    def docker(self, *args, check: bool = True, timeout: float = 120,
               **kwargs) -> subprocess.CompletedProcess:
        result = subprocess.run([self.docker_bin, *args], capture_output=True, text=True,
                                env=self.env, timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def compose(self, *args, check: bool = True, timeout: float = 600,
                env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker-compose", *args], capture_output=True, text=True,
                                env=dict(self.env, **(env or {})), timeout=timeout,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed "
                                 f"({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def remove_containers(self) -> None:
        names = self.docker("ps", "-aq", check=False).stdout.split()
        if names:
            self.docker("rm", "-f", *names, check=False)

    def stop(self) -> None:
        if self.process is None:
            return
        self.remove_containers()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
        # Anything the daemon left mounted under our folders (overlays, netns).
        roots = [str(self.root)] + ([str(self.cache)] if self.cache else [])
        with open("/proc/mounts") as mounts:
            points = [line.split()[1] for line in mounts]
        for point in sorted((p for p in points if any(p.startswith(r) for r in roots)),
                            reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)

    def log(self) -> str:
        return (self.root / "dockerd.log").read_text(errors="replace")


def _missing_requirements() -> List[str]:
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (dockerd, debootstrap)")
    for tool in ("dockerd", "docker-compose", "debootstrap"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found")
    if not os.access(ZGUARD_BIN, os.X_OK):
        problems.append(f"zguard binary not found at {ZGUARD_BIN} (set ZGUARD_BIN)")
    return problems


def _import_base_image(engine: Engine) -> None:
    if engine.docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
        return
    tarball = (engine.cache / "rootfs.tar") if engine.cache else (engine.root / "rootfs.tar")
    if not tarball.exists():
        rootfs = engine.root / "rootfs"
        started = time.monotonic()
        result = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs),
                                 _debian_mirror()], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"debootstrap failed:\n{result.stdout[-3000:]}"
        # The host's apt sources (updates and security too), so images get the same packages.
        for source in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
            if os.path.exists(source):
                shutil.copy(source, rootfs / source.lstrip("/"))
                if source.endswith("debian.sources"):
                    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        shutil.rmtree(rootfs)
        REPORT["debootstrap_seconds"] = round(time.monotonic() - started, 1)
    with open(tarball, "rb") as data:
        engine.docker("import", "-", BASE_IMAGE, stdin=data, timeout=300)


def _stop_on_sigterm(signum, frame):
    # ctest's timeout and CI cancellations send SIGTERM: unwind so that the fixtures below
    # still remove containers and stop the daemon.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def engine():
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    problems = _missing_requirements()
    if problems:
        pytest.fail("deployment tests cannot run: " + "; ".join(problems)
                    + " (bash .ci/deps installs the packages; ctest -LE deploy skips these)")
    cache_dir = os.environ.get("ZGUARD_DEPLOY_CACHE")
    cache = Path(cache_dir).resolve() if cache_dir else None
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    # Short path: the daemon's sockets live under it.
    root = Path(tempfile.mkdtemp(prefix="zgd-", dir="/tmp"))
    engine = Engine(root, cache)
    try:
        started = time.monotonic()
        engine.start()
        REPORT["dockerd_ready_seconds"] = round(time.monotonic() - started, 2)
        _import_base_image(engine)
        yield engine
    finally:
        try:
            if engine.process is not None and engine.process.poll() is None and not cache:
                for image in engine.docker("images", "-q", check=False).stdout.split():
                    engine.docker("rmi", "-f", image, check=False)
        finally:
            engine.stop()
            shutil.rmtree(root, ignore_errors=True)
            report = os.environ.get("ZGUARD_DEPLOY_REPORT")
            if report:
                Path(report).write_text(json.dumps(REPORT, indent=2) + "\n")


@pytest.fixture(scope="session")
def zguard_image(engine) -> str:
    started = time.monotonic()
    result = engine.docker("build", "--network", "host", "-f", str(REPO / "deploy/Dockerfile"),
                           "-t", IMAGE, str(REPO), timeout=1200)
    REPORT["image_build_seconds"] = round(time.monotonic() - started, 1)
    size = int(engine.docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
    base = int(engine.docker("image", "inspect", "-f", "{{.Size}}", BASE_IMAGE).stdout)
    REPORT["image_size_mb"] = round(size / 1e6, 1)
    REPORT["image_size_over_base_mb"] = round((size - base) / 1e6, 1)
    assert "Successfully tagged " + IMAGE in result.stdout, result.stdout[-2000:]
    return IMAGE


@pytest.fixture
def container_names(engine):
    """Names handed out here are removed at teardown, whatever the test did."""
    names: List[str] = []

    def make(role: str) -> str:
        name = f"{CONTAINER_PREFIX}{role}-{os.getpid()}-{len(names)}"
        names.append(name)
        return name

    yield make
    for name in names:
        engine.docker("rm", "-f", name, check=False)
