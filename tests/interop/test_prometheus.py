"""zguard's metrics against the real Prometheus tool chain, and the operator
assets in deploy/ (Prometheus scrape config, alert rules, Grafana dashboard).

One broker for the whole module: `zguard serve` with a strawhouse client
endpoint that admits 127.0.0.1, one that denies it, and a workers endpoint,
`metrics: { listen: "127.0.0.1:PORT" }` on a free port. A Python MDP worker
(mdp.py) serves "echo"; the traffic is ECHO_REQUESTS echo calls, one call
for an unknown service and one client refused at the handshake. Then:

* /healthz and /readyz answer 200; /metrics passes `promtool check metrics`
  and has every family of broker/metrics.cpp with its type and labels;
* `promtool check config` / `check rules` accept deploy/prometheus/, and
  `promtool test rules` shows that every alert fires when it should and
  stays quiet when it should;
* the Grafana dashboard parses and only names series that /metrics exposes;
* a real Prometheus (prometheus.yml with the target replaced) scrapes the
  broker, its counter equals the requests made here, the alert rules evaluate
  without error and every dashboard query is valid PromQL.

Needs /usr/bin/prometheus and /usr/bin/promtool (Debian package
`prometheus`, listed in .ci/packages). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest
import zmq

import mdp
from conftest import DEFAULT_BROKER, REPO, ZGUARD_BIN, ConfigBroker, free_port

DEPLOY = REPO / "deploy"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS_YML = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "zguard-dashboard.json"

ECHO_REQUESTS = 7
REFUSED = 1.0      # seconds the refused client waits for the reply that never comes
HTTP_TIMEOUT = 5.0
PROMETHEUS_UP_TIMEOUT = 30.0

# Every family of broker/metrics.cpp: type and label names.
FAMILIES: Dict[str, Tuple[str, Set[str]]] = {
    "zguard_auth_decisions_total": ("counter", {"endpoint", "mechanism", "decision", "reason"}),
    "zguard_handshake_failures_total": ("counter", {"endpoint", "reason"}),
    "zguard_connections": ("gauge", {"endpoint"}),
    "zguard_messages_total": ("counter", {"endpoint", "direction"}),
    "zguard_bytes_total": ("counter", {"endpoint", "direction"}),
    "zguard_malformed_messages_total": ("counter", {"endpoint"}),
    "zguard_dropped_messages_total": ("counter", {"endpoint", "reason"}),
    "zguard_requests_total": ("counter", {"service", "outcome"}),
    "zguard_request_duration_seconds": ("histogram", {"service"}),
    "zguard_workers": ("gauge", {"service", "state"}),
    "zguard_requests_queued": ("gauge", {"service"}),
    "zguard_late_replies_total": ("counter", {"service"}),
    "zguard_config_reloads_total": ("counter", {"result"}),
    "zguard_authenticator_queue_seconds": ("histogram", set()),
    "zguard_build_info": ("gauge", {"version"}),
    "zguard_refused_messages_total": ("counter", {"endpoint", "reason"}),
    "zguard_connections_closed_silent_total": ("counter", {"endpoint"}),
    "zguard_worker_refusals_total": ("counter", {"endpoint", "reason"}),
    "zguard_libzmq_reserved_routing_ids_refused": ("gauge", set()),
}


# --------------------------------------------------------------------------
# helpers


def tool(name: str) -> str:
    """/usr/bin/<name> from the Debian prometheus package, or fail the test."""
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not os.access(path, os.X_OK):
        pytest.fail(f"{name} not found: install the Debian package `prometheus` "
                    "(listed in .ci/packages)")
    return path


def run_tool(*args: str, input: Optional[str] = None,
             timeout: float = 60) -> subprocess.CompletedProcess:
    kwargs = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kwargs)


def http_get_bytes(url: str,
                   timeout: float = HTTP_TIMEOUT) -> Tuple[int, bytes, Dict[str, str]]:
    """GET url -> (status, raw body, headers); HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def http_get(url: str, timeout: float = HTTP_TIMEOUT) -> Tuple[int, str, Dict[str, str]]:
    """Like http_get_bytes, body decoded as UTF-8 (strictly: the exposition
    format and Prometheus require valid UTF-8)."""
    status, body, headers = http_get_bytes(url, timeout)
    return status, body.decode("utf-8"), headers


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")


