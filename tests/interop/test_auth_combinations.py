"""Every endpoint option combination the config accepts, against an anonymous NULL client.

The class of bug behind NATS CVE-2023-47090: some accepted combination of options silently
turns authentication off. Here every combination of the endpoint keys, for every profile and
for tcp:// and ipc:// binds, is written into one config; `zguard check` says which endpoints it
accepts; one broker then serves all the accepted ones, and a NULL client (no credentials, from
127.0.0.1) sends a request to each. It must get a reply on grasslands, on strawhouse only when
the address rules let 127.0.0.1 in, and nowhere else.
"""

from __future__ import annotations

import itertools
import re
import shutil
import time
from typing import Dict, List

import zmq

import mdp
from conftest import unique_ports
from test_security import echo_handler, keygen, render_config, run, set_password

PROFILES = ["grasslands", "strawhouse", "woodhouse", "stonehouse", "ironhouse"]
# Each key's variants (None: key absent). Address rules that let 127.0.0.1 in and that do not.
VARIANTS: Dict[str, List] = {
    "allow": [None, ["127.0.0.0/8"], ["10.0.0.0/8"], ["::ffff:127.0.0.1"]],
    "deny": [None, ["127.0.0.1"], ["10.0.0.0/8"]],
    "allow_insecure": [None, True],
    "passwords": [None, "passwd"],
    "allow_plaintext_passwords": [None, True],
    "certificates": [None, "store"],
    "revoked": [None, "revoked.txt"],
    "key": [None, "keys/broker.key_secret"],
}
REFUSED_WAIT = 2.0  # seconds a refused client waits for a reply that must not come


def address_admits_loopback(endpoint: Dict) -> bool:
    allow, deny = endpoint.get("allow"), endpoint.get("deny")
    if deny and deny != ["10.0.0.0/8"]:
        return False
    return allow is None or allow != ["10.0.0.0/8"]


def combinations(tmp_path) -> List[Dict]:
    endpoints = []
    keys = list(VARIANTS)
    for profile in PROFILES:
        for transport in ("tcp", "ipc"):
            for values in itertools.product(*(VARIANTS[k] for k in keys)):
                n = len(endpoints)
                bind = ("tcp://127.0.0.1:*" if transport == "tcp"
                        else f"ipc://{tmp_path}/e{n}.ipc")
                endpoint = {"name": f"e{n}", "bind": bind, "role": "clients",
                            "profile": profile}
                endpoint.update({k: v for k, v in zip(keys, values) if v is not None})
                endpoints.append(endpoint)
    return endpoints


def test_null_client_refused_on_every_accepted_combination(tmp_path, zguard_bin, context,
                                                           workers):
    keys_dir, store = tmp_path / "keys", tmp_path / "store"
    keys_dir.mkdir(mode=0o700)
    store.mkdir()
    keygen(keys_dir, "broker")
    keygen(keys_dir, "alice")
    shutil.copy(keys_dir / "alice.key", store / "alice.key")
    set_password(tmp_path / "passwd", "admin", "s3cret")
    (tmp_path / "revoked.txt").write_text("# nobody yet\n")

    candidates = combinations(tmp_path)
    config = tmp_path / "all.yaml"
    config.write_text(render_config(candidates, keys_broker="keys/broker.key_secret"))
    checked = run("check", "-c", str(config), timeout=120)
    rejected = {int(m.group(1)) for m in re.finditer(r"endpoints\[(\d+)\]", checked.stderr)}
    accepted = [e for i, e in enumerate(candidates) if i not in rejected]
    # Guard against a check that refuses everything (or nothing): both kinds must exist.
    per_profile = {p: sum(1 for e in accepted if e["profile"] == p) for p in PROFILES}
    assert all(per_profile.values()), per_profile
    assert len(accepted) < len(candidates)

    # One broker for all accepted endpoints, on real ports, plus a worker endpoint.
    tcp = [e for e in accepted if e["bind"].startswith("tcp://")]
    ports = unique_ports([e["name"] for e in tcp] + ["workers"])
    for endpoint in tcp:
        endpoint["bind"] = f"tcp://127.0.0.1:{ports[endpoint['name']]}"
    served = accepted + [{"name": "workers", "bind": f"tcp://127.0.0.1:{ports['workers']}",
                          "role": "workers", "profile": "grasslands"}]
    serve_path = tmp_path / "serve.yaml"
    serve_path.write_text(render_config(served, keys_broker="keys/broker.key_secret",
                                        services=["echo"]))
    assert run("check", "-c", str(serve_path), timeout=60).returncode == 0
    from conftest import ConfigBroker
    broker = ConfigBroker(serve_path, ports, tmp_path / "serve.log")
    try:
        broker.wait_ready(20)
        worker = mdp.WorkerThread(context, f"tcp://127.0.0.1:{ports['workers']}", "echo",
                                  echo_handler).start()
        workers.append(worker)
        mdp.wait_for_service(context, next(
            e["bind"] for e in accepted if e["profile"] == "grasslands"), "echo", timeout=10)

        clients = {}
        for endpoint in accepted:
            client = mdp.Client(context, endpoint["bind"], mode="dealer")
            client.send("echo", [endpoint["name"].encode()])
            clients[endpoint["name"]] = client
        answered = set()
        deadline = time.monotonic() + REFUSED_WAIT
        while time.monotonic() < deadline:
            for name, client in clients.items():
                if name in answered:
                    continue
                if client.socket.poll(0, zmq.POLLIN):
                    reply = client.recv(timeout=1)
                    assert reply.body == [name.encode()], (name, reply)
                    answered.add(name)
            time.sleep(0.01)
        for client in clients.values():
            client.close()
        expected = {e["name"] for e in accepted
                    if e["profile"] == "grasslands"
                    or (e["profile"] == "strawhouse" and address_admits_loopback(e))}
        wrongly_admitted = sorted(answered - expected)
        wrongly_refused = sorted(expected - answered)
        by_name = {e["name"]: e for e in accepted}
        assert not wrongly_admitted, [by_name[n] for n in wrongly_admitted]
        assert not wrongly_refused, [by_name[n] for n in wrongly_refused]
        assert broker.alive(), broker.log()[-3000:]
        print(f"{len(candidates)} combinations, {len(accepted)} accepted, "
              f"{len(expected)} admit anonymous NULL by design, "
              f"{len(accepted) - len(expected)} refused it")
    finally:
        broker.kill()
