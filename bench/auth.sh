#!/usr/bin/env bash
# Edgebox single sign-on benchmark (`npm run bench:auth`). See bench/README.md, "Single sign-on benchmark".
#
# On loopback (127.0.0.1) only: one origin (bench/servers/origin.mjs), one external OpenID Connect provider
# (bench/servers/auth-idp.mjs: the tests' oidc-provider with its development login form) and ONE Edgebox with two
# proxy routes to the same origin, the same in everything but the gate:
#     /open/    proxy, stripPrefix                      (no auth)
#     /gated/   proxy, stripPrefix, "auth": true        (a session or a bearer token, else 401 / a login redirect)
# 1. REQ: GET /open/nostore and GET /gated/nostore (the origin's 1 KiB, Cache-Control: no-store, as proxy.sh's UNC
#    test), wrk -t1 -c$CONNS as in proxy.sh, the gated one with the Cookie of a session made by one login before
#    the runs (bench/servers/auth-login.mjs cookie). Figure: req per Edgebox CPU-second (lib.sh load_run; the origin's
#    share is read beside, never counted). Target (issue 16): gated / open >= 0.85, the median of per-round ratios.
# 2. LOGIN: LOGINS complete login round trips one after the other, each in a new cookie jar (navigation -> the
#    provider's authorization endpoint -> its login form -> the form post -> its redirects -> Edgebox's callback ->
#    the landing page), after WARM_LOGINS not measured; milliseconds per round trip (median, p95), the callback
#    request's own latency and its share, Edgebox's and the provider's CPU per login. Reported, no target.
# Edgebox pinned to core $SRV_CPU; wrk, the login driver, the origin and the provider to core $GEN_CPU (ORIGIN_CPU,
# IDP_CPU). Installs nothing: wrk, and the repository's node_modules (oidc-provider, undici, the pinned Node 24).
#
# usage: bash bench/auth.sh [quick]
#   env: ROUNDS (3)  PASSES (1: lib.sh)  DUR (8 s measured)  WARM (2 s warm-up in round 1)  WARM_NEXT (1 s later)
#        CONNS (50)  LOGINS (200)  WARM_LOGINS (20)  SRV_CPU (0)  GEN_CPU (1)  ORIGIN_CPU (GEN_CPU)  IDP_CPU (GEN_CPU)
#        EDGEBOX_STDOUT=file|null   MAX_SECONDS (600)  MIN_SRV_CPU (0.8)
#   quick: ROUNDS=1 DUR=2 WARM=1 LOGINS=20 WARM_LOGINS=5 (a smoke run; no verdict)
set -uo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
export PATH="$ROOT/node_modules/.bin:$PATH"   # the project's pinned Node 24 first
source "$BENCH/lib.sh"

if [ "${1:-}" = quick ]; then ROUNDS=${ROUNDS:-1} DUR=${DUR:-2} WARM=${WARM:-1} LOGINS=${LOGINS:-20} WARM_LOGINS=${WARM_LOGINS:-5}; fi
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-8}; WARM=${WARM:-2}; CONNS=${CONNS:-50}; LOGINS=${LOGINS:-200}; WARM_LOGINS=${WARM_LOGINS:-20}
SRV_CPU=${SRV_CPU:-0}; GEN_CPU=${GEN_CPU:-1}; ORIGIN_CPU=${ORIGIN_CPU:-$GEN_CPU}; IDP_CPU=${IDP_CPU:-$GEN_CPU}
MAX_SECONDS=${MAX_SECONDS:-600}; EDGEBOX_STDOUT=${EDGEBOX_STDOUT:-file}

bench_setup   # folders, the cleanup guard (every server in PID stopped at exit), the pinned Node (lib.sh)

for t in wrk taskset setsid curl; do command -v $t >/dev/null || { log "$t is missing (bench/proxy.sh installs wrk: apt-get install wrk)"; exit 1; }; done
[ -f "$ROOT/node_modules/oidc-provider/package.json" ] || { log "oidc-provider is missing from node_modules; run npm install first"; exit 1; }
make_index_html   # lib.sh: the 1 KiB fixture the origin answers