@dataclass
class Exposition:
    """/metrics text, parsed just enough for these tests."""
    text: str
    types: Dict[str, str]                                 # family -> counter|gauge|histogram|...
    helps: Dict[str, str]                                 # family -> help text
    samples: List[Tuple[str, Dict[str, str], float]]     # (name, labels, value)

    @classmethod
    def parse(cls, text: str) -> "Exposition":
        types, helps, samples = {}, {}, []
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                types[name] = kind.strip()
            elif line.startswith("# HELP "):
                parts = line.split(" ", 3)
                helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            elif line.startswith("#"):
                continue
            else:
                match = _SAMPLE.match(line)
                assert match, f"unparseable sample line: {line!r}"
                labels = dict(_LABEL.findall(match.group(2) or ""))
                samples.append((match.group(1), labels, float(match.group(3))))
        return cls(text, types, helps, samples)

    def names(self) -> Set[str]:
        return {name for name, _, _ in self.samples}

    def family_of(self, sample_name: str) -> Optional[str]:
        """The family a sample name belongs to (histogram _bucket/_sum/_count
        map to their family; a counter's _total is part of its own name)."""
        if sample_name in self.types:
            return sample_name
        for suffix, kinds in (("_bucket", {"histogram"}), ("_sum", {"histogram", "summary"}),
                              ("_count", {"histogram", "summary"})):
            if sample_name.endswith(suffix):
                base = sample_name[: -len(suffix)]
                if self.types.get(base) in kinds:
                    return base
        return None

    def value(self, name: str, **labels: str) -> Optional[float]:
        """The value of the one sample `name` whose labels include `labels`."""
        found = [v for n, l, v in self.samples
                 if n == name and all(l.get(k) == want for k, want in labels.items())]
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
        return found[0] if found else None

    def total(self, name: str, **labels: str) -> Optional[float]:
        """The sum of the samples `name` whose labels include `labels`; None if none."""
        found = [v for n, l, v in self.samples
                 if n == name and all(l.get(k) == want for k, want in labels.items())]
        return sum(found) if found else None


def dashboard_panels(panels: List[dict]) -> List[dict]:
    """All panels, including those nested in (collapsed) rows."""
    out = []
    for panel in panels:
        out.append(panel)
        out += dashboard_panels(panel.get("panels", []))
    return out


def dashboard_exprs(dashboard: dict) -> List[str]:
    return [target["expr"] for panel in dashboard_panels(dashboard["panels"])
            for target in panel.get("targets", []) if target.get("expr")]


def dashboard_variable_queries(dashboard: dict) -> List[str]:
    out = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        out.append(query.get("query", "") if isinstance(query, dict) else str(query or ""))
        out.append(variable.get("definition", ""))
    return [q for q in out if q]


METRIC_NAME = re.compile(r"\bzguard_[a-zA-Z0-9_:]*")


# --------------------------------------------------------------------------
# the broker, its traffic and its /metrics


