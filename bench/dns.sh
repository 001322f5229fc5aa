#!/usr/bin/env bash
# Edgebox DNS benchmark (`npm run bench:dns`). See bench/README.md, "DNS benchmark".
#
# dnsperf (Debian's dnsperf, on core $GEN_CPU) against servers pinned to core $SRV_CPU, on loopback only, query
# logging off for every server; figure: queries answered per server CPU-second (one dnsperf process saturates its
# core near the fast servers' rate, so queries per second would measure dnsperf):
#   AUTH  1000 names of one zone (hostN.bench.test A), authoritative answers:
#         edgebox (the zone from a file), bare (bench/servers/dns-bare.mjs: node:dgram + dns-packet, the records in a map),
#         knot (Knot DNS, Debian's knot)
#   GSLB  one balanced name (www.gslb.bench.test A) over two edges that are up (bench/servers/tcp-edges.mjs):
#         edgebox (dns.balance, tcp health checks), bare (the same two addresses from its map),
#         pdns (PowerDNS with the bind backend and a Lua record: ifportup(PORT, {'127.0.0.1', '127.0.0.2'}))
#   RES   cache hits of a caching resolver, every name answered before the run (a warm-up pass):
#         edgebox-resolver (dns.resolver forwarding to an Edgebox authority for the zone), unbound (a stub zone to
#         the same authority); against bare's AUTH figure
# Targets (medians of per-round ratios): AUTH edgebox/bare >= 0.9; GSLB edgebox/bare >= 0.8; RES edgebox-resolver/bare >= 0.8.
# Knot's, PowerDNS's and Unbound's figures are reported beside.
#
# usage: bash bench/dns.sh [quick]
#   env: ROUNDS (3)  DUR (10 s)  SRV_CPU (0)  GEN_CPU (1)  CLIENTS (4: dnsperf -c)  MAX_SECONDS (1500)
#   quick: ROUNDS=1 DUR=3
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"
source "$BENCH/lib.sh"

MODE=${1:-full}
if [ "$MODE" = quick ]; then ROUNDS=${ROUNDS:-1} DUR=${DUR:-3}; fi
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-10}; SRV_CPU=${SRV_CPU:-0}; GEN_CPU=${GEN_CPU:-1}; CLIENTS=${CLIENTS:-4}
MAX_SECONDS=${MAX_SECONDS:-1500}
bench_setup

# ---------------------------------------------------------------------------------------------------------------
# peers, from Debian's packages
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v knotd >/dev/null || [ -x /usr/sbin/knotd ] || need+=(knot)
[ -x /usr/sbin/pdns_server ] || need+=(pdns-server pdns-backend-bind)
command -v unbound >/dev/null || [ -x /usr/sbin/unbound ] || need+=(unbound)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt_install "${need[@]}" || { log "apt-get install ${need[*]} failed"; exit 1; }
  # the packages' own services are not wanted: only the instances this script starts
  for svc in knot pdns unbound; do as_root systemctl stop "$svc" >/dev/null 2>&1 || as_root service "$svc" stop >/dev/null 2>&1 || true; done
fi
KNOTD=$(command -v knotd || echo /usr/sbin/knotd); PDNS=/usr/sbin/pdns_server; UNBOUND=$(command -v unbound || echo /usr/sbin/unbound)
VERSIONS="dnsperf $(dnsperf -n 0 -d /dev/null 2>&1 | sed -n 's/^Version //p' | head -1); knot $("$KNOTD" -V 2>&1 | grep -o '[0-9][0-9.]*' | head -1); pdns $("$PDNS" --version 2>&1 | grep -o 'Authoritative Server [0-9.]*' | grep -o '[0-9.]*$'); unbound $("$UNBOUND" -V 2>&1 | sed -n 's/^Version //p'); node $(node -v)"