# ---------------------------------------------------------------------------------------------------------------
# servers (ports 18900-18901; the provider on a free port it prints)
declare -A PORT=([origin]=18900 [edgebox]=18901)
ORIGIN=${PORT[origin]}; EB="http://127.0.0.1:${PORT[edgebox]}"
D="$RUN/auth"; rm -rf "$D"; mkdir -p "$D"
# the sessions' data folder: Edgebox refuses one inside its package folder (npm replaces it), so a temporary one
DATA=$(mktemp -d "${TMPDIR:-/tmp}/edgebox-bench-auth.XXXXXX"); on_exit 'rm -rf "$DATA"'
EB_LOG="$RUN/auth-edgebox-access.jsonl"; [ "$EDGEBOX_STDOUT" = null ] && EB_LOG=/dev/null
SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
for n in origin edgebox; do port_busy "${PORT[$n]}" && { log "port ${PORT[$n]} (for $n) is already in use"; exit 1; }; done

: > "$RUN/origin.err"
SRV_CPU=$ORIGIN_CPU start_srv origin /dev/null node "$BENCH/servers/origin.mjs" "$ORIGIN" "$WWW/index.html"; PID[origin]=$SRV_PID
: > "$RUN/idp.err"; : > "$D/idp.out"
SRV_CPU=$IDP_CPU start_srv idp "$D/idp.out" node "$BENCH/servers/auth-idp.mjs" "$EB" "$SECRET"; PID[idp]=$SRV_PID
ISSUER=""
for i in $(seq 1 150); do
  ISSUER=$(sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p' "$D/idp.out" | head -1); [ -n "$ISSUER" ] && break
  kill -0 "${PID[idp]}" 2>/dev/null || break; sleep 0.1
done
[ -n "$ISSUER" ] || { log "the provider did not start; its stderr:"; cat "$RUN/idp.err" >&2; exit 1; }

ROUTE_PROXY="\"proxy\":{\"upstreams\":[\"http://127.0.0.1:$ORIGIN\"],\"stripPrefix\":true}"
cat > "$D/edgebox.json" <<EOF
{"listen":[{"host":"127.0.0.1","port":${PORT[edgebox]}}],"dataDir":"$DATA",
 "auth":{"providers":{"bench":{"issuer":"$ISSUER","clientId":"edgebox","clientSecret":"$SECRET","scopes":["openid","email","profile","groups"]}}},
 "sites":[{"routes":[{"path":"/open/",$ROUTE_PROXY},{"path":"/gated/",$ROUTE_PROXY,"auth":true}]}]}
EOF
[ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"
: > "$RUN/edgebox.err"
start_srv edgebox "$EB_LOG" node "$ROOT/bin/edgebox.js" --config "$D/edgebox.json"; PID[edgebox]=$SRV_PID
for n in origin edgebox; do
  wait_port "${PORT[$n]}" || { log "$n did not start; its stderr:"; cat "$RUN/$n.err" >&2; exit 1; }
done

# ---------------------------------------------------------------------------------------------------------------
# output: everything on stdout also goes to bench/results/auth-YYYYMMDD-HHMMSS.txt (.tmp until the run completes)
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$RES/auth-$STAMP.txt"
exec > >(tee "$OUT.tmp")
echo "# Edgebox single sign-on benchmark $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# ROUNDS=$ROUNDS PASSES=$PASSES DUR=${DUR}s WARM=${WARM}s CONNS=$CONNS LOGINS=$LOGINS WARM_LOGINS=$WARM_LOGINS; Edgebox pinned to core $SRV_CPU; wrk and the login driver to core $GEN_CPU, the origin to core $ORIGIN_CPU, the provider to core $IDP_CPU"
echo "# node $(node -v) ($(command -v node)), oidc-provider $(node -p "require('$ROOT/node_modules/oidc-provider/package.json').version"), openid-client $(node -p "require('$ROOT/node_modules/openid-client/package.json').version"), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $(nproc) cores, $(uname -r)"
echo "# origin: bench/servers/origin.mjs on port $ORIGIN: /nostore = 1 KiB, Cache-Control: no-store"
echo "# provider: bench/servers/auth-idp.mjs (test/helpers/oidc.ts startTestProvider) at $ISSUER, dev login form, no consent page"
echo "# edgebox: one process on port ${PORT[edgebox]}, access log ON (the default; stdout -> $([ "$EB_LOG" = /dev/null ] && echo /dev/null || echo "bench/.peers/run/$(basename "$EB_LOG")")), Server-Timing ON,"
echo "#   sessions in node:sqlite (the default store, in a fresh temporary dataDir), routes: /open/ proxy (stripPrefix) and /gated/ the same with \"auth\": true"
echo "# server CPU = Edgebox's own process group only (origin and provider are separate groups)"

# ---------------------------------------------------------------------------------------------------------------
# checks, then one login for the session the gated load carries
echo "## checks"
CHECK_FAIL=(); PROBLEMS=()
get() { curl -s -o /dev/null -D "$D/hdr" --max-time 10 -w '%{http_code} %{size_download}' "$@"; }
hdr() { tr -d '\r' < "$D/hdr" | awk -F': ' -v h="$1" 'tolower($1)==h {print $2}'; }
chk() {  # chk LABEL GOT WANT
  printf '%-58s %s\n' "$1" "$2"
  [[ "$2" == $3* ]] || CHECK_FAIL+=("$1: got '$2', want '$3'")
}
chk "GET /open/nostore" "$(get "$EB/open/nostore")" "200 1024"
chk "GET /gated/nostore, no cookie, Accept: */*" "$(get "$EB/gated/nostore")" "401"
r=$(get -H 'Accept: text/html' -H 'Sec-Fetch-Mode: navigate' "$EB/gated/nostore")
loc=$(hdr location)
chk "GET /gated/nostore, no cookie, a navigation" "$r -> ${loc%%\?*}" "302 0 -> $ISSUER/auth"
COOKIE=$(timeout 60 taskset -c "$GEN_CPU" node "$BENCH/servers/auth-login.mjs" cookie "$EB/gated/nostore" 2>"$D/login.err")
chk "one login (bench/servers/auth-login.mjs cookie)" "$([ -n "$COOKIE" ] && echo "session cookie ${COOKIE%%=*}" || echo "failed: $(head -c 300 "$D/login.err")")" "session cookie edgebox-session"
chk "GET /gated/nostore with the session cookie" "$(get -H "Cookie: $COOKIE" "$EB/gated/nostore")" "200 1024"
chk "GET /gated/nostore with a forged session cookie" "$(get -H "Cookie: edgebox-session=$(head -c 32 /dev/urandom | base64 | tr '/+' '_-' | tr -d '=')" "$EB/gated/nostore")" "401"
if [ "$EB_LOG" != /dev/null ]; then
  sleep 1.2   # the access log is written in batches, at least once a second
  l=$(grep '"path":"/gated/nostore","status":200' "$EB_LOG" | tail -1)
  chk "access log of the gated request: auth, user" "$(jfield "$l" auth), $(jfield "$l" user)" "allow, alice"
fi
for c in "${CHECK_FAIL[@]}"; do PROBLEMS+=("check: $c"); done

# ---------------------------------------------------------------------------------------------------------------
# REQ: wrk -t1 -c$CONNS on core $GEN_CPU through load_run (lib.sh), as proxy.sh's wrk_run
declare -A URL=([open]="$EB/open/nostore" [gated]="$EB/gated/nostore")
origin_hits() { curl -s --max-time 5 "http://127.0.0.1:$ORIGIN/__hits"; }
wrk_run() {  # wrk_run TEST ROUND NAME
  local test=$1 r=$2 n=$3 h0 h1 loglines="" warn="" cmd
  cmd=(wrk -t1 -c"$CONNS" -d@DUR@s)
  [ "$n" = gated ] && cmd+=(-H "Cookie: $COOKIE")
  cmd+=("${URL[$n]}")
  warm_up "$(warm_s "$r")" "${cmd[@]}"
  [ "$EB_LOG" != /dev/null ] && : > "$EB_LOG"
  h0=$(origin_hits)
  load_run -k wrk -p "${PID[edgebox]}" -x "${PID[origin]}" -o "$D/wrk.out" -- "${cmd[@]}"
  h1=$(origin_hits)
  [ "$EB_LOG" != /dev/null ] && { sleep 0.3; loglines=" access_log_lines=$(wc -l < "$EB_LOG")"; }
  awk -v g="${LR_GEN_CPU:-0}" 'BEGIN { exit !(g >= 0.9) }' && warn=" (wrk near the limit of core $GEN_CPU)"
  printf '%-4s round%s %-6s %s orig_cpu=%s origin_requests=%s%s%s\n' "$test" "$r" "$n" "$LR_LINE" "$LR_X_CPU" "$(( ${h1:-0} - ${h0:-0} ))" "$loglines" "$warn"
  [ -n "$LR_DROP" ] && sed 's/^/    wrk: /' "$D/wrk.out" | grep -iE 'error|non-2xx|unable' | head -5
  # beside the judged figures: every run that answered without errors, also those under the MIN_SRV_CPU floor (on
  # this shared machine another job on core $SRV_CPU often takes a share of it; the figure per Edgebox CPU-second
  # still compares the two routes), for information only
  [ -n "$LR_RATE" ] && [ "$LR_COUNT" != 0 ] && [ "$LR_ERRORS" = 0 ] && [ "$LR_SOCK_ERRORS" = 0 ] && ANY_R[$test,$n,$r]+="$LR_PER_CPU "
  keep_run "$test" "$n" "$r"
}
declare -A ANY_R=()
SET=(open gated)
if [ ${#CHECK_FAIL[@]} -gt 0 ] && [ -z "$COOKIE" ]; then
  echo "## load runs skipped: no session (the login failed)"
else
  echo "## load runs (wrk -t1 -c$CONNS, ${DUR}s measured after a warm-up, ${WARM}s in round 1 and $(warm_s 2)s later; REQ = GET /open/nostore or GET /gated/nostore with the session cookie, through Edgebox to the origin)"
  for r in $(seq 1 "$ROUNDS"); do
    for p in $(seq 1 "$PASSES"); do
      for n in $(rotate "$(pass_k "$r" "$p")" "${SET[@]}"); do wrk_run REQ "$r" "$n"; done
    done
  done
fi

# ---------------------------------------------------------------------------------------------------------------
# LOGIN: WARM_LOGINS not measured, then LOGINS measured, one after the other; Edgebox's and the provider's CPU around
# the measured ones; the callback's time as Edgebox itself logged it (the access log's ms) beside the client's
echo "## login round trips (bench/servers/auth-login.mjs timed: each a new cookie jar, $LOGINS measured after $WARM_LOGINS not measured; driver on core $GEN_CPU)"
LOGIN_JSON=""
if [ -n "$COOKIE" ]; then
  timeout 120 taskset -c "$GEN_CPU" node "$BENCH/servers/auth-login.mjs" timed "$EB/gated/nostore" "$WARM_LOGINS" >/dev/null 2>"$D/login.err"
  [ "$EB_LOG" != /dev/null ] && { sleep 1.2; : > "$EB_LOG"; }
  c0=$(grp_cpu "${PID[edgebox]}"); i0=$(grp_cpu "${PID[idp]}")
  LOGIN_JSON=$(timeout 240 taskset -c "$GEN_CPU" node "$BENCH/servers/auth-login.mjs" timed "$EB/gated/nostore" "$LOGINS" 2>>"$D/login.err" | grep '^{' | tail -1)
  c1=$(grp_cpu "${PID[edgebox]}"); i1=$(grp_cpu "${PID[idp]}")
  [ -n "$LOGIN_JSON" ] || { PROBLEMS+=("login round trips: no result ($(head -c 300 "$D/login.err"))"); }
fi
if [ -n "$LOGIN_JSON" ]; then
  CB_SRV=""
  if [ "$EB_LOG" != /dev/null ]; then
    sleep 1.2
    CB_SRV=$(grep '"path":"/_edgebox/auth/callback"' "$EB_LOG" | grep -o '"ms":[0-9.]*' | cut -d: -f2 | sort -g |
      awk '{ a[NR] = $1 } END { if (NR) printf "median %.2f, p95 %.2f ms (%d callbacks)", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2), a[int(NR * 0.95 + 0.999)], NR }')
  fi
  LOGIN_JSON="$LOGIN_JSON" EB_CPU=$(calc "$c1 - $c0") IDP_S=$(calc "$i1 - $i0") CB_SRV="$CB_SRV" node -e '
    const j = JSON.parse(process.env.LOGIN_JSON), n = j.logins || 1
    const s = (o) => `median ${o.median.toFixed(2)}  p95 ${o.p95.toFixed(2)}  mean ${o.mean.toFixed(2)}  (min ${o.min.toFixed(2)}, max ${o.max.toFixed(2)})`
    console.log(`LOGIN logins=${j.logins} failed=${j.failed} hops_per_trip=${j.hops} wall=${j.wall_s}s (${(j.logins / j.wall_s).toFixed(1)} logins/s, one at a time)`)
    console.log(`  round trip, ms:                          ${s(j.total_ms)}`)
    console.log(`  Edgebox callback request alone, ms:      ${s(j.callback_ms)}`)
    console.log(`  Edgebox first redirect + landing, ms:    ${s(j.edgebox_other_ms)}`)
    console.log(`  provider requests (the other hops), ms: ${s(j.provider_ms)}`)
    console.log(`  callback share of a round trip:          median ${(100 * j.callback_share_median).toFixed(1)}%  (of the summed times ${(100 * j.callback_share_of_sum).toFixed(1)}%)`)
    if (process.env.CB_SRV) console.log(`  callback as Edgebox logged it (ms):      ${process.env.CB_SRV}`)
    console.log(`  CPU per login: Edgebox ${(1000 * process.env.EB_CPU / n).toFixed(2)} ms, provider ${(1000 * process.env.IDP_S / n).toFixed(2)} ms (process groups, over the measured logins)`)
    if (j.first_failure) console.log(`  first failure: ${j.first_failure}`)'
  [ "$(jnum "$LOGIN_JSON" failed)" != 0 ] && PROBLEMS+=("login round trips: $(jnum "$LOGIN_JSON" failed) of $LOGINS failed")
fi

# ---------------------------------------------------------------------------------------------------------------
# summary
echo
echo "## summary: medians over $ROUNDS round(s); req/srv-cpu-s = req/s divided by the share of core $SRV_CPU Edgebox used (origin not counted)"
echo "### REQ: GET /open/nostore vs GET /gated/nostore with a valid session; 'x open' = median of per-round ratios of req/srv-cpu-s (of req/s in brackets)"
summary_table REQ open req/s "${SET[@]}"
echo
echo "## targets (the same Edgebox, the same upstream; per Edgebox CPU-second)"
echo "# verdict on the median of per-round ratios; '-' marks a round where either run was left out"
verdict_gate   # lib.sh: no verdict for a smoke run or failed checks
target_line "$(printf '%-3s %-18s / %-12s req per server-CPU-second' REQ gated open)" FIG_R REQ gated open '>=' 0.85 \
  "[/gated/: proxy + \"auth\": true, Cookie: a valid session] vs [/open/: the same proxy, no auth]"
info_line "REQ gated / open, req/s" RATE_R REQ gated open
info_line "REQ gated / open, per srv-CPU-s, all runs w/o errors" ANY_R REQ gated open
echo "# (the last line counts the runs left out only for Edgebox's share of its core being under MIN_SRV_CPU: not judged)"
echo "LOGIN round trips: reported, no target (see above)"

echo
[ ${#PROBLEMS[@]} -gt 0 ] && { echo "NOTE: problems seen:"; printf '  %s\n' "${PROBLEMS[@]}"; }
[ ${#DROPPED[@]} -gt 0 ] && { echo "NOTE: ${#DROPPED[@]} run(s) left out of the medians:"; printf '  %s\n' "${DROPPED[@]}"; }
if [ ${#PROBLEMS[@]} = 0 ] && [ ${#DROPPED[@]} = 0 ]; then
  echo "all checks passed; all runs answered with 2xx/3xx only, no socket errors, Edgebox kept its core busy; every login landed"
fi
[ ${#CHECK_FAIL[@]} -gt 0 ] && echo "NOTE: checks failed: no target is judged"
if [ "$ROUNDS" -lt 3 ]; then echo "NOTE: ROUNDS=$ROUNDS (< 3): a smoke run; no target is judged"; fi
mv "$OUT.tmp" "$OUT"
echo "results: ${OUT#$ROOT/}"
