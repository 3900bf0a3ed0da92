"""Peers that pretend: a routing-id takeover must not steal another client's replies or another
worker's place, and address rules must hold for IPv6 peers (and IPv4-mapped rules)."""

from __future__ import annotations

import threading
import time

import pytest
import zmq

import mdp
from conftest import ConfigBroker, unique_ports
from test_security import echo_handler, render_config

REFUSED = 1.5


@pytest.fixture
def grass_broker(tmp_path, zguard_bin):
    ports = unique_ports(["public", "workers"])
    config = tmp_path / "grass.yaml"
    config.write_text(render_config([
        {"name": "public", "bind": f"tcp://127.0.0.1:{ports['public']}", "role": "clients",
         "profile": "grasslands"},
        {"name": "workers", "bind": f"tcp://127.0.0.1:{ports['workers']}", "role": "workers",
         "profile": "grasslands"},
    ], services=["echo", "slow"]))
    broker = ConfigBroker(config, ports, tmp_path / "broker.log")
    broker.wait_ready()
    yield broker
    broker.kill()


def test_client_routing_id_takeover_gets_nothing(grass_broker, context, workers):
    """The victim's request is in flight when a second peer connects with the victim's routing
    id: the reply still goes to the victim, never to the impostor."""
    release = threading.Event()

    def slow_handler(request):
        release.wait(5)
        return request.body

    worker = mdp.WorkerThread(context, grass_broker.endpoint("workers"), "slow",
                              slow_handler).start()
    workers.append(worker)
    mdp.wait_for_service(context, grass_broker.client_endpoint, "slow")
    victim = mdp.Client(context, grass_broker.client_endpoint, identity=b"victim")
    impostor = None
    try:
        victim.send("slow", [b"for the victim"])
        deadline = time.monotonic() + 5
        while not worker.addresses and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.addresses, "the request did not reach the worker"
        # Only now does the impostor connect, with the victim's identity: libzmq's ROUTER
        # refuses a second peer with an identity in use, so whatever it sends goes nowhere
        # and it receives nothing.
        impostor = mdp.Client(context, grass_broker.client_endpoint, identity=b"victim")
        impostor.send("echo", [b"hello"])
        time.sleep(0.3)
        release.set()
        reply = victim.recv(timeout=5)
        assert reply.body == [b"for the victim"]
        with pytest.raises(mdp.MdpTimeout):
            impostor.recv(timeout=REFUSED)
    finally:
        victim.close()
        if impostor is not None:
            impostor.close()


def test_worker_routing_id_takeover_cannot_take_its_work(grass_broker, context, workers):
    """A second worker connecting with a registered worker's routing id gets none of its
    requests; the real worker keeps serving."""
    real = mdp.Worker(context, grass_broker.endpoint("workers"), "echo", heartbeat=0.1,
                      identity=b"w1")
    client = mdp.Client(context, grass_broker.client_endpoint)
    impostor = None
    try:
        deadline = time.monotonic() + 5
        registered = False
        while not registered and time.monotonic() < deadline:
            real.pump(0.05)
            registered = client.request("mmi.service", ["echo"], timeout=2).body == [b"200"]
        assert registered
        # The real worker is registered; now the impostor arrives with its routing id.
        impostor = mdp.Worker(context, grass_broker.endpoint("workers"), "echo", heartbeat=0.1,
                              identity=b"w1")
        for index in range(5):
            client.send("echo", [str(index).encode()])
            request = real.recv(timeout=5)
            real.reply(request.address, request.body)
            assert client.recv(timeout=5).body == [str(index).encode()]
            impostor.pump(0.05)
            assert not impostor._pending, "the impostor was given a request"
    finally:
        client.close()
        real.kill()
        if impostor is not None:
            impostor.kill()


@pytest.mark.parametrize("rules, admitted", [
    ({"allow": ["::1"]}, True),
    ({"allow": ["::/0"]}, True),
    ({"deny": ["::1"]}, False),
    ({"allow": ["127.0.0.0/8"]}, False),       # an IPv6 peer is not in an IPv4 range
    ({"allow": ["::ffff:127.0.0.1"]}, False),  # nor is ::1 an IPv4-mapped address
])
def test_address_rules_for_ipv6_peers(tmp_path, zguard_bin, context, workers, rules, admitted):
    ports = unique_ports(["straw", "workers"])
    endpoint = {"name": "straw", "bind": f"tcp://[::1]:{ports['straw']}", "role": "clients",
                "profile": "strawhouse"}
    endpoint.update(rules)
    config = tmp_path / "v6.yaml"
    config.write_text(render_config([
        endpoint,
        {"name": "workers", "bind": f"tcp://127.0.0.1:{ports['workers']}", "role": "workers",
         "profile": "grasslands"},
    ], services=["echo"]))
    broker = ConfigBroker(config, {"workers": ports["workers"]}, tmp_path / "broker.log")
    try:
        broker.wait_ready()
        worker = mdp.WorkerThread(context, f"tcp://127.0.0.1:{ports['workers']}", "echo",
                                  echo_handler).start()
        workers.append(worker)
        client_context = zmq.Context()
        client_context.setsockopt(zmq.IPV6, 1)
        client = mdp.Client(client_context, f"tcp://[::1]:{ports['straw']}")
        try:
            client.send("echo", [b"v6"])
            if admitted:
                assert client.recv(timeout=5).body == [b"v6"]
                broker.wait_log("auth allowed: endpoint=straw mechanism=NULL address=::1")
            else:
                with pytest.raises(mdp.MdpTimeout):
                    client.recv(timeout=REFUSED)
                broker.wait_log("auth denied: endpoint=straw mechanism=NULL address=::1")
        finally:
            client.close()
            client_context.destroy(linger=0)
    finally:
        broker.kill()
