"""The zguard command line: check, --version, help, call, serve (bind errors,
signals, missing config)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time

import pytest

import mdp
from conftest import REPO, ZGUARD_BIN, free_port, make_config, wait_port

SUBCOMMANDS = ["serve", "check", "call", "echo-worker", "health", "help"]


def run(*args, timeout=10, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([ZGUARD_BIN, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)


def diagnostics(stderr: str, path) -> list:
    """The `file:line:col: key: message` lines of `zguard check` output."""
    pattern = re.compile(r"^" + re.escape(str(path)) + r":(\d+):(\d+): (\S+): (.*)$")
    found = []
    for line in stderr.splitlines():
        m = pattern.match(line)
        if m and not line.endswith("(warning)"):
            found.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)))
    return found


# --------------------------------------------------------------------------
# check


def test_check_default_config(zguard_bin):
    result = run("check", "-c", "config/zguard.yaml", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "config/zguard.yaml: OK" in result.stdout
    # Without -c, from a checkout, the same file is the default.
    result = run("check", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "config/zguard.yaml: OK" in result.stdout


def test_check_generated_test_config(tmp_path, zguard_bin):
    path = tmp_path / "ok.yaml"
    path.write_text(make_config(free_port(), free_port(),
                                services={"a": {"redispatch": True, "request_timeout": "300ms"},
                                          "b": {}}))
    result = run("check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "OK (2 endpoints, 2 declared services)" in result.stdout


BAD_CONFIG = """\
broker:
  io_threads: 1
  heartbeat_interval: 10 parsecs
  colour: blue
log: { level: info, format: text }
endpoints:
  - name: public
    bind: tcp://127.0.0.1:5555
    role: clients
    profile: grasslands
  - name: public
    bind: tcp://127.0.0.1:5556
    role: workers
    profile: grasslands
  - name: extra
    bind: tcp://127.0.0.1:99999
    role: workers
    profile: grasslands
