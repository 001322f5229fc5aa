#!/usr/bin/env bash
# The loopback cluster (docs/deploy.md, "A cluster on one machine"): one Redis, an origin, two parent caches, three
# edges and a DNS global load balancer, each an Edgebox on its own loopback address. Ctrl-C stops them all.
#   usage: bash run.sh        (from this folder, in a project with edgebox installed: npm install edgebox)
#   env:   PORT (8080)  DNS_PORT (5300)  REDIS_PORT (6390)
set -euo pipefail
cd "$(dirname "$0")"
PORT=${PORT:-8080} DNS_PORT=${DNS_PORT:-5300} REDIS_PORT=${REDIS_PORT:-6390}
export PORT DNS_PORT REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
command -v redis-server >/dev/null || { echo "run.sh needs redis-server (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)" >&2; exit 1; }
mkdir -p data
pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null; wait; }
trap stop EXIT INT TERM
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir data > data/redis.log 2>&1 & pids+=($!)
edgebox() { npx --no-install edgebox "$@"; }
edgebox --config origin.config.mts > data/origin.log 2>&1 & pids+=($!)
for n in 1 2; do PARENT=$n edgebox --config parent.config.mts > "data/parent-$n.log" 2>&1 & pids+=($!); done
for n in 1 2 3; do EDGE=$n edgebox --config edge.config.mts > "data/edge-$n.log" 2>&1 & pids+=($!); done
edgebox --config dns.config.mts > data/dns.log 2>&1 & pids+=($!)
sleep 3
cat <<TXT
The cluster is up (logs in data/):
  dig @127.0.0.40 -p $DNS_PORT www.cluster.test A +short        the healthy edges
  curl -si http://127.0.0.11:$PORT/                              through edge 1, a parent and the origin
  curl -sN http://127.0.0.12:$PORT/live/sse?ch=room:demo          a subscriber on edge 2
  curl -s -H 'authorization: Bearer cluster-demo-publish-key' -d '{"ch":"room:demo","d":"hi"}' \\
       -H 'content-type: application/json' http://127.0.0.13:$PORT/live/api/publish    published on edge 3
Ctrl-C stops everything.
TXT
wait
