#!/usr/bin/env bash
# The fan-out benchmark (docs/PERFORMANCE.md). Starts its own redis-server, pns-mock and pushhubd
# on free loopback ports, loads N installations through the API, then measures at pns-mock:
#   a broadcast, a tag send, an && expression send, 10,000 direct sends and 1,000 sends to one
#   user each (latency, buckets visited), and h2load against pns-mock's APNs endpoint with the
#   same request count, payload, headers, connections and streams (the ceiling).
# Everything it starts is stopped on exit; results stay in --out (default .run/bench/N-TIME).
#
#   bench/fanout/fanout.sh [--devices N] [--mix apns:50,fcm:35,wns:15] [--workers W]
#                          [--apns-connections C] [--wns-connections C] [--direct 10000]
#                          [--users 1000] [--devices-per-user 2 (0: no user ids, no user sends)]
#                          [--expression 'tag-7 && tag-13 && !tag-21']
#                          [--mock-threads 2] [--dispatch KEY=VALUE]...
#                          [--h2load-threads T] [--rounds 5]
#                          [--profile none|perf|callgrind] [--chart FILE.png] [--out DIR]
#                          [--build DIR] [--hub-env VAR=VALUE]... [--hold SECONDS]
#                          [--redis-cluster M (a Redis Cluster of M masters, no replicas)]
#                          [--wns-slow-ms D (pns-mock answers every WNS request D ms late)]
# The last line of output is `devices=.. deliveries_per_s=.. ... direct_p99_ms=..`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${PUSHHUB_BUILD_DIR:-$ROOT/build}

DEVICES=1000000
MIX=apns:50,fcm:35,wns:15  # platform shares of the installations; --mix apns:100 for APNs only
WORKERS=0           # pushhubd workers; 0 = one per core, as in production
APNS_CONNECTIONS=1  # per worker (the hub's apns.connections)
WNS_CONNECTIONS=16  # per worker and WNS host (the hub's wns.connections, its default)
DISPATCH=()         # extra [dispatch] settings for pushhubd (docs/CONFIG.md)
DIRECT=10000
USERS=1000          # sends to one user ($UserId:{..}); every user owns DEVICES_PER_USER devices
DEVICES_PER_USER=2
EXPRESSION='tag-7 && tag-13 && !tag-21'
MOCK_THREADS=2
H2LOAD_THREADS=""   # default: one per connection, at most nproc
PROFILE=none
CHART=""
OUT=""
TAG=tag-7
MAX_STREAMS=1000    # pns-mock's --max-concurrent-streams (APNs' own figure)
HUB_ENV=()          # extra VAR=VALUE for pushhubd only (experiments, e.g. LD_PRELOAD)
HOLD=0              # seconds to keep the stack up after the run (ports in $OUT/ports.env)
ROUNDS=5            # broadcast + h2load pairs; the report takes the pair of median ratio
CLUSTER_MASTERS=0   # 0: one standalone redis-server; M >= 3: a cluster of M masters
WNS_SLOW_MS=0       # > 0: WNS answers this late (a slow route; see to_last_ms_by_platform)

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }
while (($#)); do
  case $1 in
    --devices) DEVICES=$2; shift ;;
    --mix) MIX=$2; shift ;;
    --workers) WORKERS=$2; shift ;;
    --apns-connections) APNS_CONNECTIONS=$2; shift ;;
    --wns-connections) WNS_CONNECTIONS=$2; shift ;;
    --dispatch) DISPATCH+=("$2"); shift ;;
    --direct) DIRECT=$2; shift ;;
    --users) USERS=$2; shift ;;
    --devices-per-user) DEVICES_PER_USER=$2; shift ;;
    --expression) EXPRESSION=$2; shift ;;
    --mock-threads) MOCK_THREADS=$2; shift ;;
    --h2load-threads) H2LOAD_THREADS=$2; shift ;;
    --profile) PROFILE=$2; shift ;;
    --hub-env) HUB_ENV+=("$2"); shift ;;
    --hold) HOLD=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --redis-cluster) CLUSTER_MASTERS=$2; shift ;;
    --wns-slow-ms) WNS_SLOW_MS=$2; shift ;;
    --chart) CHART=$2; shift ;;
    --out) OUT=$2; shift ;;
    --build) BUILD=$2; shift ;;
    -h | --help) usage ;;
    *) echo "fanout.sh: unknown flag $1" >&2; usage ;;
  esac
  shift