# ---------------------------------------------------------------------------------------------------------------
# the zone and the query files
D="$RUN/dns"; rm -rf "$D"; mkdir -p "$D/knot" "$D/pdns" "$D/unbound"
EDGE_PORT=18700; AUTH_PORT=18701; HTTP_PORT=18702
declare -A PORT=([edgebox]=18710 [bare]=18711 [knot]=18712 [pdns]=18713 [edgebox-resolver]=18714 [unbound]=18715)
{
  printf '$ORIGIN bench.test.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n'
  for i in $(seq 0 999); do printf 'host%d IN A 10.%d.%d.1\n' "$i" $((i / 256)) $((i % 256)); done
} > "$D/base.zone"
cp "$D/base.zone" "$D/edgebox.zone"
cp "$D/base.zone" "$D/knot/bench.test.zone"
{ cat "$D/base.zone"; printf "www.gslb IN LUA A \"ifportup($EDGE_PORT, {'127.0.0.1', '127.0.0.2'})\"\n"; } > "$D/pdns/bench.test.zone"
node -e "
const recs = { 'www.gslb.bench.test': [{ type: 'A', ttl: 30, data: '127.0.0.1' }, { type: 'A', ttl: 30, data: '127.0.0.2' }] }
for (let i = 0; i < 1000; i++) recs['host' + i + '.bench.test'] = [{ type: 'A', ttl: 3600, data: '10.' + (i >> 8) + '.' + (i & 255) + '.1' }]
require('fs').writeFileSync('$D/bare.json', JSON.stringify(recs))"
for i in $(seq 0 999); do echo "host$i.bench.test A"; done > "$D/auth.txt"
echo "www.gslb.bench.test A" > "$D/gslb.txt"

cat > "$D/edgebox.json" <<EOF
{ "listen": [{ "host": "127.0.0.1", "port": $HTTP_PORT }], "log": { "access": false, "level": "warn" },
  "sites": [{ "routes": [{ "path": "/", "redirect": { "to": "https://bench.test/" } }] }],
  "dns": { "listen": { "host": "127.0.0.1", "port": ${PORT[edgebox]} }, "rateLimit": false, "queryLog": false,
    "zones": [{ "origin": "bench.test", "file": "$D/edgebox.zone" }],
    "balance": [{ "name": "www.gslb.bench.test", "ttl": 30, "answers": 2,
      "edges": [{ "addresses": ["127.0.0.1"] }, { "addresses": ["127.0.0.2"] }],
      "check": { "kind": "tcp", "port": $EDGE_PORT, "interval": "5s", "timeout": "1s" } }] } }
EOF
# the authority the two resolvers get the zone from (on the generator's core: its work is not measured)
cat > "$D/authority.json" <<EOF
{ "listen": [{ "host": "127.0.0.1", "port": $((HTTP_PORT + 1)) }], "log": { "access": false, "level": "warn" },
  "sites": [{ "routes": [{ "path": "/", "redirect": { "to": "https://bench.test/" } }] }],
  "dns": { "listen": { "host": "127.0.0.1", "port": $AUTH_PORT }, "rateLimit": false, "zones": [{ "origin": "bench.test", "file": "$D/edgebox.zone" }] } }
EOF
cat > "$D/resolver.json" <<EOF
{ "listen": [{ "host": "127.0.0.1", "port": $((HTTP_PORT + 2)) }], "log": { "access": false, "level": "warn" },
  "sites": [{ "routes": [{ "path": "/", "redirect": { "to": "https://bench.test/" } }] }],
  "dns": { "listen": { "host": "127.0.0.1", "port": ${PORT[edgebox-resolver]} }, "rateLimit": false,
    "resolver": { "allow": ["127.0.0.0/8"], "forward": ["127.0.0.1:$AUTH_PORT"], "prefetch": false } } }
EOF
cat > "$D/knot/knot.conf" <<EOF
server:
    listen: 127.0.0.1@${PORT[knot]}
    rundir: $D/knot
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: error
database:
    storage: $D/knot/db
zone:
  - domain: bench.test
    file: $D/knot/bench.test.zone
    storage: $D/knot
