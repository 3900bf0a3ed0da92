"""Log output of `zguard serve`: JSON lines are valid JSON objects, text lines are readable."""
import json
import re
import signal
import time
import subprocess

from conftest import ZGUARD_BIN


def call(broker, *args):
    return subprocess.run([ZGUARD_BIN, "call", "--connect", broker.client_endpoint, "-t", "2s",
                           *args], capture_output=True, text=True, timeout=10)


def test_json_log_lines_parse(start_broker):
    broker = start_broker(log_level="debug", log_format="json")
    assert call(broker, "nosuch", "x").returncode == 1
    broker.signal(signal.SIGTERM)
    assert broker.wait(10) == 0
    lines = [line for line in broker.log().splitlines() if line.strip()]
    assert len(lines) >= 4  # listening x2, running, stopping, stopped
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert set(record) == {"time", "level", "msg"}
        assert record["time"].endswith("Z") and "T" in record["time"]
        assert record["level"] in {"trace", "debug", "info", "warning", "error", "critical"}
    messages = [json.loads(line)["msg"] for line in lines]
    assert any("listening on " + broker.client_endpoint in m for m in messages)
    assert any(m == "zguard stopped" for m in messages)


def test_text_log_lines(start_broker):
    broker = start_broker()
    broker.signal(signal.SIGINT)
    assert broker.wait(10) == 0
    log = broker.log()
    assert "info  endpoint public (clients, grasslands) listening on " + broker.client_endpoint in log
    assert "zguard stopped" in log


def test_repeated_denials_are_one_log_line(serve_config, tmp_path):
    """A client refused again and again is logged once, not once per attempt."""
    from conftest import free_port
    ports = {"closed": free_port(), "workers": free_port()}
    config = tmp_path / "deny.yaml"
    config.write_text(f"""log: {{ level: info }}
endpoints:
  - {{ name: closed, bind: "tcp://127.0.0.1:{ports['closed']}", role: clients,
      profile: strawhouse, deny: ["127.0.0.1"] }}
  - {{ name: workers, bind: "tcp://127.0.0.1:{ports['workers']}", role: workers,
      profile: grasslands }}
services:
  echo: {{}}
""")
    broker = serve_config(config, ports)
    for _ in range(5):
        result = subprocess.run([ZGUARD_BIN, "call", "--connect",
                                 f"tcp://127.0.0.1:{ports['closed']}", "-t", "300ms", "echo",
                                 "x"], capture_output=True, text=True, timeout=10)
        assert result.returncode == 2
    time.sleep(0.2)
    denied = [line for line in broker.log().splitlines()
              if "auth denied" in line and "endpoint=closed" in line]
    assert len(denied) == 1, denied
    assert "reason=address_denied" in denied[0]
    # After the 10 s window the rest is summed up in one line. Each call is at least one
    # denied handshake; libzmq may retry within the 300 ms (reconnect interval 100 ms), so a
    # busy machine sees more than 4.
    summary = re.compile(r"auth denied \(endpoint reason address identity: closed address_denied "
                         r"127\.0\.0\.1 -\): (\d+) more in the last 10 s")
    deadline = time.monotonic() + 15
    while not summary.search(broker.log()) and time.monotonic() < deadline:
        time.sleep(0.2)
    found = summary.search(broker.log())
    assert found, broker.log()
    assert int(found.group(1)) >= 4, found.group(0)