@dataclass
class Scraped:
    broker: ConfigBroker
    metrics_port: int
    metrics: Exposition

    @property
    def metrics_address(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"


def broker_config(ports: Dict[str, int], metrics_port: int) -> str:
    lines = ["broker:"]
    lines += [f"  {key}: {value}" for key, value in DEFAULT_BROKER.items()]
    lines += [
        "log: { level: info, format: text }",
        f'metrics: {{ listen: "127.0.0.1:{metrics_port}" }}',
        "endpoints:",
        f'  - {{ name: public, bind: "tcp://127.0.0.1:{ports["public"]}", role: clients,',
        '      profile: strawhouse, allow: ["127.0.0.0/8"] }',
        f'  - {{ name: closed, bind: "tcp://127.0.0.1:{ports["closed"]}", role: clients,',
        '      profile: strawhouse, deny: ["127.0.0.1"] }',
        f'  - {{ name: workers, bind: "tcp://127.0.0.1:{ports["workers"]}", role: workers,',
        "      profile: grasslands }",
        "services:",
        "  echo: {}",
    ]
    return "\n".join(lines) + "\n"


def wait_for_sample(port: int, name: str, labels: Dict[str, str],
                    timeout: float = 5.0) -> Exposition:
    """Scrapes until `name{labels}` is present (monitor events arrive asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200, body
        metrics = Exposition.parse(body)
        if metrics.total(name, **labels) is not None:
            return metrics
        if time.monotonic() >= deadline:
            raise AssertionError(f"{name}{labels} not in /metrics after {timeout}s:\n{body}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    if not os.access(ZGUARD_BIN, os.X_OK):
        pytest.fail(f"zguard binary not found at {ZGUARD_BIN} (set ZGUARD_BIN)")
    tmp = tmp_path_factory.mktemp("prometheus-broker")
    ports = {"public": free_port(), "closed": free_port(), "workers": free_port()}
    metrics_port = free_port()
    while len(set(ports.values()) | {metrics_port}) < 4:
        ports = {name: free_port() for name in ports}
        metrics_port = free_port()
    config = tmp / "zguard.yaml"
    config.write_text(broker_config(ports, metrics_port))
    broker = ConfigBroker(config, {**ports, "metrics": metrics_port}, tmp / "zguard.log")
    context = zmq.Context()
    worker = None
    clients: List[mdp.Client] = []
    try:
        broker.wait_ready(10)
        broker.wait_log(f"metrics on http://127.0.0.1:{metrics_port}/metrics")
        worker = mdp.WorkerThread(context, broker.endpoint("workers"), "echo",
                                  lambda request: request.body).start()
        mdp.wait_for_service(context, broker.endpoint("public"), "echo", timeout=10)

        client = mdp.Client(context, broker.endpoint("public"), mode="dealer")
        clients.append(client)
        for i in range(ECHO_REQUESTS):
            reply = client.request("echo", [f"ping {i}"], timeout=5)
            assert not reply.is_error and reply.body == [f"ping {i}".encode()], reply
        reply = client.request("nosuch", ["x"], timeout=5)
        assert reply.is_error and reply.code == 404, reply

        refused = mdp.Client(context, broker.endpoint("closed"), mode="dealer")
        clients.append(refused)
        refused.send("echo", ["must not arrive"])
        with pytest.raises(mdp.MdpTimeout):
            refused.recv(timeout=REFUSED)
        assert worker.handled == ECHO_REQUESTS
        broker.wait_log("auth denied: endpoint=closed ")

        wait_for_sample(metrics_port, "zguard_auth_decisions_total",
                        {"endpoint": "closed", "decision": "denied"})
        metrics = wait_for_sample(metrics_port, "zguard_handshake_failures_total",
                                  {"endpoint": "closed"})
        yield Scraped(broker, metrics_port, metrics)
    finally:
        for client in clients:
            client.close()
        errors = []
        if worker is not None:
            try:
                worker.stop()
            except BaseException as e:  # noqa: BLE001 - reported after cleanup
                errors.append(e)
        context.destroy(linger=0)
        broker.kill()
        if errors:
            raise errors[0]


# --------------------------------------------------------------------------
# 1. the broker's HTTP endpoints


@pytest.mark.parametrize("path,body", [("/healthz", "ok\n"), ("/readyz", "ready\n")])
def test_health_endpoints_answer_200(scraped, path, body):
    status, text, _ = http_get(f"http://{scraped.metrics_address}{path}")
    assert (status, text) == (200, body)


def promtool_check_metrics(body: bytes) -> subprocess.CompletedProcess:
    """`promtool check metrics` on the raw bytes of a scrape (not re-encoded)."""
    return subprocess.run([tool("promtool"), "check", "metrics"], input=body,
                          capture_output=True, timeout=60)


def test_metrics_pass_promtool_check_metrics(scraped):
    status, body, headers = http_get_bytes(f"http://{scraped.metrics_address}/metrics")
    assert status == 200, body
    assert headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"), headers
    result = promtool_check_metrics(body)
    assert result.returncode == 0, (
        f"promtool check metrics exited {result.returncode}:\n"
        f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}")


# Service names are taken byte for byte (proto/PROTOCOL.md); one that is not
# UTF-8 as a label value would make the whole page invalid (Prometheus marks the
# target down, "invalid UTF-8 label value"), so the broker counts such services
# under service="_invalid".
def test_service_names_that_are_not_utf8_keep_metrics_scrapable(tmp_path, serve_config,
                                                                 context):
    ports = {"public": free_port(), "closed": free_port(), "workers": free_port(),
             "metrics": free_port()}
    config = tmp_path / "zguard.yaml"
    config.write_text(broker_config(ports, ports["metrics"]))
    broker = serve_config(config, ports, timeout=10)
    worker = mdp.Worker(context, broker.endpoint("workers"), b"bad\xffname", reconnect=False)
    try:
        deadline = time.monotonic() + 5
        while True:
            worker.pump(0.05)
            status, body, _ = http_get_bytes(f"http://127.0.0.1:{ports['metrics']}/metrics")
            assert status == 200
            assert b'service="bad' not in body
            if b'zguard_workers{service="_invalid",state="idle"} 1' in body:
                break
            assert time.monotonic() < deadline, "the worker never showed up in /metrics"
        result = promtool_check_metrics(body)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
    finally:
        worker.kill()


def test_every_family_is_exposed_with_help_type_and_labels(scraped):
    metrics = scraped.metrics
    zguard_families = {name for name in metrics.types if name.startswith("zguard_")}
    assert zguard_families == set(FAMILIES), "families differ from broker/metrics.cpp"
    for family, (kind, labels) in FAMILIES.items():
        assert metrics.types[family] == kind, family
        assert metrics.helps.get(family), f"{family} has no HELP text"
        samples = [(n, l) for n, l, _ in metrics.samples if metrics.family_of(n) == family]
        assert samples, f"{family} has no samples"
        for name, sample_labels in samples:
            names = set(sample_labels) - ({"le"} if name.endswith("_bucket") else set())
            assert names == labels, f"{name}{sample_labels}: expected labels {sorted(labels)}"


def test_counters_match_the_traffic(scraped):
    m = scraped.metrics
    assert m.value("zguard_requests_total", service="echo", outcome="ok") == ECHO_REQUESTS
    assert m.value("zguard_request_duration_seconds_count", service="echo") == ECHO_REQUESTS
    assert m.value("zguard_request_duration_seconds_bucket", service="echo",
                   le="+Inf") == ECHO_REQUESTS
    assert m.value("zguard_requests_total", service="_unknown",
                   outcome="unknown_service") == 1
    assert m.value("zguard_workers", service="echo", state="idle") == 1
    assert m.value("zguard_workers", service="echo", state="busy") == 0
    assert m.value("zguard_requests_queued", service="echo") == 0
    # The MMI look-up's client and the request client; at least one handshake each.
    assert m.value("zguard_auth_decisions_total", endpoint="public", mechanism="NULL",
                   decision="allowed", reason="ok") >= 2
    assert m.value("zguard_auth_decisions_total", endpoint="closed", mechanism="NULL",
                   decision="denied", reason="address_denied") >= 1
    assert m.value("zguard_handshake_failures_total", endpoint="closed", reason="auth") >= 1
    assert m.value("zguard_connections", endpoint="workers") == 1
    assert m.value("zguard_messages_total", endpoint="closed", direction="in") == 0
    assert m.value("zguard_messages_total", endpoint="public",
                   direction="in") >= ECHO_REQUESTS + 1
    assert m.value("zguard_config_reloads_total", result="failed") == 0
    build_info = [(l, v) for n, l, v in m.samples if n == "zguard_build_info"]
    assert len(build_info) == 1 and build_info[0][1] == 1, build_info
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", build_info[0][0]["version"]), build_info


# --------------------------------------------------------------------------
# 2. deploy/prometheus


def test_prometheus_config_is_valid_and_loads_the_rules():
    result = run_tool(tool("promtool"), "check", "config", str(PROMETHEUS_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout, result.stdout


def test_prometheus_config_targets_the_default_metrics_address():
    text = PROMETHEUS_YML.read_text()
    default = re.search(r"^metrics:.*listen:\s*\"?([0-9.]+:\d+)",
                        (REPO / "config" / "zguard.yaml").read_text(), re.M)
    assert default, "config/zguard.yaml has no metrics listen address"
    assert re.search(r"job_name:\s*zguard\b", text)
    assert re.search(rf"-\s*\"?{re.escape(default.group(1))}\"?\s*$", text, re.M), (
        f"prometheus.yml does not target {default.group(1)}")


def test_alert_rules_are_valid():
    result = run_tool(tool("promtool"), "check", "rules", str(ALERTS_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    names = re.findall(r"^\s*- alert:\s*(\S+)", ALERTS_YML.read_text(), re.M)
    assert set(names) >= {"ZguardDown", "AuthDenialSpike", "NoWorkersForService",
                          "RequestTimeoutsRising", "QueueBacklog", "ReloadFailures",
                          "UnsafeLibzmq", "PeersRefused"}, names
    for block in re.split(r"^\s*- alert:", ALERTS_YML.read_text(), flags=re.M)[1:]:
        name = block.split()[0]
        for key in ("for:", "severity:", "summary:", "description:"):
            assert key in block, f"alert {name} has no {key}"


# promtool unit tests: firing alerts are checked through the ALERTS series
# (labels only), so the tests do not repeat the annotation texts.
ALERT_UNIT_TESTS = """
rule_files:
  - {rules}
evaluation_interval: 1m
tests:
  - name: ZguardDown
    interval: 1m
    input_series:
      - series: 'up{{job="zguard", instance="down:9464"}}'
        values: '0x15'
      - series: 'up{{job="zguard", instance="fine:9464"}}'
        values: '1x15'
    promql_expr_test:
      - expr: ALERTS{{alertname="ZguardDown", alertstate="firing"}}
        eval_time: 30s
        exp_samples: []
      - expr: ALERTS{{alertname="ZguardDown", alertstate="firing"}}
        eval_time: 5m
        exp_samples:
          - labels: 'ALERTS{{alertname="ZguardDown", alertstate="firing", severity="critical",
                             job="zguard", instance="down:9464"}}'
            value: 1

  - name: AuthDenialSpike
    interval: 1m
    input_series:
      # 10 denials/s beside 100/s allowed: fires on the rate alone
      - series: 'zguard_auth_decisions_total{{job="zguard", instance="b", endpoint="flood",
                 mechanism="NULL", decision="denied", reason="address_denied"}}'
        values: '0+600x20'
      - series: 'zguard_auth_decisions_total{{job="zguard", instance="b", endpoint="flood",
                 mechanism="NULL", decision="allowed", reason="ok"}}'
        values: '0+6000x20'
      # 1/s denied beside 1000/s allowed: quiet
      - series: 'zguard_auth_decisions_total{{job="zguard", instance="b", endpoint="busy",
                 mechanism="PLAIN", decision="denied", reason="bad_password"}}'
        values: '0+60x20'
      - series: 'zguard_auth_decisions_total{{job="zguard", instance="b", endpoint="busy",
                 mechanism="PLAIN", decision="allowed", reason="ok"}}'
        values: '0+60000x20'
      # 0.5/s denied, 0.1/s allowed: mostly denied, fires on the share
      - series: 'zguard_auth_decisions_total{{job="zguard", instance="b", endpoint="probe",
                 mechanism="CURVE", decision="denied", reason="unknown_key"}}'
        values: '0+30x20'
      - series: 'zguard_auth_decisions_total{{job="zguard", instance="b", endpoint="probe",
                 mechanism="CURVE", decision="allowed", reason="ok"}}'
        values: '0+6x20'
      # one refused client every 10 s: all denied, but too few to matter
      - series: 'zguard_auth_decisions_total{{job="zguard", instance="b", endpoint="quiet",
                 mechanism="NULL", decision="denied", reason="address_denied"}}'
        values: '0+6x20'
    promql_expr_test:
      - expr: ALERTS{{alertname="AuthDenialSpike", alertstate="firing"}}
        eval_time: 10m
        exp_samples:
          - labels: 'ALERTS{{alertname="AuthDenialSpike", alertstate="firing",
                             severity="warning", job="zguard", instance="b", endpoint="flood"}}'
            value: 1
          - labels: 'ALERTS{{alertname="AuthDenialSpike", alertstate="firing",
                             severity="warning", job="zguard", instance="b", endpoint="probe"}}'
            value: 1

  - name: NoWorkersForService
    interval: 1m
    input_series:
      # no workers, requests keep arriving (and timing out): fires
      - series: 'zguard_workers{{job="zguard", instance="b", service="echo", state="idle"}}'
        values: '0x20'
      - series: 'zguard_workers{{job="zguard", instance="b", service="echo", state="busy"}}'
        values: '0x20'
      - series: 'zguard_requests_total{{job="zguard", instance="b", service="echo",
                 outcome="timeout"}}'
        values: '0+6x20'
      # no workers, nothing queued, no requests: quiet
      - series: 'zguard_workers{{job="zguard", instance="b", service="unused", state="idle"}}'
        values: '0x20'
      - series: 'zguard_requests_queued{{job="zguard", instance="b", service="unused"}}'
        values: '0x20'
      - series: 'zguard_requests_total{{job="zguard", instance="b", service="unused",
                 outcome="ok"}}'
        values: '5x20'
      # no workers, requests waiting: fires
      - series: 'zguard_workers{{job="zguard", instance="b", service="stuck", state="idle"}}'
        values: '0x20'
      - series: 'zguard_requests_queued{{job="zguard", instance="b", service="stuck"}}'
        values: '3x20'
      # workers and traffic: quiet
      - series: 'zguard_workers{{job="zguard", instance="b", service="fine", state="idle"}}'
        values: '2x20'
      - series: 'zguard_requests_total{{job="zguard", instance="b", service="fine",
                 outcome="ok"}}'
        values: '0+600x20'
      # zguard's own buckets never have workers: quiet
      - series: 'zguard_workers{{job="zguard", instance="b", service="_unknown", state="idle"}}'
        values: '0x20'
      - series: 'zguard_requests_total{{job="zguard", instance="b", service="_unknown",
                 outcome="unknown_service"}}'
        values: '0+60x20'
    promql_expr_test:
      - expr: ALERTS{{alertname="NoWorkersForService", alertstate="firing"}}
        eval_time: 1m
        exp_samples: []
      - expr: ALERTS{{alertname="NoWorkersForService", alertstate="firing"}}
        eval_time: 10m
        exp_samples:
          - labels: 'ALERTS{{alertname="NoWorkersForService", alertstate="firing",
                             severity="critical", job="zguard", instance="b", service="echo"}}'
            value: 1
          - labels: 'ALERTS{{alertname="NoWorkersForService", alertstate="firing",
                             severity="critical", job="zguard", instance="b", service="stuck"}}'
            value: 1

  - name: RequestTimeoutsRising
    interval: 1m
    input_series:
      # 1/s timeouts of 11/s: fires
      - series: 'zguard_requests_total{{job="zguard", instance="b", service="slow",
                 outcome="timeout"}}'
        values: '0+60x20'
      - series: 'zguard_requests_total{{job="zguard", instance="b", service="slow",
                 outcome="ok"}}'
        values: '0+600x20'
      # 1/s no_worker of 101/s: under 5%, quiet
      - series: 'zguard_requests_total{{job="zguard", instance="b", service="big",
                 outcome="no_worker"}}'
        values: '0+60x20'
      - series: 'zguard_requests_total{{job="zguard", instance="b", service="big",
                 outcome="ok"}}'
        values: '0+6000x20'
      # 0.05/s, all of them timeouts: too few, quiet
      - series: 'zguard_requests_total{{job="zguard", instance="b", service="rare",
                 outcome="timeout"}}'
        values: '0+3x20'
    promql_expr_test:
      - expr: ALERTS{{alertname="RequestTimeoutsRising", alertstate="firing"}}
        eval_time: 3m
        exp_samples: []
      - expr: ALERTS{{alertname="RequestTimeoutsRising", alertstate="firing"}}
        eval_time: 10m
        exp_samples:
          - labels: 'ALERTS{{alertname="RequestTimeoutsRising", alertstate="firing",
                             severity="warning", job="zguard", instance="b", service="slow"}}'
            value: 1

  - name: QueueBacklog
    interval: 1m
    input_series:
      - series: 'zguard_requests_queued{{job="zguard", instance="b", service="backlog"}}'
        values: '500x20'
      - series: 'zguard_requests_queued{{job="zguard", instance="b", service="burst"}}'
        values: '500x3 0x17'
      - series: 'zguard_requests_queued{{job="zguard", instance="b", service="small"}}'
        values: '50x20'
    promql_expr_test:
      - expr: ALERTS{{alertname="QueueBacklog", alertstate="firing"}}
        eval_time: 10m
        exp_samples:
          - labels: 'ALERTS{{alertname="QueueBacklog", alertstate="firing", severity="warning",
                             job="zguard", instance="b", service="backlog"}}'
            value: 1

  - name: ReloadFailures
    interval: 1m
    input_series:
      - series: 'zguard_config_reloads_total{{job="zguard", instance="b", result="failed"}}'
        values: '0 0 0 1x40'
      - series: 'zguard_config_reloads_total{{job="zguard", instance="b", result="ok"}}'
        values: '0+1x40'
    promql_expr_test:
      - expr: ALERTS{{alertname="ReloadFailures", alertstate="firing"}}
        eval_time: 2m
        exp_samples: []
      - expr: ALERTS{{alertname="ReloadFailures", alertstate="firing"}}
        eval_time: 6m
        exp_samples:
          - labels: 'ALERTS{{alertname="ReloadFailures", alertstate="firing",
                             severity="warning", job="zguard", instance="b", result="failed"}}'
            value: 1
      - expr: ALERTS{{alertname="ReloadFailures", alertstate="firing"}}
        eval_time: 30m
        exp_samples: []

  - name: UnsafeLibzmq
    interval: 1m
    input_series:
      - series: 'zguard_libzmq_reserved_routing_ids_refused{{job="zguard", instance="stock"}}'
        values: '0x30'
      - series: 'zguard_libzmq_reserved_routing_ids_refused{{job="zguard", instance="image"}}'
        values: '1x30'
    promql_expr_test:
      - expr: ALERTS{{alertname="UnsafeLibzmq", alertstate="firing"}}
        eval_time: 5m
        exp_samples: []
      - expr: ALERTS{{alertname="UnsafeLibzmq", alertstate="firing"}}
        eval_time: 15m
        exp_samples:
          - labels: 'ALERTS{{alertname="UnsafeLibzmq", alertstate="firing", severity="warning",
                             job="zguard", instance="stock"}}'
            value: 1

  - name: PeersRefused
    interval: 1m
    input_series:
      # 120/min = 2/s of long routing ids on "public"; a trickle of 30/min on "lan".
      - series: 'zguard_refused_messages_total{{job="zguard", instance="b", endpoint="public",
                                                reason="routing_id_too_long"}}'
        values: '0+120x30'
      - series: 'zguard_worker_refusals_total{{job="zguard", instance="b", endpoint="public",
                                               reason="not_registered"}}'
        values: '0x30'
      - series: 'zguard_refused_messages_total{{job="zguard", instance="b", endpoint="lan",
                                                reason="no_connection"}}'
        values: '0+30x30'
      - series: 'zguard_worker_refusals_total{{job="zguard", instance="b", endpoint="lan",
                                               reason="not_registered"}}'
        values: '0x30'
    promql_expr_test:
      - expr: ALERTS{{alertname="PeersRefused", alertstate="firing"}}
        eval_time: 4m
        exp_samples: []
      - expr: ALERTS{{alertname="PeersRefused", alertstate="firing"}}
        eval_time: 15m
        exp_samples:
          - labels: 'ALERTS{{alertname="PeersRefused", alertstate="firing", severity="warning",
                             job="zguard", instance="b", endpoint="public"}}'
            value: 1
