"""Security profiles with real processes and sockets: `zguard keygen` and
`zguard passwd`, CURVE (ironhouse) with pyzmq and with `zguard call` /
`zguard echo-worker`, PLAIN (woodhouse), strawhouse address rules, and the
configs that `zguard check` and `zguard serve` must refuse.

A refused client is never answered (libzmq keeps retrying the handshake), so
"refused" here means: no reply within REFUSED seconds, and the worker saw
nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import zmq
import zmq.auth

import mdp
from conftest import DEFAULT_BROKER, ZGUARD_BIN, free_port

REFUSED = 1.0  # seconds a refused client waits before we call it refused
Z85_KEY = re.compile(r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")


# --------------------------------------------------------------------------
# helpers


def run(*args, input: Optional[str] = None, timeout: float = 15) -> subprocess.CompletedProcess:
    kwargs = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([ZGUARD_BIN, *args], capture_output=True, text=True, timeout=timeout,
                          umask=0o022, **kwargs)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def keygen(directory: Path, name: str, *meta: str) -> str:
    """`zguard keygen NAME --dir DIR`; returns the public key it printed."""
    args = ["keygen", name, "--dir", str(directory)]
    for item in meta:
        args += ["--meta", item]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def set_password(path: Path, user: str, password: str, roles: Optional[str] = None) -> None:
    args = ["passwd", str(path), user] + (["--roles", roles] if roles is not None else [])
    result = run(*args, input=password + "\n")
    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(f'"{item}"' for item in value) + "]"
    if isinstance(value, str) and value.startswith("tcp://"):
        return f'"{value}"'
    return str(value)


def render_config(endpoints: List[Dict], keys_broker: Optional[str] = None,
                  services: Optional[List[str]] = None) -> str:
    """A config in block style: every endpoint key on its own line, so that a
    diagnostic's line number tells which key it is about."""
    lines = ["broker:"]
    lines += [f"  {key}: {_yaml_value(value)}" for key, value in DEFAULT_BROKER.items()]
    lines.append("log: { level: info, format: text }")
    if keys_broker is not None:
        lines += ["keys:", f"  broker: {keys_broker}"]
    lines.append("endpoints:")
    for endpoint in endpoints:
        for i, (key, value) in enumerate(endpoint.items()):
            lines.append(("  - " if i == 0 else "    ") + f"{key}: {_yaml_value(value)}")
    if services:
        lines.append("services:")
        lines += [f"  {name}: {{}}" for name in services]
    return "\n".join(lines) + "\n"


def line_of(text: str, endpoint: Optional[str], key: str) -> int:
    """1-based line of `key:` inside endpoint `endpoint` (None: top-level keys.broker)."""
    lines = text.splitlines()
    if endpoint is None:
        return next(i for i, line in enumerate(lines) if line.startswith("  broker: ")) + 1
    start = next(i for i, line in enumerate(lines) if line == f"  - name: {endpoint}")
    for i in range(start, len(lines)):
        if i > start and (lines[i].startswith("  - ") or not lines[i].startswith("    ")):
            break
        if re.match(rf"^(  - |    ){re.escape(key)}:", lines[i]):
            return i + 1
    raise KeyError(f"{key} not in endpoint {endpoint}")


class SecureClient(mdp.Client):
    """mdp.Client over a DEALER with security options set before connect()."""

    def __init__(self, context: zmq.Context, endpoint: str, options: Dict[int, object]):
        self.options = dict(options)
        super().__init__(context, endpoint, mode="dealer")

    def _connect(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        for option, value in self.options.items():
            self.socket.setsockopt(option, value)
        self.socket.connect(self.endpoint)


def curve_options(server_public: bytes, public: bytes, secret: bytes) -> Dict[int, object]:
    return {zmq.CURVE_SERVERKEY: server_public, zmq.CURVE_PUBLICKEY: public,
            zmq.CURVE_SECRETKEY: secret}


def wait_service(client: mdp.Client, service: str, timeout: float = 10.0) -> None:
    """MMI mmi.service over an already authorised client until `service` has a worker."""
    deadline = time.monotonic() + timeout
    while True:
        reply = client.request("mmi.service", [service], timeout=3.0)
        if reply.body == [b"200"]:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"service {service} has no worker after {timeout}s")
        time.sleep(0.02)


