#!/usr/bin/python3
"""A Majordomo worker process for the fault tests: `fault_worker.py ENDPOINT SERVICE DELAY LOG`.

Serves SERVICE with mdp.Worker, sleeps DELAY seconds per request (so that a kill -9 often
lands while it holds one), and appends each request's body (the request id) to LOG before it
replies, so the test knows which requests were executed, and how often.
"""

import sys
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mdp  # noqa: E402


def main() -> None:
    endpoint, service, delay, log_path = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    context = zmq.Context()
    worker = mdp.Worker(context, endpoint, service, heartbeat=0.2, liveness=3)
    with open(log_path, "a", buffering=1) as log:
        while True:
            try:
                request = worker.recv(timeout=1.0)
            except mdp.MdpTimeout:
                continue
            log.write(request.body[0].decode() + "\n")
            time.sleep(delay)
            worker.reply(request.address, request.body)


if __name__ == "__main__":
    main()