done
[[ $DEVICES =~ ^[0-9]+$ && $DEVICES -ge 1000 ]] || { echo "--devices: at least 1000" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--rounds: a positive number" >&2; exit 2; }
[[ $WNS_SLOW_MS =~ ^[0-9]+$ && $WNS_SLOW_MS -le 600000 ]] ||
  { echo "--wns-slow-ms: 0..600000" >&2; exit 2; }
# A profile covers the first broadcast only; more rounds would only slow a profiled run.
[[ $PROFILE == none ]] || ROUNDS=1
for tool in redis-server redis-cli h2load jq openssl curl; do
  command -v "$tool" >/dev/null || { echo "fanout.sh: needs $tool (./run bench installs it)" >&2; exit 2; }
done
BIN=$BUILD/bin
for b in pushhubd pns-mock pushhubctl fanout_probe; do
  [[ -x $BIN/$b ]] || { echo "fanout.sh: $BIN/$b missing (./run bench builds it)" >&2; exit 2; }
done

OUT=${OUT:-$ROOT/.run/bench/$DEVICES-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# --- the stack -----------------------------------------------------------------------------------
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port below the kernel's ephemeral range (so no client socket of this run holds it), not
# listening now, and not handed out before in this run.
USED_PORTS=" "
free_port() {
  local low port
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range)
  ((low > 12000)) || low=61000
  while :; do
    if ((low == 61000)); then port=$((61000 + RANDOM % 4000)); else port=$((10000 + RANDOM % (low - 10000))); fi
    [[ $USED_PORTS == *" $port "* ]] && continue
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && continue
    USED_PORTS+="$port "
    echo "$port"
    return
  done
}
wait_port() {  # PORT NAME LOG [TRIES]
  for _ in $(seq 1 "${4:-200}"); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$2 did not start; its log ($3):" >&2
  tail -n 20 "$3" >&2
  return 1
}
cpu_s() {  # utime+stime of PID in seconds
  awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); print ($12 + $13) / hz}' "/proc/$1/stat"
}
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }  # calc '1.5 - 0.25' (no bc needed)
# Over every Redis process (one, or the cluster's masters):
# "calls usec" of every EVALSHA so far (the registry's scripts: resolve, upsert, ...).
redis_scripts() {
  local port
  for port in "${REDIS_PORTS[@]}"; do redis-cli -p "$port" info commandstats; done |
    awk -F'[:=,]' '/^cmdstat_evalsha:/ {c += $3; u += $5} END {print c + 0, u + 0}'
}
redis_used() {
  local port
  for port in "${REDIS_PORTS[@]}"; do redis-cli -p "$port" info memory; done |
    awk -F: '/^used_memory:/ {n += $2} END {print n + 0}'
}
redis_cpu() {
  local pid total=0
  for pid in "${REDIS_PIDS[@]}"; do total=$(calc "$total + $(cpu_s "$pid")"); done
  echo "$total"
}
# Commands each Redis process has served so far, space-separated.
redis_commands() {
  local port
  for port in "${REDIS_PORTS[@]}"; do
    redis-cli -p "$port" info stats | awk -F: '/^total_commands_processed:/ {printf "%d ", $2}'
  done
}