def wait_service_cli(endpoint: str, service: str, *security: str, timeout: float = 10.0,
                     helper=None) -> None:
    """The same through `zguard call ... mmi.service SERVICE`."""
    deadline = time.monotonic() + timeout
    while True:
        result = run("call", "--connect", endpoint, "-t", "3s", *security, "mmi.service", service)
        if result.returncode == 0 and result.stdout == "200\n":
            return
        if time.monotonic() >= deadline:
            extra = f"\nworker output:\n{helper.log()}" if helper is not None else ""
            raise AssertionError(f"service {service} has no worker: rc={result.returncode} "
                                 f"out={result.stdout!r} err={result.stderr!r}{extra}")
        time.sleep(0.05)


def echo_handler(request: mdp.WorkerRequest):
    return request.body


def expect_refused(client: mdp.Client, worker: Optional[mdp.WorkerThread] = None) -> None:
    """No reply within REFUSED seconds, and the worker saw nothing."""
    before = worker.handled if worker is not None else 0
    client.send("echo", ["should not arrive"])
    with pytest.raises(mdp.MdpTimeout):
        client.recv(timeout=REFUSED)
    if worker is not None:
        time.sleep(0.1)
        assert worker.handled == before, "a refused client's request reached the worker"


# --------------------------------------------------------------------------
# 1. zguard keygen


def test_keygen_writes_a_pair_that_pyzmq_reads(tmp_path, zguard_bin):
    keys = tmp_path / "keys"
    keys.mkdir()
    result = run("keygen", "alice", "--dir", str(keys), "--meta", "roles=ops")
    assert result.returncode == 0, result.stderr
    public_file, secret_path = keys / "alice.key", keys / "alice.key_secret"
    assert public_file.is_file() and secret_path.is_file()
    assert mode_of(public_file) == 0o644
    assert mode_of(secret_path) == 0o600

    # stdout is exactly the public key, the one in the .key file.
    printed = result.stdout.strip()
    assert result.stdout == printed + "\n"
    assert Z85_KEY.fullmatch(printed), result.stdout
    public_text, secret_text = public_file.read_text(), secret_path.read_text()
    assert re.search(r'^\s+public-key = "' + re.escape(printed) + '"$', public_text, re.M)
    assert "secret-key" not in public_text

    # --meta roles=ops lands in the metadata of both files (name defaults to NAME).
    for text in (public_text, secret_text):
        metadata = text.split("\nmetadata\n", 1)[1].split("\ncurve\n", 1)[0]
        assert re.search(r'^\s+roles = "ops"$', metadata, re.M), text
        assert re.search(r'^\s+name = "alice"$', metadata, re.M), text

    # pyzmq reads both files; the secret key is the one of the printed public key.
    public, none = zmq.auth.load_certificate(str(public_file))
    assert public.decode() == printed and none is None
    public2, secret = zmq.auth.load_certificate(str(secret_path))
    assert public2 == public
    assert secret is not None and Z85_KEY.fullmatch(secret.decode())
    assert zmq.curve_public(secret) == public
    assert secret.decode() not in result.stdout + result.stderr

    # Never overwrites: neither file changes, for either file being present.
    again = run("keygen", "alice", "--dir", str(keys))
    assert again.returncode != 0
    assert "refusing to overwrite" in again.stderr, again.stderr
    assert again.stdout == ""
    assert public_file.read_text() == public_text and secret_path.read_text() == secret_text
    assert mode_of(public_file) == 0o644 and mode_of(secret_path) == 0o600
    public_file.unlink()
    only_secret = run("keygen", "alice", "--dir", str(keys))
    assert only_secret.returncode != 0
    assert "refusing to overwrite" in only_secret.stderr, only_secret.stderr
    assert not public_file.exists() and secret_path.read_text() == secret_text

    bad_meta = run("keygen", "bob", "--dir", str(keys), "--meta", "roles")
    assert bad_meta.returncode != 0
    assert "KEY=VALUE" in bad_meta.stderr
    assert not (keys / "bob.key").exists() and not (keys / "bob.key_secret").exists()


# --------------------------------------------------------------------------
# 2. zguard passwd


