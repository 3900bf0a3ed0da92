#!/bin/sh
# The `keys` service of deploy/docker-compose.yml: makes the demo certificates once.
#   /keys                 the broker's folder: broker.key_secret, clients/*.key, workers/*.key
#   /issued/NAME/         what NAME (a client or a worker) holds: broker.key (public) and its
#                         own NAME.key_secret; nothing else, so each mounts only its folder
# A key that exists is kept, and a public key goes into the broker's store only when its pair
# is made: removing it from the store later (revoking) lasts across restarts.
set -eu
mkdir -p /keys/clients /keys/workers
if [ ! -e /keys/broker.key_secret ]; then
  zguard keygen broker --dir /keys
fi
issue() {  # issue NAME STORE
  mkdir -p "/issued/$1"
  cp /keys/broker.key "/issued/$1/broker.key"
  if [ ! -e "/issued/$1/$1.key_secret" ]; then
    zguard keygen "$1" --dir "/issued/$1"
    cp "/issued/$1/$1.key" "/keys/$2/$1.key"
  fi
}
issue demo-client clients
issue echo-worker workers
# The broker and the worker run as UID 10001.
chown -R 10001:10001 /keys /issued