NPROC=$(nproc)
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM_GB=$(awk '/^MemTotal:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
EFFECTIVE_WORKERS=$WORKERS
((EFFECTIVE_WORKERS > 0)) || EFFECTIVE_WORKERS=$NPROC
# ~256 installations per bucket keeps Redis in its compact encodings (docs/CONFIG.md).
BUCKETS=1024
while ((BUCKETS * 256 < DEVICES && BUCKETS < 65536)); do BUCKETS=$((BUCKETS * 2)); done
# Round to the nearer power of two (N/256 = 3906 for 1M -> 4096, 390 for 100k -> 1024).
((BUCKETS > 1024 && (BUCKETS / 2) * 256 * 3 / 2 >= DEVICES)) && BUCKETS=$((BUCKETS / 2))

uses() { [[ ,$MIX, == *,$1:* ]]; }
APNS_SHARE=$(tr ',' '\n' <<<"$MIX" | awk -F: '$1 == "apns" {print $2}')
APNS_SHARE=${APNS_SHARE:-0}
[[ ${MIX%%,*} == apns:* ]] || { echo "--mix must start with apns (direct sends go to APNs devices)" >&2; exit 2; }

CERTS=$OUT/certs
"$ROOT/scripts/make-certs.sh" "$CERTS"
KEY_ID=BENCHKEY01
TEAM_ID=BENCHTEAM1
TOPIC=com.example.pushhub.bench
FCM_PROJECT=pushhub-bench
FCM_ACCOUNT=bench-sender@pushhub-bench.iam.gserviceaccount.com
WNS_SID=ms-app://s-1-15-2-0000000001-bench
WNS_SECRET=$(openssl rand -hex 16)
for var in REDIS_PORT APNS_PORT FCM_PORT WNS_PORT CONTROL_PORT GRPC_PORT ADMIN_PORT; do
  free_port >"$OUT/.port"
  printf -v "$var" '%s' "$(cat "$OUT/.port")"
  USED_PORTS+="${!var} "
done
rm -f "$OUT/.port"
printf 'REDIS_PORT=%s\nAPNS_PORT=%s\nCONTROL_PORT=%s\nGRPC_PORT=%s\nADMIN_PORT=%s\n' \
  "$REDIS_PORT" "$APNS_PORT" "$CONTROL_PORT" "$GRPC_PORT" "$ADMIN_PORT" >"$OUT/ports.env"

say "redis-server, pns-mock and pushhubd ($EFFECTIVE_WORKERS workers, $BUCKETS buckets) in $OUT"
REDIS_PORTS=("$REDIS_PORT"); REDIS_PIDS=()
if ((CLUSTER_MASTERS > 0)); then
  ((CLUSTER_MASTERS >= 3)) || { echo "--redis-cluster: at least 3 masters" >&2; exit 2; }
  for ((i = 1; i < CLUSTER_MASTERS; i++)); do
    while :; do p=$(free_port); ((p <= 55535)) && break; done  # its bus port is p + 10000
    REDIS_PORTS+=("$p")
  done
  for port in "${REDIS_PORTS[@]}"; do
    mkdir -p "$OUT/redis-$port"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$OUT/redis-$port" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 2000 >"$OUT/redis-$port.log" 2>&1 &
    PIDS+=($!); REDIS_PIDS+=($!)
    wait_port "$port" redis-server "$OUT/redis-$port.log"
  done
  nodes=(); for port in "${REDIS_PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
    >"$OUT/redis-cluster.log" 2>&1 || { cat "$OUT/redis-cluster.log" >&2; exit 1; }
  for port in "${REDIS_PORTS[@]}"; do
    for _ in $(seq 1 200); do
      redis-cli -p "$port" cluster info | grep -q '^cluster_state:ok' && break
      sleep 0.05
    done
  done
  REDIS_CONFIG="nodes = [$(printf '"127.0.0.1:%s", ' "${REDIS_PORTS[@]}" | sed 's/, $//')]"
else
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$OUT" \
    >"$OUT/redis.log" 2>&1 &
  PIDS+=($!); REDIS_PIDS+=($!)
  wait_port "$REDIS_PORT" redis-server "$OUT/redis.log"
  REDIS_CONFIG=$'host = "127.0.0.1"\nport = '"$REDIS_PORT"
fi
REDIS_PID=${REDIS_PIDS[0]}

# --initial-streams 0: no stream gate, for pushhubd and h2load alike (h2load would otherwise see
# REFUSED_STREAMs on each new connection before its first success; docs/pns-mock.md).
"$BIN/pns-mock" --listen 127.0.0.1 --apns-port "$APNS_PORT" --control-port "$CONTROL_PORT" \
  --cert "$CERTS/server.pem" --key "$CERTS/server.key" --threads "$MOCK_THREADS" \
  --apns-key-id "$KEY_ID" --apns-team-id "$TEAM_ID" --apns-public-key "$CERTS/apns-pub.pem" \
  --apns-topic "$TOPIC" --max-concurrent-streams "$MAX_STREAMS" --initial-streams 0 \
  --keep-received "$((DIRECT > 10000 ? DIRECT : 10000))" \
  --fcm-port "$FCM_PORT" --fcm-account "$FCM_ACCOUNT:$CERTS/fcm-pub.pem" --fcm-project "$FCM_PROJECT" \
  --wns-port "$WNS_PORT" --wns-sid "$WNS_SID" --wns-secret "$WNS_SECRET" --log-level warn \
  >"$OUT/pns-mock.log" 2>&1 &
PIDS+=($!); MOCK_PID=$!
wait_port "$CONTROL_PORT" pns-mock "$OUT/pns-mock.log"
CONTROL=127.0.0.1:$CONTROL_PORT

FULL_KEY=$(openssl rand -base64 32)
{
  cat <<TOML
# Written by bench/fanout/fanout.sh.
[server]
grpc_listen = "127.0.0.1:$GRPC_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
tls_cert = "certs/server.pem"
tls_key = "certs/server.key"
workers = $WORKERS

[redis]
$REDIS_CONFIG

[dispatch]
$(printf '%s\n' "${DISPATCH[@]}" | sed 's/=/ = /')

[[hubs]]
name = "bench"
buckets = $BUCKETS

  [[hubs.keys]]
  name = "DefaultFullSharedAccessSignature"
  key = "$FULL_KEY"
  rights = ["Listen", "Manage", "Send"]

  [hubs.apns]
  endpoint = "https://127.0.0.1:$APNS_PORT"
  ca_file = "certs/ca.pem"
  key_file = "certs/apns.p8"
  key_id = "$KEY_ID"
  team_id = "$TEAM_ID"
  topic = "$TOPIC"
  connections = $APNS_CONNECTIONS
TOML
  if uses fcm; then
    jq -n --rawfile key "$CERTS/fcm.key" --arg email "$FCM_ACCOUNT" --arg project "$FCM_PROJECT" \
      --arg uri "https://127.0.0.1:$FCM_PORT/token" \
      '{type: "service_account", project_id: $project, private_key_id: "bench-key-1",
        private_key: $key, client_email: $email, token_uri: $uri}' >"$OUT/fcm-service-account.json"
    printf '\n  [hubs.fcm]\n  service_account_file = "fcm-service-account.json"\n'
    printf '  endpoint = "https://127.0.0.1:%s"\n  ca_file = "certs/ca.pem"\n' "$FCM_PORT"
  fi
  if uses wns; then
    printf '\n  [hubs.wns]\n  package_sid = "%s"\n  secret = "%s"\n' "$WNS_SID" "$WNS_SECRET"
    printf '  token_url = "https://127.0.0.1:%s/accesstoken.srf"\n' "$WNS_PORT"
    printf '  allowed_hosts = ["127.0.0.1:%s"]\n  ca_file = "certs/ca.pem"\n' "$WNS_PORT"
    printf '  connections = %s\n' "$WNS_CONNECTIONS"
  fi
} >"$OUT/pushhubd.toml"