def test_passwd_adds_and_replaces_users(tmp_path, zguard_bin):
    path = tmp_path / "passwd"
    first, second, bobs = "Correct-Horse-1", "Battery-Staple-2", "bobs-Pa55word"

    result = run("passwd", str(path), "admin", "--roles", "ops,billing", input=first + "\n")
    assert result.returncode == 0, result.stderr
    assert mode_of(path) == 0o600
    text = path.read_text()
    assert re.fullmatch(r"admin:\$argon2id\$[^:\n]+:ops,billing\n", text), text
    assert first not in text and first not in result.stdout + result.stderr

    result = run("passwd", str(path), "bob", input=bobs + "\n")
    assert result.returncode == 0, result.stderr
    lines = path.read_text().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["admin", "bob"]
    assert lines[0] + "\n" == text  # admin untouched
    assert lines[1].startswith("bob:$argon2id$") and lines[1].count(":") == 1  # no roles

    # Replace admin's password: same place, new hash, roles kept (no --roles).
    result = run("passwd", str(path), "admin", input=second + "\n")
    assert result.returncode == 0, result.stderr
    replaced = path.read_text().splitlines()
    assert len(replaced) == 2
    assert replaced[0].startswith("admin:$argon2id$") and replaced[0].endswith(":ops,billing")
    assert replaced[0] != lines[0]
    assert replaced[1] == lines[1]
    assert mode_of(path) == 0o600
    contents = path.read_text()
    for password in (first, second, bobs):
        assert password not in contents
        assert password not in result.stdout + result.stderr
    assert contents.count("$argon2id$") == 2

    # A file that was too open is rewritten 0600.
    os.chmod(path, 0o644)
    result = run("passwd", str(path), "bob", "--roles", "ops", input=bobs + "\n")
    assert result.returncode == 0, result.stderr
    assert mode_of(path) == 0o600
    assert path.read_text().splitlines()[1].endswith(":ops")

    # An empty password is refused and writes nothing.
    other = tmp_path / "other"
    result = run("passwd", str(other), "carol", input="\n")
    assert result.returncode != 0
    assert "empty password" in result.stderr
    assert not other.exists()


# --------------------------------------------------------------------------
# 3. ironhouse with a pyzmq client and a pyzmq-made certificate


@pytest.fixture
def curve_tree(tmp_path, zguard_bin):
    """keys/ (broker, alice, mallory by zguard keygen; pyclient, pymallory by
    pyzmq) and store/ with the public certificates of alice and pyclient."""
    keys, store = tmp_path / "keys", tmp_path / "store"
    keys.mkdir(mode=0o700)
    store.mkdir()
    tree = {"dir": tmp_path, "keys": keys, "store": store}
    for name in ("broker", "alice", "mallory"):
        tree[name] = keygen(keys, name)
    for name in ("pyclient", "pymallory"):
        public_file, secret_path = zmq.auth.create_certificates(str(keys), name)
        os.chmod(secret_path, 0o600)
        tree[name] = zmq.auth.load_certificate(public_file)[0].decode()
    for name in ("alice", "pyclient"):
        shutil.copy(keys / f"{name}.key", store / f"{name}.key")
    return tree


def load_secret(tree, name: str):
    return zmq.auth.load_certificate(str(tree["keys"] / f"{name}.key_secret"))