"""


def test_alerts_fire_when_they_should(tmp_path):
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(ALERT_UNIT_TESTS.format(rules=ALERTS_YML))
    result = run_tool(tool("promtool"), "test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------
# 3. deploy/grafana


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_is_a_grafana_dashboard(dashboard):
    assert dashboard["title"] and dashboard["uid"]
    assert 36 <= dashboard["schemaVersion"] <= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    panels = dashboard_panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for item in [panel] + panel["targets"]:
            assert item["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, (
                panel["title"])
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    # The panels the operators asked for.
    exprs = "\n".join(dashboard_exprs(dashboard))
    for needed in ("zguard_auth_decisions_total", "zguard_requests_total",
                   "zguard_workers", "zguard_requests_queued", "zguard_connections",
                   "zguard_handshake_failures_total", "zguard_messages_total",
                   "zguard_bytes_total"):
        assert needed in exprs, needed
    for quantile in ("0.5", "0.95", "0.99"):
        assert re.search(rf"histogram_quantile\({quantile},[^\n]*"
                         r"zguard_request_duration_seconds_bucket", exprs), quantile


def test_dashboard_uses_only_exposed_series(scraped, dashboard):
    metrics = scraped.metrics
    exposed = metrics.names()
    used = set()
    for expr in dashboard_exprs(dashboard) + dashboard_variable_queries(dashboard):
        used |= set(METRIC_NAME.findall(expr))
    assert used, "the dashboard names no zguard metric"
    problems = []
    for name in sorted(used):
        family = metrics.family_of(name)
        if name in metrics.types and metrics.types[name] in ("histogram", "summary"):
            problems.append(f"{name}: a {metrics.types[name]} has no series of that name; "
                            "use _bucket, _sum or _count")
        elif family is None or name not in exposed:
            problems.append(f"{name}: not in /metrics")
    assert not problems, "\n".join(problems)
    # ... and every family appears on the dashboard.
    missing = set(FAMILIES) - {metrics.family_of(name) for name in used}
    assert not missing, f"families without a panel: {sorted(missing)}"


# --------------------------------------------------------------------------
# 4. a real Prometheus


class PrometheusServer:
    def __init__(self, binary: str, config: Path, data: Path, port: int, log: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.data = data
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def api(self, path: str, **params: str) -> dict:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body, _ = http_get(url)
        try:
            answer = json.loads(body)
        except ValueError:
            raise AssertionError(f"GET {url}: {status} {body[:500]}") from None
        return answer

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def wait_until(self, what: str, check, timeout: float):
        """Polls check() (returns a truthy value when done) until `timeout`."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n"
                                     f"{self.log()}")
            try:
                last = check()
                if last:
                    return last
            except (OSError, ValueError, AssertionError) as e:  # not listening yet
                last = e
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what} not within {timeout}s (last: {last!r}):\n"
                                     f"{self.log()}")
            time.sleep(0.25)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        shutil.rmtree(self.data, ignore_errors=True)


