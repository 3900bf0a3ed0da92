"""SIGHUP makes `zguard serve` re-read its security files without dropping anything."""
import signal
import subprocess
import time

from conftest import ZGUARD_BIN


def test_sighup_reloads_and_keeps_serving(start_broker, tmp_path):
    broker = start_broker(services={"echo": {}})
    worker = subprocess.Popen([ZGUARD_BIN, "echo-worker", "--connect", broker.worker_endpoint,
                               "--service", "echo"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def call():
            return subprocess.run([ZGUARD_BIN, "call", "--connect", broker.client_endpoint,
                                   "-t", "3s", "echo", "ping"], capture_output=True, text=True,
                                  timeout=10)
        assert call().stdout == "ping\n"
        broker.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "received SIGHUP" not in broker.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "received SIGHUP" in broker.log()
        assert broker.alive()
        assert call().stdout == "ping\n"
    finally:
        worker.terminate()
        worker.wait(10)