"""


def test_check_bad_config_reports_every_problem(tmp_path, zguard_bin):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    result = run("check", "-c", str(path))
    assert result.returncode == 1
    found = diagnostics(result.stderr, path)
    expected = [
        (3, "broker.heartbeat_interval", "10 parsecs"),
        (4, "broker.colour", "unknown key"),
        (11, "endpoints[1].name", "duplicate endpoint name"),
        (16, "endpoints[2].bind", "99999"),
    ]
    for line, key, text in expected:
        assert any(f[0] == line and f[2] == key and text in f[3] for f in found), \
            f"no {key} error on line {line} in:\n{result.stderr}"
    assert len(found) == len(expected), result.stderr
    assert f"{path}: {len(expected)} error(s)" in result.stderr


# One problem per file, on top of an otherwise valid config: exactly one
# diagnostic, on the right line, with the right key path.
GOOD_LINES = make_config(15555, 15556).splitlines()


def _line_of(needle: str) -> int:
    """0-based index of the first line of GOOD_LINES containing `needle`."""
    return next(i for i, line in enumerate(GOOD_LINES) if needle in line)


def _replace(needle: str, text: str):
    """(lines, 1-based line number) with the line containing `needle` replaced."""
    index = _line_of(needle)
    lines = list(GOOD_LINES)
    lines[index] = text
    return lines, index + 1


def _append(*extra: str):
    """(lines, 1-based number of the last appended line)."""
    lines = GOOD_LINES + list(extra)
    return lines, len(lines)


SINGLE_PROBLEMS = {
    # case: ((lines, line of the problem), key path, text in the message)
    "unknown-broker-key": (_replace("io_threads", "  io_threds: 1"),
                           "broker.io_threds", "unknown key"),
    "unknown-top-level-key": (_append("telemetry: {}"), "telemetry", "unknown key"),
    # GOOD_LINES ends with the last key of endpoints[1].
    "unknown-endpoint-key": (_append("    colour: blue"), "endpoints[1].colour", "unknown key"),
    "bad-duration": (_replace("request_timeout", "  request_timeout: 5 sec"),
                     "broker.request_timeout", "duration"),
    "bad-service-duration": (_append("services:", "  svc: { request_timeout: soon }"),
                             "services.svc.request_timeout", "duration"),
    "duplicate-endpoint-name": (_replace("name: workers", "  - name: public"),
                                "endpoints[1].name", "duplicate endpoint name"),
    "bad-bind-port": (_replace("15556", "    bind: tcp://127.0.0.1:99999"),
                      "endpoints[1].bind", "port"),
    "bad-bind-no-port": (_replace("15556", "    bind: tcp://127.0.0.1"),
                         "endpoints[1].bind", "tcp://127.0.0.1"),
    "bad-bind-scheme": (_replace("15556", "    bind: udp://127.0.0.1:15556"),
                        "endpoints[1].bind", "udp://127.0.0.1:15556"),
    "bad-bind-no-scheme": (_replace("15556", "    bind: 127.0.0.1:15556"),
                           "endpoints[1].bind", "127.0.0.1:15556"),
}

# grasslands (no security) on a non-loopback bind without allow_insecure: one
# error, and its line must be the line of the key it names (the bind line for
# endpoints[1].bind, the profile line for endpoints[1].profile).
NON_LOOPBACK_LINES, NON_LOOPBACK_BIND_LINE = _replace("15556", "    bind: tcp://0.0.0.0:15556")
NON_LOOPBACK_PROFILE_LINE = max(i for i, line in enumerate(NON_LOOPBACK_LINES)
                                if "profile:" in line) + 1


def test_check_grasslands_on_non_loopback_bind(tmp_path, zguard_bin):
    path = tmp_path / "open.yaml"
    path.write_text("\n".join(NON_LOOPBACK_LINES) + "\n")
    result = run("check", "-c", str(path))
    assert result.returncode == 1, result.stdout
    found = diagnostics(result.stderr, path)
    assert len(found) == 1, result.stderr
    line, _column, key, message = found[0]
    assert "allow_insecure" in message
    assert (key, line) in {("endpoints[1].bind", NON_LOOPBACK_BIND_LINE),
                           ("endpoints[1].profile", NON_LOOPBACK_PROFILE_LINE)}, \
        f"key {key} reported on line {line}: {result.stderr}"
    # allow_insecure: true turns it into a warning and the file is valid.
    path.write_text("\n".join(NON_LOOPBACK_LINES + ["    allow_insecure: true"]) + "\n")
    result = run("check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "(warning)" in result.stderr


@pytest.mark.parametrize("case", sorted(SINGLE_PROBLEMS))
def test_check_single_problem(tmp_path, zguard_bin, case):
    (lines, expected_line), key, text = SINGLE_PROBLEMS[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text("\n".join(lines) + "\n")
    result = run("check", "-c", str(path))
    assert result.returncode == 1, result.stdout
    found = diagnostics(result.stderr, path)
    assert len(found) == 1, f"expected exactly one error, got:\n{result.stderr}"
    line, _column, got_key, message = found[0]
    assert (line, got_key) == (expected_line, key), result.stderr
    assert text in message, result.stderr
    assert f"{path}: 1 error(s)" in result.stderr


def test_check_missing_file(tmp_path, zguard_bin):
    path = tmp_path / "does-not-exist.yaml"
    result = run("check", "-c", str(path))
    assert result.returncode == 1
    assert str(path) in result.stderr


# --------------------------------------------------------------------------
# --version, help


def test_version(zguard_bin):
    result = run("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"zguard \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout


def test_top_level_help_lists_subcommands(zguard_bin):
    result = run("--help")
    assert result.returncode == 0
    for sub in SUBCOMMANDS:
        assert re.search(rf"^\s+{re.escape(sub)}\s", result.stdout, re.M), result.stdout


def test_help_subcommand_lists_subcommands(zguard_bin):
    """`zguard help` is documented as "Show this help": the program's help."""
    result = run("help")
    assert result.returncode == 0
    assert "Usage: zguard" in result.stdout
    for sub in SUBCOMMANDS:
        assert re.search(rf"^\s+{re.escape(sub)}\s", result.stdout, re.M), result.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_subcommand_help(zguard_bin, sub):
    result = run(sub, "--help")
    assert result.returncode == 0, result.stderr
    assert f"Usage: zguard {sub}" in result.stdout


def test_no_subcommand_is_an_error(zguard_bin):
    result = run()
    assert result.returncode != 0
    assert "subcommand" in (result.stdout + result.stderr).lower()


# --------------------------------------------------------------------------
# call


def test_call_exit_codes(context, broker, workers, zguard_bin):
    thread = mdp.WorkerThread(context, broker.worker_endpoint, "echo",
                              lambda r: r.body, heartbeat=0.1).start()
    workers.append(thread)
    mdp.wait_for_service(context, broker.client_endpoint, "echo")

    ok = run("call", "--connect", broker.client_endpoint, "-t", "5s", "echo", "one", "two")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "one\ntwo\n"

    err = run("call", "--connect", broker.client_endpoint, "-t", "5s", "nosuch", "x")
    assert err.returncode == 1, (err.stdout, err.stderr)
    assert "error 404: unknown service" in err.stderr
    assert err.stdout == ""

    started = time.monotonic()
    nobody = f"tcp://127.0.0.1:{free_port()}"
    timeout = run("call", "--connect", nobody, "-t", "300ms", "echo", "x")
    elapsed = time.monotonic() - started
    assert timeout.returncode == 2, (timeout.stdout, timeout.stderr)
    assert "timeout" in timeout.stderr
    assert elapsed < 5