def test_ironhouse_pyzmq_client_with_pyzmq_certificate(curve_tree, serve_config, context,
                                                       workers):
    tree = curve_tree
    ports = {"iron": free_port(), "workers": free_port()}
    text = render_config([
        {"name": "iron", "bind": f"tcp://127.0.0.1:{ports['iron']}", "role": "clients",
         "profile": "ironhouse", "certificates": "store"},
        {"name": "workers", "bind": f"tcp://127.0.0.1:{ports['workers']}", "role": "workers",
         "profile": "grasslands"},
    ], keys_broker="keys/broker.key_secret")
    config = tree["dir"] / "iron.yaml"
    config.write_text(text)
    broker = serve_config(config, ports)

    worker = mdp.WorkerThread(context, broker.endpoint("workers"), "echo", echo_handler).start()
    workers.append(worker)

    server = tree["broker"].encode()
    public, secret = load_secret(tree, "pyclient")
    client = SecureClient(context, broker.endpoint("iron"), curve_options(server, public, secret))
    try:
        wait_service(client, "echo")
        reply = client.request("echo", ["hello", "curve"], timeout=5)
        assert not reply.is_error, reply
        assert reply.body == [b"hello", b"curve"]
        assert worker.handled == 1
    finally:
        client.close()
    broker.wait_log("auth allowed: endpoint=iron mechanism=CURVE")

    # A key that is not in the store: no reply, and the worker saw nothing.
    public, secret = load_secret(tree, "pymallory")
    stranger = SecureClient(context, broker.endpoint("iron"),
                            curve_options(server, public, secret))
    try:
        expect_refused(stranger, worker)
    finally:
        stranger.close()
    log = broker.wait_log("reason=unknown_key")
    assert re.search(r"auth denied: endpoint=iron mechanism=CURVE .*reason=unknown_key", log)

    # The stored key, but the wrong server key: the handshake fails too.
    public, secret = load_secret(tree, "pyclient")
    confused = SecureClient(context, broker.endpoint("iron"),
                            curve_options(tree["mallory"].encode(), public, secret))
    try:
        expect_refused(confused, worker)
    finally:
        confused.close()

    # A NULL (no security) client on the CURVE endpoint gets nothing either.
    plain = mdp.Client(context, broker.endpoint("iron"), mode="dealer")
    try:
        expect_refused(plain, worker)
    finally:
        plain.close()

    # zguard reads the certificate pyzmq wrote, too.
    result = run("call", "--connect", broker.endpoint("iron"), "-t", "5s",
                 "--server-key", str(tree["keys"] / "broker.key"),
                 "--cert", str(tree["keys"] / "pyclient.key_secret"), "echo", "from-cli")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from-cli\n"
    assert worker.handled == 2
    assert broker.alive(), broker.log()


# --------------------------------------------------------------------------
# 4. zguard call / zguard echo-worker through ironhouse


@pytest.mark.parametrize("worker_profile", ["grasslands", "ironhouse"])
def test_ironhouse_zguard_call_and_echo_worker(curve_tree, serve_config, spawn, worker_profile):
    tree = curve_tree
    keys = tree["keys"]
    ports = {"iron": free_port(), "workers": free_port()}
    workers_endpoint = {"name": "workers", "bind": f"tcp://127.0.0.1:{ports['workers']}",
                        "role": "workers", "profile": worker_profile}
    worker_security: List[str] = []
    if worker_profile == "ironhouse":
        # Its own store and its own broker key (endpoint-level `key:`).
        worker_store = tree["dir"] / "worker-store"
        worker_store.mkdir()
        wbroker = keygen(keys, "wbroker")
        keygen(keys, "worker", "roles=echo")
        shutil.copy(keys / "worker.key", worker_store / "worker.key")
        workers_endpoint.update({"certificates": "worker-store",
                                 "key": "keys/wbroker.key_secret"})
        worker_security = ["--server-key", wbroker, "--cert", str(keys / "worker.key_secret")]
    text = render_config([
        {"name": "iron", "bind": f"tcp://127.0.0.1:{ports['iron']}", "role": "clients",
         "profile": "ironhouse", "certificates": "store"},
        workers_endpoint,
    ], keys_broker="keys/broker.key_secret")
    config = tree["dir"] / "iron.yaml"
    config.write_text(text)
    broker = serve_config(config, ports)

    worker = spawn("echo-worker", "echo-worker", "--connect", broker.endpoint("workers"),
                   "--service", "echo", "--heartbeat", "100ms", *worker_security)
    alice = ["--server-key", str(keys / "broker.key"), "--cert", str(keys / "alice.key_secret")]
    wait_service_cli(broker.endpoint("iron"), "echo", *alice, helper=worker)

    result = run("call", "--connect", broker.endpoint("iron"), "-t", "5s", *alice,
                 "echo", "hello", "world")
    assert result.returncode == 0, (result.stderr, broker.log())
    assert result.stdout == "hello\nworld\n"
    # The server key as a Z85 string works the same as the file.
    result = run("call", "--connect", broker.endpoint("iron"), "-t", "5s",
                 "--server-key", tree["broker"], "--cert", str(keys / "alice.key_secret"),
                 "echo", "z85")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "z85\n"

    # The wrong server key: no handshake, no reply, exit 2.
    started = time.monotonic()
    result = run("call", "--connect", broker.endpoint("iron"), "-t", "1s",
                 "--server-key", str(keys / "mallory.key"),
                 "--cert", str(keys / "alice.key_secret"), "echo", "x")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "timeout" in result.stderr
    assert result.stdout == ""
    assert time.monotonic() - started < 10
    # A certificate that is not in the store: the same.
    result = run("call", "--connect", broker.endpoint("iron"), "-t", "1s",
                 "--server-key", str(keys / "broker.key"),
                 "--cert", str(keys / "mallory.key_secret"), "echo", "x")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "timeout" in result.stderr
    # A client secret certificate readable by others is refused up front.
    loose = keys / "loose.key_secret"
    shutil.copy(keys / "alice.key_secret", loose)
    os.chmod(loose, 0o644)
    result = run("call", "--connect", broker.endpoint("iron"), "-t", "5s",
                 "--server-key", str(keys / "broker.key"), "--cert", str(loose), "echo", "x")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert str(loose) in result.stderr and "chmod 600" in result.stderr, result.stderr
    assert "timeout" not in result.stderr

    if worker_profile == "ironhouse":
        # alice's certificate is in the clients' store, not the workers': she
        # cannot register a worker, and the broker says why.
        rogue = spawn("rogue-worker", "echo-worker", "--connect", broker.endpoint("workers"),
                      "--service", "rogue", "--heartbeat", "100ms",
                      "--server-key", str(keys / "wbroker.key"),
                      "--cert", str(keys / "alice.key_secret"))
        log = broker.wait_log("auth denied: endpoint=workers")
        assert re.search(r"auth denied: endpoint=workers mechanism=CURVE .*reason=unknown_key",
                         log), log
        result = run("call", "--connect", broker.endpoint("iron"), "-t", "3s", *alice,
                     "mmi.service", "rogue")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "404\n"
        assert rogue.proc.poll() is None  # still retrying, never admitted
    assert worker.proc.poll() is None, worker.log()
    assert broker.alive(), broker.log()