HUBD=("$BIN/pushhubd" --config "$OUT/pushhubd.toml")
case $PROFILE in
  none | perf) ;;
  callgrind) HUBD=(valgrind --tool=callgrind --instr-atstart=no --dump-instr=no
                   "--callgrind-out-file=$OUT/callgrind.out" "${HUBD[@]}") ;;
  *) echo "--profile: none, perf or callgrind" >&2; exit 2 ;;
esac
env PUSHHUB_LOG_LEVEL="${PUSHHUB_LOG_LEVEL:-warn}" "${HUB_ENV[@]}" "${HUBD[@]}" >"$OUT/pushhubd.log" 2>&1 &
PIDS+=($!); HUB_PID=$!
wait_port "$GRPC_PORT" pushhubd "$OUT/pushhubd.log" 1200

export PUSHHUB_HUB=bench PUSHHUB_GRPC_ADDR=127.0.0.1:$GRPC_PORT PUSHHUB_CA_CERT=$CERTS/ca.pem
export PUSHHUB_CONNECTION_STRING_FULL="Endpoint=sb://127.0.0.1:$GRPC_PORT/;SharedAccessKeyName=DefaultFullSharedAccessSignature;SharedAccessKey=$FULL_KEY"
PROBE=("$BIN/fanout_probe" --control "$CONTROL")
PIDARGS=(--pid "pushhubd=$HUB_PID" --pid "pns-mock=$MOCK_PID" --pid "redis=$REDIS_PID")
for ((i = 1; i < ${#REDIS_PIDS[@]}; i++)); do PIDARGS+=(--pid "redis-$i=${REDIS_PIDS[i]}"); done

# --- load ----------------------------------------------------------------------------------------
APNS_TEMPLATE='{"aps":{"alert":"$(message)"}}'
say "loading $DEVICES installations ($MIX; 3 tags each of tag-0..tag-99; one shared template; $DEVICES_PER_USER per user)"
REDIS_BEFORE=$(redis_used)
HUB_CPU0=$(cpu_s "$HUB_PID"); REDIS_CPU0=$(redis_cpu)
"$BIN/pushhubctl" install bulk --count "$DEVICES" --mix "$MIX" \
  --wns-base "https://127.0.0.1:$WNS_PORT/?token=" --tag-pool 100 --tags-per 3 \
  --threads 4 --batch 500 --devices-per-user "$DEVICES_PER_USER" \
  --template "apns:alert=$APNS_TEMPLATE" \
  --template 'fcm:alert={"message":{"notification":{"title":"pushhub","body":"$(message)"}}}' \
  --template 'wns:alert=<toast><visual><binding template="ToastGeneric"><text>$(message)</text></binding></visual></toast>' \
  --template-header 'wns:alert:X-WNS-Type=wns/toast' >"$OUT/load.json"
REDIS_AFTER=$(redis_used)
jq -n --slurpfile l "$OUT/load.json" --argjson before "$REDIS_BEFORE" --argjson after "$REDIS_AFTER" \
  --argjson n "$DEVICES" --argjson hub_cpu "$(calc "$(cpu_s "$HUB_PID") - $HUB_CPU0")" \
  --argjson redis_cpu "$(calc "$(redis_cpu) - $REDIS_CPU0")" \
  --argjson hwm "$(status_kb "$HUB_PID" VmHWM)" \
  '{registered: $l[0].registered, failed: $l[0].failed, seconds: $l[0].seconds,
    per_second: $l[0].per_second, redis_used_before: $before, redis_used_after: $after,
    redis_bytes_per_installation: (($after - $before) / $n), pushhubd_cpu_s: $hub_cpu,
    redis_cpu_s: $redis_cpu, pushhubd_vmhwm_kb_after_load: $hwm}' >"$OUT/load-summary.json"
jq -c '{registered, per_second: (.per_second|floor), redis_bytes_per_installation}' "$OUT/load-summary.json"
TAG_COUNT=$(jq --arg t "$TAG" '.tags[$t]' "$OUT/load.json")

# Deliveries a send makes: every installation of a platform with a payload (all of them here).
EXPECT_ALL=$(jq '.registered' "$OUT/load.json")

# --- broadcast -----------------------------------------------------------------------------------
profile_start() {
  case $PROFILE in
    perf) perf record -e cpu-clock -F 499 -g -p "$HUB_PID" -o "$OUT/perf-$1.data" \
            >"$OUT/perf-$1.log" 2>&1 &
          PERF_PID=$!; sleep 0.5 ;;
    callgrind) callgrind_control -i on "$HUB_PID" >/dev/null ;;
  esac
}
profile_stop() {
  case $PROFILE in
    perf) kill -INT "$PERF_PID"; wait "$PERF_PID" || true
          perf report -i "$OUT/perf-$1.data" --stdio --no-children --percent-limit 0.7 \
            --sort symbol 2>/dev/null | grep -v '^$' >"$OUT/perf-$1.txt" || true ;;
    callgrind) callgrind_control -i off "$HUB_PID" >/dev/null
               callgrind_control -d "$1" "$HUB_PID" >/dev/null ;;
  esac
}