def test_call_timeout_on_silent_worker(context, broker, zguard_bin):
    worker = mdp.Worker(context, broker.worker_endpoint, "silent", heartbeat=0.1)
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "silent")
        proc = subprocess.Popen([ZGUARD_BIN, "call", "--connect", broker.client_endpoint,
                                 "-t", "400ms", "silent", "x"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        request = worker.recv(timeout=5)
        assert request.body == [b"x"]
        deadline = time.monotonic() + 5
        while proc.poll() is None and time.monotonic() < deadline:
            worker.pump(0.05)
        out, err = proc.communicate(timeout=5)
        assert proc.returncode == 2, (out, err)
        assert "timeout" in err
    finally:
        worker.disconnect()


def test_call_bad_timeout_option(zguard_bin):
    result = run("call", "--connect", "tcp://127.0.0.1:1", "-t", "soon", "echo")
    assert result.returncode != 0
    assert "duration" in result.stderr


# --------------------------------------------------------------------------
# serve


def test_serve_port_in_use(tmp_path, zguard_bin):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        path = tmp_path / "busy.yaml"
        path.write_text(make_config(port, free_port()))
        result = run("serve", "-c", str(path), timeout=15)
    assert result.returncode > 0, (result.returncode, result.stderr)  # < 0 would be a signal
    output = result.stdout + result.stderr
    assert "cannot bind" in output, output
    assert f"tcp://127.0.0.1:{port}" in output
    assert "public" in output  # the endpoint's name
    assert "core dumped" not in output.lower()


def test_serve_missing_config(tmp_path, zguard_bin):
    path = tmp_path / "nowhere" / "zguard.yaml"
    result = run("serve", "-c", str(path), timeout=15)
    assert result.returncode == 1
    assert str(path) in result.stderr


def test_serve_invalid_config_does_not_start(tmp_path, zguard_bin):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    result = run("serve", "-c", str(path), timeout=15)
    assert result.returncode == 1
    assert f"{path}:4:" in result.stderr and "broker.colour" in result.stderr


def test_sigterm_drains_in_flight_request(context, start_broker):
    grace = 5.0
    broker = start_broker(broker={"shutdown_grace": "5s"})
    worker = mdp.Worker(context, broker.worker_endpoint, "slow", heartbeat=0.1)
    client = mdp.Client(context, broker.client_endpoint, mode="req")
    late = mdp.Client(context, broker.client_endpoint, mode="dealer")
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "slow")
        client.send("slow", [b"in flight"])
        request = worker.recv(timeout=5)
        broker.signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        worker.pump(0.3)
        assert broker.alive(), "broker exited without draining:\n" + broker.log()
        # New work is refused while draining.
        refused = late.request("slow", [b"too late"], timeout=3)
        assert refused.is_error and refused.code == 503, refused
        assert refused.reason == "broker is shutting down"
        worker.pump(0.3)
        worker.reply(request.address, [b"finished", b"\x00"])
        reply = client.recv(timeout=3)
        assert not reply.is_error and reply.body == [b"finished", b"\x00"]
        code = broker.wait(timeout=grace + 2)
        elapsed = time.monotonic() - stopped_at
        assert code == 0, broker.log()
        assert elapsed < grace, f"exit took {elapsed:.2f}s, grace is {grace}s"
    finally:
        client.close()
        late.close()
        worker.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_shutdown_grace_expiry_answers_503(context, start_broker, signum):
    broker = start_broker(broker={"shutdown_grace": "300ms"})
    worker = mdp.Worker(context, broker.worker_endpoint, "stuck", heartbeat=0.1)
    client = mdp.Client(context, broker.client_endpoint, mode="dealer")
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "stuck")
        client.send("stuck", [b"never answered"])
        worker.recv(timeout=5)
        broker.signal(signum)
        stopped_at = time.monotonic()
        worker.pump(0.1)
        reply = client.recv(timeout=3)
        assert reply.is_error and reply.code == 503, reply
        assert reply.reason == "broker is shutting down"
        code = broker.wait(timeout=5)
        elapsed = time.monotonic() - stopped_at
        assert code == 0, broker.log()
        assert 0.25 <= elapsed < 3, elapsed
    finally:
        client.close()
        worker.kill()