# --------------------------------------------------------------------------
# 5. woodhouse with zguard call --user --password-file


def test_woodhouse_zguard_call_with_password_file(tmp_path, serve_config, context, workers):
    passwd = tmp_path / "passwd"
    set_password(passwd, "admin", "old-Password", roles="ops")
    set_password(passwd, "admin", "s3cret-Pw")  # replaced before the broker reads it
    set_password(passwd, "bob", "bobs-Pw")
    ports = {"wood": free_port(), "workers": free_port()}
    config = tmp_path / "wood.yaml"
    config.write_text(render_config([
        {"name": "wood", "bind": f"tcp://127.0.0.1:{ports['wood']}", "role": "clients",
         "profile": "woodhouse", "passwords": "passwd"},
        {"name": "workers", "bind": f"tcp://127.0.0.1:{ports['workers']}", "role": "workers",
         "profile": "grasslands"},
    ]))
    broker = serve_config(config, ports)
    worker = mdp.WorkerThread(context, broker.endpoint("workers"), "echo", echo_handler).start()
    workers.append(worker)
    wood = broker.endpoint("wood")

    right = secret_file(tmp_path / "right.pw", "s3cret-Pw\n")
    wrong = secret_file(tmp_path / "wrong.pw", "not-it\n")
    old = secret_file(tmp_path / "old.pw", "old-Password\n")
    wait_service_cli(wood, "echo", "--user", "admin", "--password-file", str(right))

    result = run("call", "--connect", wood, "-t", "5s", "--user", "admin",
                 "--password-file", str(right), "echo", "hello")
    assert result.returncode == 0, (result.stderr, broker.log())
    assert result.stdout == "hello\n"
    handled = worker.handled
    assert handled == 1

    for user, pw in (("admin", wrong), ("admin", old), ("nobody", right)):
        result = run("call", "--connect", wood, "-t", "1s", "--user", user,
                     "--password-file", str(pw), "echo", "x")
        assert result.returncode == 2, (user, pw.name, result.stdout, result.stderr)
        assert "timeout" in result.stderr
        assert result.stdout == ""
    log = broker.wait_log("reason=bad_password")
    assert "reason=unknown_user" in log
    for password in ("s3cret-Pw", "not-it", "old-Password"):
        assert password not in log
    time.sleep(0.1)
    assert worker.handled == handled, "a refused request reached the worker"

    # bob logs in with his own password.
    bob = secret_file(tmp_path / "bob.pw", "bobs-Pw\n")
    result = run("call", "--connect", wood, "-t", "5s", "--user", "bob",
                 "--password-file", str(bob), "echo", "bob")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "bob\n"

    # A password file readable by others is refused before connecting.
    open_pw = secret_file(tmp_path / "open.pw", "s3cret-Pw\n", mode=0o644)
    started = time.monotonic()
    result = run("call", "--connect", wood, "-t", "5s", "--user", "admin",
                 "--password-file", str(open_pw), "echo", "x")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert time.monotonic() - started < 4, "refused only after the call timed out"
    assert str(open_pw) in result.stderr
    assert "0644" in result.stderr and "chmod 600" in result.stderr, result.stderr
    assert "timeout" not in result.stderr
    assert "s3cret-Pw" not in result.stdout + result.stderr
    assert broker.alive(), broker.log()