# One broadcast, measured at pns-mock: $OUT/broadcast-K.json and .samples.
broadcast_round() {  # K
  say "broadcast $1 of $ROUNDS to $EXPECT_ALL installations (template, rendered per device)"
  local calls0 usec0 calls1 usec1 commands0 commands1
  read -r calls0 usec0 < <(redis_scripts)
  commands0=$(redis_commands)
  ((${1} > 1)) || profile_start broadcast
  "${PROBE[@]}" send --broadcast --prop "message=Hello from the pushhub fan-out benchmark ($1)" \
    --expect "$EXPECT_ALL" --samples "$OUT/broadcast-$1.samples" "${PIDARGS[@]}" \
    >"$OUT/broadcast-$1.raw.json"
  ((${1} > 1)) || profile_stop broadcast
  read -r calls1 usec1 < <(redis_scripts)
  commands1=$(redis_commands)
  # Redis' own time in the registry's scripts during the broadcast (INFO commandstats), and the
  # commands each Redis process served (on a cluster: how the work spread over the masters).
  jq --argjson calls "$((calls1 - calls0))" --argjson usec "$((usec1 - usec0))" \
    --argjson c0 "[${commands0// /,}0]" --argjson c1 "[${commands1// /,}0]" \
    '. + {redis_scripts: {calls: $calls, usec: $usec},
          redis_commands: [range(0; ($c0 | length) - 1) as $i | $c1[$i] - $c0[$i]],
          redis_cpu_s_total: ([.cpu_s | to_entries[] | select(.key | startswith("redis")) | .value] | add)}' \
    "$OUT/broadcast-$1.raw.json" >"$OUT/broadcast-$1.json"
  jq -c '{answered, to_first_ms, to_last_ms, to_last_ms_by_platform,
          deliveries_per_s: (.deliveries_per_s|floor), cpu_s}' \
    "$OUT/broadcast-$1.json"
}

# h2load against pns-mock's APNs endpoint with the broadcast's request count: $OUT/h2load-K.json.
# Set up once, after the first broadcast (it copies what pns-mock received for one device).
h2load_setup() {
  CONNS=$((EFFECTIVE_WORKERS * APNS_CONNECTIONS))
  H2T=${H2LOAD_THREADS:-$((CONNS < NPROC ? CONNS : NPROC))}
  # As many requests as the broadcast delivered, whatever their platforms: the ceiling is what
  # this machine can push through one provider endpoint, APNs', with the same count.
  APNS_REQUESTS=$(jq '.accepted' "$OUT/broadcast-1.json")
  # What pns-mock received for one device: h2load sends the same headers and body.
  curl -fsS "http://$CONTROL/_mock/received?provider=apns&limit=1" >"$OUT/apns-request.json"
  jq -j '.[0].body' "$OUT/apns-request.json" >"$OUT/payload.bin"
  H2HEADERS=()
  while IFS= read -r h; do H2HEADERS+=(-H "$h"); done < <(jq -r '.[0].headers | to_entries[]
    | select(.key | test("^(:|authorization$|content-length$|host$)") | not) | "\(.key): \(.value)"' \
    "$OUT/apns-request.json")
  JWT=$("$BIN/pns-mock" --print-jwt --apns-key-file "$CERTS/apns.p8" --apns-key-id "$KEY_ID" \
    --apns-team-id "$TEAM_ID")
  # h2load walks the URI list from the start on every connection: N/CONNS distinct device tokens
  # per connection, as each pushhubd connection carries N/CONNS distinct devices.
  awk -v n="$(((APNS_REQUESTS + CONNS - 1) / CONNS))" -v base="https://127.0.0.1:$APNS_PORT/3/device/" \
    'BEGIN { for (i = 1; i <= n; i++) printf "%s%064x\n", base, i }' >"$OUT/h2load-uris.txt"
}
h2load_round() {  # K
  say "h2load $1 of $ROUNDS: $APNS_REQUESTS requests, $CONNS connections x $MAX_STREAMS streams, $H2T threads, $(stat -c %s "$OUT/payload.bin")-byte body"
  curl -fsS -XPOST "http://$CONTROL/_mock/reset" >/dev/null
  local mock0 txt=$OUT/h2load-$1.txt
  mock0=$(cpu_s "$MOCK_PID")
  TIMEFORMAT='%3U %3S'
  { time h2load -n "$APNS_REQUESTS" -c "$CONNS" -m "$MAX_STREAMS" -t "$H2T" -i "$OUT/h2load-uris.txt" \
    -d "$OUT/payload.bin" -H "authorization: bearer $JWT" "${H2HEADERS[@]}" >"$txt" 2>&1 || true; } \
    2>"$OUT/h2load-$1.time"
  grep -E '^(finished|requests|status codes)' "$txt" >&2 || cat "$txt" >&2
  local seconds ok
  seconds=$(awk '/^finished in/ { v = $3; sub(/,$/, "", v); f = 1
    if (v ~ /ms$/) f = 0.001; else if (v ~ /us$/) f = 0.000001
    gsub(/[a-z]/, "", v); printf "%.6f", v * f }' "$txt")
  ok=$(awk '/^status codes:/ {print $3}' "$txt")
  jq -n --argjson requests "$APNS_REQUESTS" --argjson ok "${ok:-0}" --argjson seconds "${seconds:-0}" \
    --argjson mockcpu "$(calc "$(cpu_s "$MOCK_PID") - $mock0")" \
    --argjson h2cpu "$(awk '{print $1 + $2}' "$OUT/h2load-$1.time")" \
    '{requests: $requests, ok: $ok, seconds: $seconds,
      per_s: (if $seconds > 0 then $ok / $seconds else 0 end),
      pns_mock_cpu_s: $mockcpu, h2load_cpu_s: $h2cpu}' >"$OUT/h2load-$1.json"
}