def test_sigterm_idle_broker_exits_quickly(broker):
    started = time.monotonic()
    broker.signal(signal.SIGTERM)
    assert broker.wait(timeout=5) == 0, broker.log()
    assert time.monotonic() - started < 2


def test_second_signal_exits_without_draining(context, start_broker):
    broker = start_broker(broker={"shutdown_grace": "10s"})
    worker = mdp.Worker(context, broker.worker_endpoint, "stuck", heartbeat=0.1)
    client = mdp.Client(context, broker.client_endpoint, mode="dealer")
    try:
        mdp.wait_for_service(context, broker.client_endpoint, "stuck")
        client.send("stuck", [b"x"])
        worker.recv(timeout=5)
        broker.signal(signal.SIGTERM)
        worker.pump(0.2)
        broker.signal(signal.SIGTERM)  # a duplicate within 1 s does not force
        worker.pump(1.0)
        assert broker.alive(), broker.log()
        started = time.monotonic()
        broker.signal(signal.SIGINT)
        code = broker.wait(timeout=5)
        assert code == 1, broker.log()
        assert time.monotonic() - started < 2
        assert "without draining" in broker.log()
    finally:
        client.close()
        worker.kill()


# --------------------------------------------------------------------------
# health (the container image's HEALTHCHECK)


def test_health_asks_the_metrics_server(tmp_path, zguard_bin):
    from conftest import BrokerProcess
    client_port, worker_port, metrics_port = free_port(), free_port(), free_port()
    config = tmp_path / "zguard.yaml"
    config.write_text(make_config(client_port, worker_port)
                      + f"metrics: {{ listen: 127.0.0.1:{metrics_port} }}\n")
    # Nothing listening yet: exit 1 with the reason.
    down = run("health", "-c", str(config), "-t", "1s")
    assert down.returncode == 1, (down.stdout, down.stderr)
    assert "cannot connect" in down.stderr
    broker = BrokerProcess(config, client_port, worker_port, tmp_path / "broker.log")
    try:
        broker.wait_ready()
        wait_port(metrics_port, time.monotonic() + 5, broker.proc)
        ok = run("health", "-c", str(config))
        assert ok.returncode == 0, (ok.stdout, ok.stderr)
        assert f"http://127.0.0.1:{metrics_port}/healthz: HTTP/1.1 200" in ok.stdout
        ready = run("health", "--address", f"127.0.0.1:{metrics_port}", "--path", "/readyz")
        assert ready.returncode == 0, (ready.stdout, ready.stderr)
        missing = run("health", "--address", f"localhost:{metrics_port}", "--path", "/nope")
        assert missing.returncode == 1 and "404" in missing.stderr, missing
    finally:
        broker.kill()
    # A config without a metrics section has no /healthz to ask.
    bare = tmp_path / "bare.yaml"
    bare.write_text(make_config(free_port(), free_port()))
    result = run("health", "-c", str(bare))
    assert result.returncode == 2 and "no metrics section" in result.stderr, result


# --------------------------------------------------------------------------
# echo-worker --each-address (workers behind a Kubernetes headless Service)


def test_echo_worker_each_address(broker, zguard_bin):
    port = broker.worker_port
    worker = subprocess.Popen([ZGUARD_BIN, "echo-worker", "--connect", f"tcp://localhost:{port}",
                               "--each-address", "--resolve-interval", "200ms",
                               "--service", "echo", "--heartbeat", "100ms"],
                              stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lost = subprocess.Popen([ZGUARD_BIN, "echo-worker", "--connect", "tcp://no-such-host.invalid:1",
                             "--each-address", "--resolve-interval", "200ms",
                             "--service", "echo"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 5
        result = None
        while time.monotonic() < deadline:
            result = run("call", "--connect", broker.client_endpoint, "-t", "1s", "echo", "hi")
            if result.returncode == 0:
                break
            time.sleep(0.1)
        assert result is not None and result.returncode == 0, result
        assert result.stdout == "hi\n"
        # A name that does not resolve is reported and retried, not fatal.
        time.sleep(0.5)
        assert lost.poll() is None
    finally:
        for proc in (worker, lost):
            proc.send_signal(signal.SIGTERM)
        _, worker_err = worker.communicate(timeout=10)
        _, lost_err = lost.communicate(timeout=10)
    assert worker.returncode == 0, worker_err
    assert f"serving echo via tcp://127.0.0.1:{port}" in worker_err
    assert "answered 1 request(s)" in worker_err
    assert lost.returncode == 0, lost_err
    assert lost_err.count("cannot resolve no-such-host.invalid") >= 2, lost_err
