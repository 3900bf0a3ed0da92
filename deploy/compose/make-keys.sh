#!/bin/sh
# The `keys` service of deploy/docker-compose.yml: makes the demo certificates once.
#   /keys    -> the broker's folder: broker.key_secret, clients/*.key, workers/*.key
#   /issued  -> for clients and workers: broker.key (public) and NAME.key_secret each
# A key that exists is kept, so restarts and `up` again change nothing.
set -eu
mkdir -p /keys/clients /keys/workers /issued
if [ ! -e /keys/broker.key_secret ]; then
  zguard keygen broker --dir /keys
fi
cp /keys/broker.key /issued/broker.key
for name in demo-client echo-worker; do
  if [ ! -e "/issued/$name.key_secret" ]; then
    zguard keygen "$name" --dir /issued
  fi
done
cp /issued/demo-client.key /keys/clients/demo-client.key
cp /issued/echo-worker.key /keys/workers/echo-worker.key
# The broker and the worker run as UID 10001.
chown -R 10001:10001 /keys /issued