def prometheus_config_for(metrics_address: str) -> str:
    """deploy/prometheus/prometheus.yml with the test broker as target and 1 s intervals."""
    text = PROMETHEUS_YML.read_text()
    replacements = [
        (r"127\.0\.0\.1:9464", metrics_address),
        (r"(scrape_interval|evaluation_interval):\s*\S+", r"\1: 1s"),
        (r"scrape_timeout:\s*\S+", "scrape_timeout: 900ms"),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text)
        assert count, f"{pattern!r} not in {PROMETHEUS_YML}"
    return text



def instant_value(answer: dict) -> Optional[float]:
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


@pytest.fixture
def prometheus(scraped, tmp_path):
    binary = tool("prometheus")
    tool("promtool")
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "prometheus.yml").write_text(prometheus_config_for(scraped.metrics_address))
    shutil.copy(ALERTS_YML, directory / ALERTS_YML.name)  # rule_files is relative
    result = run_tool(tool("promtool"), "check", "config", str(directory / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    port = free_port()
    while port == scraped.metrics_port:
        port = free_port()
    server = PrometheusServer(binary, directory / "prometheus.yml", tmp_path / "tsdb", port,
                              tmp_path / "prometheus.log")
    try:
        yield server
    finally:
        server.stop()
    assert not (tmp_path / "tsdb").exists()


def test_prometheus_scrapes_the_broker(prometheus, scraped, dashboard):
    prometheus.wait_until(
        'up{job="zguard"} == 1',
        lambda: instant_value(prometheus.query('up{job="zguard"}')) == 1,
        PROMETHEUS_UP_TIMEOUT)
    targets = prometheus.api("targets")["data"]["activeTargets"]
    assert [(t["labels"]["instance"], t["health"], t["lastError"]) for t in targets] == [
        (scraped.metrics_address, "up", "")], targets

    # The counter, as Prometheus stored it, is the number of requests made here.
    ok = prometheus.query('zguard_requests_total{job="zguard", service="echo", outcome="ok"}')
    assert instant_value(ok) == ECHO_REQUESTS, ok
    denied = prometheus.query('sum(zguard_auth_decisions_total{endpoint="closed", '
                              'decision="denied"})')
    assert instant_value(denied) >= 1, denied

    # The alert rules load and evaluate without errors.
    def rules_evaluated():
        groups = prometheus.api("rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if not rules or any(r["health"] == "unknown" for r in rules):
            return None
        return rules
    rules = prometheus.wait_until("the alert rules evaluated", rules_evaluated, 15)
    assert {r["name"] for r in rules} >= {"ZguardDown", "AuthDenialSpike", "NoWorkersForService",
                                          "RequestTimeoutsRising", "QueueBacklog",
                                          "ReloadFailures"}
    bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    firing = [a for r in rules for a in r.get("alerts", []) if a["state"] == "firing"]
    assert not firing, firing

    # Every dashboard query is valid PromQL, with the variables filled in.
    substitutions = {"$__rate_interval": "1m", "$instance": ".*", "$service": ".*",
                     "$endpoint": ".*"}
    for expr in dashboard_exprs(dashboard):
        query = expr
        for variable, value in substitutions.items():
            query = query.replace(variable, value)
        assert "$" not in query, f"unknown dashboard variable in {expr}"
        answer = prometheus.query(query)
        assert answer["status"] == "success", (expr, answer)