# Round 1, then the tag send and the direct sends, then the other rounds. Each round's broadcast
# and h2load run back to back, so the VM's speed (it drifts by tens of percent over minutes on a
# shared host) is about the same for both halves of a ratio.
if ((WNS_SLOW_MS > 0)); then
  say "pns-mock answers every WNS request ${WNS_SLOW_MS} ms late"
  curl -fsS -XPOST "http://$CONTROL/_mock/faults" >/dev/null \
    -d "{\"provider\":\"wns\",\"fault\":\"slow\",\"delay_ms\":$WNS_SLOW_MS,\"duration_ms\":86400000}"
fi
broadcast_round 1
h2load_setup
h2load_round 1

say "tag send to $TAG ($TAG_COUNT installations, native payloads)"
NATIVE=(--apns '{"aps":{"alert":"Hello tag"}}')
uses fcm && NATIVE+=(--fcm '{"message":{"notification":{"title":"pushhub","body":"Hello tag"}}}')
uses wns && NATIVE+=(--wns '<toast><visual><binding template="ToastGeneric"><text>Hello tag</text></binding></visual></toast>' --header X-WNS-Type=wns/toast)
"${PROBE[@]}" send --tag "$TAG" "${NATIVE[@]}" --expect "$TAG_COUNT" "${PIDARGS[@]}" \
  >"$OUT/tag.json"
jq -c '{answered, to_first_ms, to_last_ms, deliveries_per_s: (.deliveries_per_s|floor)}' "$OUT/tag.json"

say "expression send: $EXPRESSION (native payloads)"
"${PROBE[@]}" send --expression "$EXPRESSION" "${NATIVE[@]}" "${PIDARGS[@]}" \
  --metrics "127.0.0.1:$ADMIN_PORT" >"$OUT/expression.json"
jq -c '{answered, to_first_ms, to_last_ms, deliveries_per_s: (.deliveries_per_s|floor), buckets_visited}' "$OUT/expression.json"

say "$DIRECT direct sends, one after another"
"${PROBE[@]}" direct --count "$DIRECT" --devices "$DEVICES" --apns-share "$APNS_SHARE" \
  >"$OUT/direct.json"
jq -c . "$OUT/direct.json"

if ((DEVICES_PER_USER > 0)); then
  say "$USERS sends to one user each (\$UserId, $DEVICES_PER_USER devices), one after another"
  "${PROBE[@]}" user --count "$USERS" --devices "$DEVICES" --apns-share "$APNS_SHARE" \
    --devices-per-user "$DEVICES_PER_USER" --metrics "127.0.0.1:$ADMIN_PORT" >"$OUT/user.json"
  jq -c . "$OUT/user.json"
else  # no users loaded: zeros keep the report's shape
  echo '{"sent":0,"devices_per_user":0,"buckets_per_send":0,"p50_ms":0,"p90_ms":0,"p99_ms":0,"max_ms":0}' >"$OUT/user.json"
fi

for ((round = 2; round <= ROUNDS; round++)); do
  broadcast_round "$round"
  h2load_round "$round"
done

HUB_HWM_KB=$(status_kb "$HUB_PID" VmHWM)
HUB_RSS_KB=$(status_kb "$HUB_PID" VmRSS)
MOCK_HWM_KB=$(status_kb "$MOCK_PID" VmHWM)
# Jobs that split a lagging platform off (dispatch.split_lagging_platform_ms): 0 when no route lagged.
JOBS_SPLIT=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" |
  awk '/^pushhub_jobs_split_total/ { n += $2 } END { print n + 0 }')

# Every round's figures; the report's broadcast and h2load are those of the round whose ratio is
# the median (the lower middle one for an even count).
for ((round = 1; round <= ROUNDS; round++)); do
  jq -n --argjson k "$round" --slurpfile b "$OUT/broadcast-$round.json" \
    --slurpfile h "$OUT/h2load-$round.json" \
    '{round: $k, broadcast: $b[0], h2load: $h[0],
      ratio: (if $h[0].per_s > 0 then $b[0].deliveries_per_s / $h[0].per_s else 0 end),
      # CPU seconds per request of each path (all processes of it): what the ratio tends to on
      # an otherwise idle machine where both paths are CPU-bound; robust to other load.
      cpu_ratio: ((($h[0].pns_mock_cpu_s + $h[0].h2load_cpu_s) / ([$h[0].ok, 1] | max))
                  / (([$b[0].cpu_s[]] | add) / ([$b[0].accepted, 1] | max)))}'
done | jq -s . >"$OUT/rounds.json"
MEDIAN=$(jq '(sort_by(.ratio)) as $s | $s[(($s | length) - 1) / 2 | floor].round' "$OUT/rounds.json")
cp "$OUT/broadcast-$MEDIAN.json" "$OUT/broadcast.json"
cp "$OUT/broadcast-$MEDIAN.samples" "$OUT/broadcast.samples"
H2_PER_S=$(jq '.per_s' "$OUT/h2load-$MEDIAN.json")