EOF
cat > "$D/pdns/named.conf" <<EOF
zone "bench.test" { type master; file "$D/pdns/bench.test.zone"; };
EOF
cat > "$D/pdns/pdns.conf" <<EOF
launch=bind
bind-config=$D/pdns/named.conf
local-address=127.0.0.1
local-port=${PORT[pdns]}
enable-lua-records=yes
daemon=no
guardian=no
socket-dir=$D/pdns
loglevel=3
log-dns-queries=no
disable-syslog=yes
distributor-threads=1
receiver-threads=1
webserver=no
api=no
EOF
cat > "$D/unbound/unbound.conf" <<EOF
server:
  interface: 127.0.0.1@${PORT[unbound]}
  port: ${PORT[unbound]}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$D/unbound"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  log-queries: no
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
  prefetch: no
  # test. is one of the names unbound answers NXDOMAIN for by itself (RFC 6761): not here
  local-zone: "test." nodefault
stub-zone:
  name: "bench.test"
  stub-addr: 127.0.0.1@$AUTH_PORT
remote-control:
  control-enable: no
EOF

start_server() {
  local n=$1
  case $n in
    edgebox) start_srv "$n" "$RUN/$n.out" node "$ROOT/bin/edgebox.js" --config "$D/edgebox.json" ;;
    edgebox-resolver) start_srv "$n" "$RUN/$n.out" node "$ROOT/bin/edgebox.js" --config "$D/resolver.json" ;;
    bare) start_srv "$n" "$RUN/$n.out" node "$BENCH/servers/dns-bare.mjs" "${PORT[bare]}" "$D/bare.json" ;;
    knot) start_srv "$n" "$RUN/$n.out" "$KNOTD" -c "$D/knot/knot.conf" ;;
    pdns) start_srv "$n" "$RUN/$n.out" "$PDNS" --config-dir="$D/pdns" ;;
    unbound) start_srv "$n" "$RUN/$n.out" "$UNBOUND" -d -c "$D/unbound/unbound.conf" ;;
  esac
  PID[$n]=$SRV_PID
}

ready() {
  local n=$1 name=$2 i
  for i in $(seq 1 100); do
    if node "$ROOT/bin/edgebox.js" dig "$name" A "@127.0.0.1:${PORT[$n]}" --json --timeout 300 2>/dev/null | grep -q '"rcode": "NOERROR"'; then return 0; fi
    sleep 0.2
  done
  log "$n did not answer $name on ${PORT[$n]} (see $RUN/$n.err)"; return 1
}

# ---------------------------------------------------------------------------------------------------------------
# helpers started once: the edges (for the health checks) and the resolvers' authority, on the generator's core
setsid taskset -c "$GEN_CPU" node "$BENCH/servers/tcp-edges.mjs" "$EDGE_PORT" >/dev/null 2>&1 </dev/null & PID[edges]=$!
setsid taskset -c "$GEN_CPU" node "$ROOT/bin/edgebox.js" --config "$D/authority.json" >"$RUN/authority.out" 2>&1 </dev/null & PID[authority]=$!
for n in edgebox bare knot pdns edgebox-resolver unbound; do start_server "$n"; done
ready edgebox host1.bench.test && ready bare host1.bench.test && ready knot host1.bench.test && ready pdns www.gslb.bench.test || exit 1
ready edgebox-resolver host1.bench.test && ready unbound host1.bench.test || exit 1
# warm the resolvers' caches: every name once
for n in edgebox-resolver unbound; do taskset -c "$GEN_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$n]}" -d "$D/auth.txt" -n 1 -c 1 >/dev/null 2>&1; done