# --------------------------------------------------------------------------
# 6. configs that zguard check and zguard serve refuse


@pytest.fixture
def security_tree(tmp_path, zguard_bin):
    """A folder with everything a config using every profile needs."""
    keys, store = tmp_path / "keys", tmp_path / "store"
    keys.mkdir(mode=0o700)
    store.mkdir()
    tree = {"dir": tmp_path, "keys": keys, "store": store}
    for name in ("broker", "alice", "mallory"):
        tree[name] = keygen(keys, name)
    shutil.copy(keys / "alice.key", store / "alice.key")
    set_password(tmp_path / "passwd", "admin", "s3cret", roles="ops")
    (tmp_path / "revoked.txt").write_text(f"# revoked keys\n{tree['mallory']}  # lost laptop\n")
    return tree


def every_profile() -> List[Dict]:
    bind = "tcp://127.0.0.1:*"
    return [
        {"name": "grass", "bind": bind, "role": "clients", "profile": "grasslands"},
        {"name": "straw", "bind": bind, "role": "clients", "profile": "strawhouse",
         "allow": ["127.0.0.0/8"]},
        {"name": "wood", "bind": bind, "role": "clients", "profile": "woodhouse",
         "passwords": "passwd"},
        {"name": "stone", "bind": bind, "role": "clients", "profile": "stonehouse",
         "revoked": "revoked.txt"},
        {"name": "iron", "bind": bind, "role": "clients", "profile": "ironhouse",
         "certificates": "store", "revoked": "revoked.txt"},
        {"name": "workers", "bind": bind, "role": "workers", "profile": "grasslands"},
    ]


def endpoint(endpoints: List[Dict], name: str) -> Dict:
    return next(e for e in endpoints if e["name"] == name)


def error_lines(output: str) -> List[str]:
    """Diagnostics (file:line...) that are not warnings."""
    return [line for line in output.splitlines()
            if re.match(r"^\S+:\d+:\d+: ", line) and not line.endswith("(warning)")]