# --- the chart -----------------------------------------------------------------------------------
# One row per sample interval: its start (s) and its rate; a last row closes the final step.
awk 'NR > 1 && $1 > t { r = ($2 - c) / (($1 - t) / 1000); printf "%.3f %.0f\n", t / 1000, r; e = $1 }
     { t = $1; c = $2 } END { if (e) printf "%.3f %.0f\n", e / 1000, r }' \
  "$OUT/broadcast.samples" >"$OUT/broadcast.rate"
if command -v gnuplot >/dev/null; then
  CHART=${CHART:-$OUT/broadcast.png}
  gnuplot <<GP 2>"$OUT/gnuplot.log" || echo "gnuplot failed: see $OUT/gnuplot.log" >&2
set terminal pngcairo size 900,450 font ",10"
set output "$CHART"
set title "pushhubd broadcast to $EXPECT_ALL devices, deliveries/s at pns-mock (100 ms samples)"
set xlabel "seconds since the SendNotification call"
set ylabel "deliveries per second"
set format y "%.0s%c"
set grid
set key below
set yrange [0:*]
plot "$OUT/broadcast.rate" using 1:2 with steps lw 2 title "pushhubd -> pns-mock", \
     $H2_PER_S with lines dt 2 lw 2 title "h2load -> pns-mock (ceiling, average)"
GP
fi

# --- report --------------------------------------------------------------------------------------
jq -n --argjson devices "$DEVICES" --arg mix "$MIX" --argjson buckets "$BUCKETS" \
  --argjson masters "${#REDIS_PORTS[@]}" --argjson cluster "$((CLUSTER_MASTERS > 0))" \
  --argjson workers "$EFFECTIVE_WORKERS" --argjson conns "$CONNS" --argjson streams "$MAX_STREAMS" \
  --slurpfile load "$OUT/load-summary.json" --slurpfile b "$OUT/broadcast.json" \
  --slurpfile t "$OUT/tag.json" --slurpfile d "$OUT/direct.json" \
  --slurpfile e "$OUT/expression.json" --slurpfile u "$OUT/user.json" --arg expression "$EXPRESSION" \
  --slurpfile rounds "$OUT/rounds.json" --argjson median "$MEDIAN" --argjson h2threads "$H2T" \
  --argjson hwm "$HUB_HWM_KB" --argjson rss "$HUB_RSS_KB" --argjson mockhwm "$MOCK_HWM_KB" \
  --arg profile "$PROFILE" --arg cpu "$CPU_MODEL" --argjson nproc "$NPROC" --argjson mem "$MEM_GB" \
  --arg load_start "$LOAD_START" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --argjson split "$JOBS_SPLIT" \
  '($rounds[0][] | select(.round == $median)) as $m
  | {devices: $devices, mix: $mix, buckets: $buckets, workers: $workers, profile: $profile,
    redis: {cluster: ($cluster == 1), masters: $masters},
    machine: {nproc: $nproc, cpu: $cpu, mem_gb: $mem, loadavg_start: $load_start, loadavg_end: $load_end},
    load: $load[0], broadcast: $b[0], tag: $t[0], direct: $d[0],
    expression: ($e[0] + {text: $expression}), user: $u[0],
    h2load: ($m.h2load + {connections: $conns, streams: $streams, threads: $h2threads}),
    ratio: $m.ratio, cpu_ratio: $m.cpu_ratio, median_round: $median,
    rounds: [$rounds[0][] | {round, deliveries_per_s: .broadcast.deliveries_per_s,
                             h2load_per_s: .h2load.per_s, ratio, cpu_ratio}],
    pushhubd: {vmhwm_kb: $hwm, vmrss_kb: $rss}, pns_mock_vmhwm_kb: $mockhwm, jobs_split: $split}' >"$OUT/result.json"