# run LOAD SERVER ROUND : one dnsperf run; records queries per server CPU-second
declare -A QPC=() QPS=() LOST=()
run() {
  local load=$1 n=$2 r=$3 file out c0 c1 done lost qps
  file="$D/$([ "$load" = GSLB ] && echo gslb || echo auth).txt"
  c0=$(grp_cpu "${PID[$n]}")
  out=$(taskset -c "$GEN_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$n]}" -d "$file" -l "$DUR" -c "$CLIENTS" -q 200 -t 2 2>&1)
  c1=$(grp_cpu "${PID[$n]}")
  done=$(sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p' <<< "$out")
  lost=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' <<< "$out")
  qps=$(sed -n 's/^ *Queries per second: *\([0-9.]*\).*/\1/p' <<< "$out")
  local cpu; cpu=$(calc "$c1 - $c0")
  QPC[$load,$n,$r]=$(calc "${done:-0} / ($cpu > 0 ? $cpu : 1)" %.0f)
  QPS[$load,$n,$r]=${qps:-0}; LOST[$load,$n,$r]=${lost:-0}
  log "$load round$r $(printf '%-17s' "$n") qps=${qps:-0} completed=${done:-0} lost=${lost:-0} srv_cpu_s=$cpu per_srv_cpu_s=${QPC[$load,$n,$r]}"
}

LOADS=("AUTH:edgebox bare knot" "GSLB:edgebox bare pdns" "RES:edgebox-resolver unbound")
for r in $(seq 1 "$ROUNDS"); do
  for spec in "${LOADS[@]}"; do
    load=${spec%%:*}
    for n in $(rotate $((r - 1)) ${spec#*:}); do run "$load" "$n" "$r"; done
  done
done

# ---------------------------------------------------------------------------------------------------------------
# summary
per_round() { local load=$1 n=$2 out="" r; for r in $(seq 1 "$ROUNDS"); do out+="${QPC[$load,$n,$r]:-} "; done; echo "$out"; }
ratios() { local a=$1 b=$2 c=$3 d=$4 out="" r; for r in $(seq 1 "$ROUNDS"); do out+="$(ratio "${QPC[$a,$b,$r]:-}" "${QPC[$c,$d,$r]:-}") "; done; echo "$out"; }
{
  echo "# DNS benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ), $ROUNDS round(s) of $DUR s, dnsperf -c $CLIENTS on core $GEN_CPU, servers on core $SRV_CPU"
  echo "# $VERSIONS"
  echo "## queries answered per server CPU-second (median of rounds; per round in brackets)"
  for spec in "${LOADS[@]}"; do
    load=${spec%%:*}
    for n in ${spec#*:}; do printf '%-5s %-17s %8s  [%s]\n' "$load" "$n" "$(med "$(per_round "$load" "$n")")" "$(per_round "$load" "$n" | xargs)"; done
  done
  echo "## targets (median of per-round ratios)"
  tl() { local name=$1 list=$2 min=$3 m; m=$(med "$list"); printf '%-44s %5s  target >= %-4s %s   per round: %s\n' "$name" "$m" "$min" "$(awk -v m="$m" -v t="$min" 'BEGIN { print (m + 0 >= t + 0 ? "MET" : "NOT MET") }')" "$(echo "$list" | xargs)"; }
  tl "AUTH: edgebox / bare" "$(ratios AUTH edgebox AUTH bare)" 0.9
  tl "GSLB: edgebox / bare" "$(ratios GSLB edgebox GSLB bare)" 0.8
  tl "RES (cache hits): edgebox-resolver / bare" "$(ratios RES edgebox-resolver AUTH bare)" 0.8
  echo "## for information"
  printf '%-44s %5s\n' "AUTH: knot / bare" "$(med "$(ratios AUTH knot AUTH bare)")"
  printf '%-44s %5s\n' "GSLB: pdns (Lua ifportup) / bare" "$(med "$(ratios GSLB pdns GSLB bare)")"
  printf '%-44s %5s\n' "GSLB: edgebox / pdns" "$(med "$(ratios GSLB edgebox GSLB pdns)")"
  printf '%-44s %5s\n' "RES: unbound / bare" "$(med "$(ratios RES unbound AUTH bare)")"
  printf '%-44s %5s\n' "RES: edgebox-resolver / unbound" "$(med "$(ratios RES edgebox-resolver RES unbound)")"
} | tee "$RUN/dns-summary.txt"
[ "$MODE" = quick ] || cp "$RUN/dns-summary.txt" "$RES/dns-$(date +%Y%m%d-%H%M%S).txt"