def test_check_accepts_every_profile(security_tree, zguard_bin):
    config = security_tree["dir"] / "zguard.yaml"
    config.write_text(render_config(every_profile(), keys_broker="keys/broker.key_secret"))
    result = run("check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "OK (6 endpoints" in result.stdout
    assert error_lines(result.stderr) == []
    # 0400 is as good as 0600 for a secret key.
    os.chmod(security_tree["keys"] / "broker.key_secret", 0o400)
    result = run("check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    # Group-readable is not (unless root owns the file, as Kubernetes Secrets with fsGroup).
    if os.geteuid() == 0:
        os.chown(security_tree["keys"] / "broker.key_secret", 65534, 65534)
    os.chmod(security_tree["keys"] / "broker.key_secret", 0o640)
    result = run("check", "-c", str(config))
    assert result.returncode == 1, result.stdout
    assert "0640" in result.stderr and "chmod 600" in result.stderr, result.stderr


# Each case changes the every-profile setup and says what must be reported:
# (file: "config" or a path relative to the tree, line: int, ("endpoint", key)
# for the line of that key in the config, or "keys" for keys.broker; key: the
# config key named in the message or None; texts: substrings of the message).


def _secret_key_0644(tree, endpoints):
    os.chmod(tree["keys"] / "broker.key_secret", 0o644)
    path = str(tree["keys"] / "broker.key_secret")
    return "config", "keys", "keys.broker", [path, "0644", "chmod 600"]


def _missing_certificates_folder(tree, endpoints):
    endpoint(endpoints, "iron")["certificates"] = "no-such-store"
    return ("config", ("iron", "certificates"), "endpoints[4].certificates",
            ["no such folder", "no-such-store"])


def _ironhouse_without_certificates(tree, endpoints):
    del endpoint(endpoints, "iron")["certificates"]
    return ("config", ("iron", "profile"), "endpoints[4].certificates",
            ["ironhouse needs certificates"])


def _woodhouse_without_passwords(tree, endpoints):
    del endpoint(endpoints, "wood")["passwords"]
    return ("config", ("wood", "profile"), "endpoints[2].passwords",
            ["woodhouse needs passwords"])


def _key_on_grasslands(tree, endpoints):
    endpoint(endpoints, "grass")["key"] = "keys/broker.key_secret"
    return ("config", ("grass", "key"), "endpoints[0].key",
            ["only used by stonehouse and ironhouse", "not grasslands"])


def _gssapi(tree, endpoints):
    endpoint(endpoints, "grass")["profile"] = "gssapi"
    return "config", ("grass", "profile"), "endpoints[0].profile", ["GSSAPI", "ZAP"]


def _revoked_bad_line(tree, endpoints):
    path = tree["dir"] / "revoked.txt"
    path.write_text(path.read_text() + "not-a-z85-key\n")  # line 3
    return "revoked.txt", 3, None, ["40-character Z85 public key"]


def _plaintext_password(tree, endpoints):
    path = tree["dir"] / "passwd"
    path.write_text(path.read_text() + "bob=hunter2-secret\n")  # line 2
    return "passwd", 2, None, ["plaintext password", "bob", "allow_plaintext_passwords"]


REFUSED_CONFIGS = {
    "secret-key-mode-0644": _secret_key_0644,
    "missing-certificates-folder": _missing_certificates_folder,
    "ironhouse-without-certificates": _ironhouse_without_certificates,
    "woodhouse-without-passwords": _woodhouse_without_passwords,
    "key-on-grasslands": _key_on_grasslands,
    "profile-gssapi": _gssapi,
    "revoked-bad-line": _revoked_bad_line,
    "plaintext-password-line": _plaintext_password,
}


@pytest.mark.parametrize("case", sorted(REFUSED_CONFIGS))
def test_check_and_serve_refuse(security_tree, zguard_bin, case):
    tree = security_tree
    endpoints = every_profile()
    file, line, key, texts = REFUSED_CONFIGS[case](tree, endpoints)
    config = tree["dir"] / "zguard.yaml"
    text = render_config(endpoints, keys_broker="keys/broker.key_secret")
    config.write_text(text)
    if line == "keys":
        line = line_of(text, None, "broker")
    elif isinstance(line, tuple):
        line = line_of(text, *line)
    where = f"{config if file == 'config' else tree['dir'] / file}:{line}:"

    def matches(error: str) -> bool:
        return where in error and (key is None or f": {key}: " in error) and \
            all(t in error for t in texts)

    check = run("check", "-c", str(config))
    assert check.returncode == 1, (check.stdout, check.stderr)
    errors = error_lines(check.stderr)
    assert errors, check.stderr
    assert all(matches(e) for e in errors), f"expected {where} {key} {texts}:\n{check.stderr}"
    assert re.search(rf"^{re.escape(str(config))}: \d+ error\(s\)$", check.stderr, re.M)
    assert "OK" not in check.stdout
    assert "hunter2" not in check.stdout + check.stderr

    serve = run("serve", "-c", str(config), timeout=15)
    assert serve.returncode == 1, (serve.stdout, serve.stderr)
    output = serve.stdout + serve.stderr
    assert any(matches(line) for line in output.splitlines()), output
    assert "running with" not in output
    assert "hunter2" not in output


def test_check_plaintext_passwords_need_the_option(security_tree, zguard_bin):
    tree = security_tree
    (tree["dir"] / "passwd").write_text("bob=hunter2-secret\n")
    endpoints = every_profile()
    endpoint(endpoints, "wood")["allow_plaintext_passwords"] = True
    config = tree["dir"] / "zguard.yaml"
    config.write_text(render_config(endpoints, keys_broker="keys/broker.key_secret"))
    result = run("check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert re.search(r"passwd:1:\d+: .*plaintext password.*\(warning\)$", result.stderr, re.M), \
        result.stderr
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.parametrize("profile", ["grasslands", "strawhouse"])
def test_check_refuses_null_profiles_on_all_interfaces(security_tree, zguard_bin, profile):
    endpoints = every_profile()
    name = "grass" if profile == "grasslands" else "straw"
    endpoint(endpoints, name)["bind"] = "tcp://0.0.0.0:5555"
    config = security_tree["dir"] / "zguard.yaml"
    text = render_config(endpoints, keys_broker="keys/broker.key_secret")
    config.write_text(text)
    result = run("check", "-c", str(config))
    assert result.returncode == 1, result.stdout
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "allow_insecure" in errors[0] and "0.0.0.0" in errors[0]
    index = [e["name"] for e in endpoints].index(name)
    assert f"endpoints[{index}]." in errors[0]
    assert any(f"{config}:{line_of(text, name, k)}:" in errors[0] for k in ("bind", "profile"))

    # allow_insecure: true makes it a warning.
    endpoint(endpoints, name)["allow_insecure"] = True
    config.write_text(render_config(endpoints, keys_broker="keys/broker.key_secret"))
    result = run("check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "(warning)" in result.stderr


def test_check_warns_about_woodhouse_on_all_interfaces(security_tree, zguard_bin):
    endpoints = every_profile()
    endpoint(endpoints, "wood")["bind"] = "tcp://0.0.0.0:5556"
    config = security_tree["dir"] / "zguard.yaml"
    text = render_config(endpoints, keys_broker="keys/broker.key_secret")
    config.write_text(text)
    result = run("check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "OK (6 endpoints" in result.stdout
    assert error_lines(result.stderr) == []
    warnings = [line for line in result.stderr.splitlines() if line.endswith("(warning)")]
    assert any(f"{config}:{line_of(text, 'wood', 'profile')}:" in w and "clear text" in w
               for w in warnings), result.stderr


# --------------------------------------------------------------------------
# 7. strawhouse address rules


def test_strawhouse_allow_and_deny_lists(tmp_path, serve_config, context, workers):
    ports = {"allow": free_port(), "deny": free_port(), "elsewhere": free_port(),
             "workers": free_port()}
    config = tmp_path / "straw.yaml"
    config.write_text(render_config([
        {"name": "allow", "bind": f"tcp://127.0.0.1:{ports['allow']}", "role": "clients",
         "profile": "strawhouse", "allow": ["127.0.0.0/8"]},
        {"name": "deny", "bind": f"tcp://127.0.0.1:{ports['deny']}", "role": "clients",
         "profile": "strawhouse", "deny": ["127.0.0.1"]},
        {"name": "elsewhere", "bind": f"tcp://127.0.0.1:{ports['elsewhere']}",
         "role": "clients", "profile": "strawhouse", "allow": ["10.0.0.0/8"]},
        {"name": "workers", "bind": f"tcp://127.0.0.1:{ports['workers']}", "role": "workers",
         "profile": "grasslands"},
    ]))
    broker = serve_config(config, ports)
    worker = mdp.WorkerThread(context, broker.endpoint("workers"), "echo", echo_handler).start()
    workers.append(worker)

    allowed = mdp.Client(context, broker.endpoint("allow"), mode="dealer")
    try:
        mdp.wait_for_service(context, broker.endpoint("allow"), "echo", timeout=10)
        reply = allowed.request("echo", ["in"], timeout=5)
        assert reply.body == [b"in"]
    finally:
        allowed.close()
    handled = worker.handled
    assert handled == 1
    broker.wait_log("auth allowed: endpoint=allow mechanism=NULL address=127.0.0.1")

    for name in ("deny", "elsewhere"):
        client = mdp.Client(context, broker.endpoint(name), mode="dealer")
        try:
            expect_refused(client, worker)
        finally:
            client.close()
        log = broker.wait_log(f"auth denied: endpoint={name} ")
        assert re.search(rf"auth denied: endpoint={name} mechanism=NULL address=127\.0\.0\.1 "
                         r".*reason=address_denied", log), log
    assert worker.handled == handled
    assert broker.alive(), broker.log()