jq -r '
  # Fixed-point text without binary-float noise: 1.5 | f(2) -> "1.50".
  def f(d): (. * pow(10; d) | round) as $v | pow(10; d) as $p
    | if d == 0 then "\($v)" else "\(($v / $p) | floor).\((($v % $p) + $p) | tostring | .[1:])" end;
  "",
  "pushhub fan-out benchmark: \(.devices) devices (\(.mix)), \(.buckets) buckets, \(.workers) workers",
  "machine: \(.machine.nproc) x \(.machine.cpu), \(.machine.mem_gb) GB; load average \(.machine.loadavg_start) at start, \(.machine.loadavg_end) at end",
  "",
  "| measure | value |", "|---|---|",
  "| registration (BatchCreateOrUpdateInstallations, 4 x 500 in flight) | \(.load.per_second | f(0))/s (\(.load.seconds | f(1)) s) |",
  "| Redis used_memory per installation | \(.load.redis_bytes_per_installation | f(0)) B |",
  "| broadcast: deliveries/s (send call -> last delivery) | \(.broadcast.deliveries_per_s | f(0)) |",
  "| broadcast: time to first / last delivery | \(.broadcast.to_first_ms | f(1)) ms / \(.broadcast.to_last_ms / 1000 | f(2)) s |",
  "| broadcast: CPU s pushhubd / pns-mock / redis | \(.broadcast.cpu_s.pushhubd | f(2)) / \(.broadcast.cpu_s["pns-mock"] | f(2)) / \(.broadcast.cpu_s.redis | f(2)) |",
  "| broadcast: CPU per delivery pushhubd / pns-mock / redis | \(.broadcast.cpu_s.pushhubd / .broadcast.accepted * 1e6 | f(1)) / \(.broadcast.cpu_s["pns-mock"] / .broadcast.accepted * 1e6 | f(1)) / \(.broadcast.cpu_s.redis / .broadcast.accepted * 1e6 | f(1)) us |",
  "| Redis | \(if .redis.cluster then "a cluster of \(.redis.masters) masters" else "one redis-server" end) |",
  "| broadcast: pushhubd CPU per delivery | \(.broadcast.cpu_s.pushhubd / .broadcast.accepted * 1e6 | f(2)) us |",
  "| broadcast: Redis CPU per delivery, all processes | \(.broadcast.redis_cpu_s_total / .broadcast.accepted * 1e6 | f(2)) us |",
  "| broadcast: commands each Redis process served | \(.broadcast.redis_commands | map(tostring) | join(" / ")) |",
  "| broadcast: Redis scripts (bucket resolves) | \(.broadcast.redis_scripts.calls) calls, \(.broadcast.redis_scripts.usec / ([.broadcast.redis_scripts.calls, 1] | max) | f(0)) us each |",
  "| tag send (\(.tag.expected) devices): deliveries/s, first / last | \(.tag.deliveries_per_s | f(0)), \(.tag.to_first_ms | f(1)) ms / \(.tag.to_last_ms | f(1)) ms |",
  "| expression send `\(.expression.text)` (\(.expression.answered) devices): deliveries/s, first / last, buckets visited | \(.expression.deliveries_per_s | f(0)), \(.expression.to_first_ms | f(1)) ms / \(.expression.to_last_ms | f(1)) ms, \(.expression.buckets_visited) of \(.buckets) |",
  "| direct sends (\(.direct.sent)): p50 / p99 / max, call -> pns-mock receipt | \(.direct.p50_ms | f(2)) / \(.direct.p99_ms | f(2)) / \(.direct.max_ms | f(1)) ms |",
  "| sends to one user (\(.user.sent), \(.user.devices_per_user) devices each): p50 / p99 / max, call -> receipt at the last device | \(.user.p50_ms | f(2)) / \(.user.p99_ms | f(2)) / \(.user.max_ms | f(1)) ms |",
  "| user sends: buckets visited per send; p99 against the p99 of direct sends | \(.user.buckets_per_send | f(2)) of \(.buckets); \(.user.p99_ms / .direct.p99_ms | f(2))x |",
  "| h2load -> pns-mock (\(.h2load.connections) conns x \(.h2load.streams) streams, \(.h2load.threads) threads) | \(.h2load.per_s | f(0))/s (\(.h2load.ok)/\(.h2load.requests) 2xx, pns-mock CPU \(.h2load.pns_mock_cpu_s | f(2)) s) |",
  "| h2load path CPU per request: pns-mock + h2load | \(.h2load.pns_mock_cpu_s / .h2load.ok * 1e6 | f(1)) + \(.h2load.h2load_cpu_s / .h2load.ok * 1e6 | f(1)) us |",
  "| ratio pushhubd / h2load (wall clock) | \(.ratio | f(3)) |",
  "| ratio in each round (broadcast, then h2load right after) | \([.rounds[] | .ratio | f(3)] | join(", ")); the median, round \(.median_round), is reported |",
  "| ratio of CPU per request, h2load path / pushhubd path | \(.cpu_ratio | f(3)) |",
  "| pushhubd peak RSS (VmHWM) | \(.pushhubd.vmhwm_kb / 1024 | f(1)) MB (after loading: \(.load.pushhubd_vmhwm_kb_after_load / 1024 | f(1)) MB) |",
  ""' "$OUT/result.json"
echo "results: $OUT" >&2
jq -r '
  def f(d): (. * pow(10; d) | round) as $v | pow(10; d) as $p
    | if d == 0 then "\($v)" else "\(($v / $p) | floor).\((($v % $p) + $p) | tostring | .[1:])" end;
  "devices=\(.devices) redis_masters=\(.redis.masters) pushhubd_us_per_delivery=\(.broadcast.cpu_s.pushhubd / .broadcast.accepted * 1e6 | f(2)) deliveries_per_s=\(.broadcast.deliveries_per_s | f(0)) h2load_per_s=\(.h2load.per_s | f(0)) ratio=\(.ratio | f(3)) peak_rss_mb=\(.pushhubd.vmhwm_kb / 1024 | f(1)) redis_bytes_per_installation=\(.load.redis_bytes_per_installation | f(0)) register_per_s=\(.load.per_second | f(0)) direct_p50_ms=\(.direct.p50_ms | f(2)) direct_p99_ms=\(.direct.p99_ms | f(2)) user_p99_ms=\(.user.p99_ms | f(2)) user_buckets_per_send=\(.user.buckets_per_send | f(2)) expression_buckets=\(.expression.buckets_visited) jobs_split=\(.jobs_split)"' "$OUT/result.json"
if ((HOLD > 0)); then
  echo "holding the stack for $HOLD s (ports in $OUT/ports.env)" >&2
  sleep "$HOLD"
fi
