# Sourced by ./run: a local pushhub stack (redis-server, pns-mock, pushhubd) on free loopback
# ports, in the background, with everything it makes under .run/.
#   stack_up     start it (building first only when no build exists) and write .run/stack.env;
#                with --cluster: a Redis Cluster of three masters with a replica each, and two
#                pushhubd instances sharing it
#   stack_down   stop what stack_up started
#   stack_demo   build, start, register devices, send, show deliveries, stop

STACK_ENV=$RUNDIR/stack.env
APNS_KEY_ID=DEMOKEY123
APNS_TEAM_ID=DEMOTEAM12
APNS_TOPIC=com.example.pushhub.demo
FCM_PROJECT=pushhub-demo
FCM_ACCOUNT=demo-sender@pushhub-demo.iam.gserviceaccount.com
WNS_SID=ms-app://s-1-15-2-0000000001-demo

# A port not listening now, below the kernel's ephemeral range (so no client socket holds it) and
# at most MAX. redis-server cannot bind port 0 and report it, so it is started on one of these,
# and again on another if the port was taken in between (start_redis).
free_port() {  # free_port [MAX]
  local port low max=${1:-59999}
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range)
  ((max < low)) || max=$((low - 1))
  while :; do
    port=$((20000 + RANDOM % (max - 20000)))
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || { echo "$port"; return; }
  done
}

# start_redis NAME LOG [MAX] ARGS...: redis-server on a free port (retried on another when the
# port was taken before it bound); prints the port.
start_redis() {
  local name=$1 logfile=$2 max=$3 port
  shift 3
  for _ in 1 2 3 4 5; do
    port=$(free_port "$max")
    start_bg "$name" "$logfile" redis-server --port "$port" --bind 127.0.0.1 "$@"
    for _ in $(seq 1 200); do
      grep -q "Ready to accept connections" "$logfile" 2>/dev/null && { echo "$port"; return 0; }
      kill -0 "$(cat "$RUNDIR/$name.pid")" 2>/dev/null || break
      sleep 0.05
    done
  done
  echo "redis-server did not start; its log ($logfile):" >&2
  tail -n 20 "$logfile" >&2
  return 1
}

start_bg() {  # start_bg NAME LOG CMD...: starts CMD in the background, records its pid
  local name=$1 logfile=$2
  shift 2
  nohup "$@" >"$logfile" 2>&1 &
  echo $! >"$RUNDIR/$name.pid"
}

stack_down() {
  local stopped=0 pidfile
  for pidfile in "$RUNDIR"/pushhubd*.pid "$RUNDIR"/pns-mock.pid "$RUNDIR"/redis*.pid; do
    [[ -f $pidfile ]] || continue
    local pid
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -9 "$pid" 2>/dev/null || true
      stopped=1
    fi
    rm -f "$pidfile"
  done
  rm -f "$STACK_ENV"
  ((stopped)) && say "stack stopped" || true
}

# Six cluster nodes (a node also binds port + 10000, hence ports up to 45000), made a cluster of
# three masters with a replica each; prints the ports.
start_cluster() {
  local ports=() port i
  for i in 0 1 2 3 4 5; do
    mkdir -p "$RUNDIR/redis-$i"
    rm -f "$RUNDIR/redis-$i"/nodes.conf
    # A cluster node also binds port + 10000 (its bus).
    port=$(start_redis "redis-$i" "$RUNDIR/redis-$i.log" 45000 \
      --save "" --appendonly no --dir "$RUNDIR/redis-$i" --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 2000 --repl-diskless-sync-delay 0)
    ports+=("$port")
  done
  local nodes=()
  for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
    >"$RUNDIR/redis-cluster-create.log" 2>&1 || {
    cat "$RUNDIR/redis-cluster-create.log" >&2
    return 1
  }
  for port in "${ports[@]}"; do
    for _ in $(seq 1 200); do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && break
      sleep 0.05
    done
  done
  echo "${ports[@]}"
}

stack_up() {
  local cluster=0
  [[ ${1:-} == --cluster ]] && cluster=1
  [[ -x $BUILD/bin/pushhubd && -x $BUILD/bin/pns-mock && -x $BUILD/bin/pushhubctl ]] || build
  stack_down >/dev/null
  mkdir -p "$RUNDIR/certs"
  "$ROOT/scripts/make-certs.sh" "$RUNDIR/certs"
  local certs=$RUNDIR/certs
  local redis_port mock_port fcm_port wns_port control_port
  local wns_secret admin_key
  wns_secret=$(openssl rand -hex 16)
  admin_key=$(openssl rand -base64 32)

  local redis_config redis_url
  if ((cluster)); then
    local ports node_list="" port
    ports=$(start_cluster)
    for port in $ports; do node_list+="${node_list:+, }\"127.0.0.1:$port\""; done
    redis_config="nodes = [$node_list]"
    redis_url="redis://127.0.0.1:${ports%% *} (cluster: ${ports// /,})"
  else
    redis_port=$(start_redis redis "$RUNDIR/redis.log" 59999 --save "" --appendonly no \
      --dir "$RUNDIR")
    redis_config=$'host = "127.0.0.1"\nport = '"$redis_port"
    redis_url="redis://127.0.0.1:$redis_port"
  fi

  # pns-mock binds port 0 for each listener and writes what it got to its ports file.
  rm -f "$RUNDIR/pns-mock.ports"
  start_bg pns-mock "$RUNDIR/pns-mock.log" "$BUILD/bin/pns-mock" --listen 127.0.0.1 \
    --apns-port 0 --control-port 0 --fcm-port 0 --wns-port 0 \
    --ports-file "$RUNDIR/pns-mock.ports" \
    --cert "$certs/server.pem" --key "$certs/server.key" \
    --apns-key-id "$APNS_KEY_ID" --apns-team-id "$APNS_TEAM_ID" \
    --apns-public-key "$certs/apns-pub.pem" --apns-topic "$APNS_TOPIC" \
    --fcm-account "$FCM_ACCOUNT:$certs/fcm-pub.pem" --fcm-project "$FCM_PROJECT" \
    --wns-sid "$WNS_SID" --wns-secret "$wns_secret"
  for _ in $(seq 1 200); do [[ -f $RUNDIR/pns-mock.ports ]] && break; sleep 0.05; done
  [[ -f $RUNDIR/pns-mock.ports ]] || {
    echo "pns-mock did not start; its log ($RUNDIR/pns-mock.log):" >&2
    tail -n 20 "$RUNDIR/pns-mock.log" >&2
    return 1
  }
  mock_port=$(sed -n 's/^apns_port=//p' "$RUNDIR/pns-mock.ports")
  fcm_port=$(sed -n 's/^fcm_port=//p' "$RUNDIR/pns-mock.ports")
  wns_port=$(sed -n 's/^wns_port=//p' "$RUNDIR/pns-mock.ports")
  control_port=$(sed -n 's/^control_port=//p' "$RUNDIR/pns-mock.ports")

  # The service-account key file a Firebase console would hand out, pointing at pns-mock.
  jq -n --rawfile key "$certs/fcm.key" --arg email "$FCM_ACCOUNT" --arg project "$FCM_PROJECT" \
    --arg uri "https://127.0.0.1:$fcm_port/token" \
    '{type: "service_account", project_id: $project, private_key_id: "demo-key-1",
      private_key: $key, client_email: $email, token_uri: $uri}' \
    >"$RUNDIR/fcm-service-account.json"

  local full_key listen_key
  full_key=$(openssl rand -base64 32)
  listen_key=$(openssl rand -base64 32)
  local instances=1 i grpc_ports=() admin_ports=() rest_ports=()
  ((cluster)) && instances=2
  for ((i = 0; i < instances; i++)); do
    # Every instance's config: the same hubs and Redis; its listeners bind port 0 and it logs
    # the ports it got.
    cat >"$RUNDIR/pushhubd-$i.toml" <<TOML
# Written by ./run up: a dev stack whose providers point at pns-mock.
[server]
grpc_listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
rest_listen = "127.0.0.1:0"
tls_cert = "certs/server.pem"
tls_key = "certs/server.key"
admin_key = "$admin_key"

[redis]
$redis_config

[[hubs]]
name = "demo"
buckets = 1024

  [[hubs.keys]]
  name = "DefaultFullSharedAccessSignature"
  key = "$full_key"
  rights = ["Listen", "Manage", "Send"]

  [[hubs.keys]]
  name = "DefaultListenSharedAccessSignature"
  key = "$listen_key"
  rights = ["Listen"]

  [hubs.apns]
  endpoint = "https://127.0.0.1:$mock_port"
  ca_file = "certs/ca.pem"
  key_file = "certs/apns.p8"
  key_id = "$APNS_KEY_ID"
  team_id = "$APNS_TEAM_ID"
  topic = "$APNS_TOPIC"

  [hubs.fcm]
  service_account_file = "fcm-service-account.json"
  endpoint = "https://127.0.0.1:$fcm_port"
  ca_file = "certs/ca.pem"

  [hubs.wns]
  package_sid = "$WNS_SID"
  secret = "$wns_secret"
  token_url = "https://127.0.0.1:$wns_port/accesstoken.srf"
  allowed_hosts = ["127.0.0.1:$wns_port"]
  ca_file = "certs/ca.pem"
TOML
  done
  ln -sf pushhubd-0.toml "$RUNDIR/pushhubd.toml"
  for ((i = 0; i < instances; i++)); do
    start_bg "pushhubd-$i" "$RUNDIR/pushhubd-$i.log" "$BUILD/bin/pushhubd" \
      --config "$RUNDIR/pushhubd-$i.toml"
  done
  local listening grpc admin rest
  for ((i = 0; i < instances; i++)); do
    # "pushhubd listening: grpc 127.0.0.1:<port> (TLS), admin http://127.0.0.1:<port>,
    #  rest https://127.0.0.1:<port>, ..."
    for _ in $(seq 1 200); do
      listening=$(sed -n 's/.*pushhubd listening: grpc 127\.0\.0\.1:\([0-9]*\).*admin http:\/\/127\.0\.0\.1:\([0-9]*\).*rest https:\/\/127\.0\.0\.1:\([0-9]*\).*/\1 \2 \3/p' \
        "$RUNDIR/pushhubd-$i.log" 2>/dev/null)
      [[ -n $listening ]] && break
      sleep 0.05
    done
    [[ -n $listening ]] || {
      echo "pushhubd $i did not start; its log ($RUNDIR/pushhubd-$i.log):" >&2
      tail -n 20 "$RUNDIR/pushhubd-$i.log" >&2
      return 1
    }
    read -r grpc admin rest <<<"$listening"
    grpc_ports+=("$grpc")
    admin_ports+=("$admin")
    rest_ports+=("$rest")
  done
  ln -sf pushhubd-0.log "$RUNDIR/pushhubd.log"

  local grpc_port=${grpc_ports[0]} admin_port=${admin_ports[0]} rest_port=${rest_ports[0]}
  local addrs="" metrics="" rests="" port
  for port in "${grpc_ports[@]}"; do addrs+="${addrs:+,}127.0.0.1:$port"; done
  for port in "${admin_ports[@]}"; do metrics+="${metrics:+,}http://127.0.0.1:$port/metrics"; done
  for port in "${rest_ports[@]}"; do rests+="${rests:+,}https://127.0.0.1:$port/"; done
  # Azure's SDKs reach the REST API through the connection strings' Endpoint; pushhubctl signs
  # with them too and dials PUSHHUB_GRPC_ADDR.
  local endpoint="sb://127.0.0.1:$rest_port/"
  cat >"$STACK_ENV" <<ENV
PUSHHUB_HUB=demo
PUSHHUB_GRPC_ADDR=127.0.0.1:$grpc_port
PUSHHUB_GRPC_ADDRS=$addrs
PUSHHUB_CONSOLE_URL=http://127.0.0.1:$admin_port/
PUSHHUB_METRICS_URL=http://127.0.0.1:$admin_port/metrics
PUSHHUB_METRICS_URLS=$metrics
PUSHHUB_REST_URL=https://127.0.0.1:$rest_port/
PUSHHUB_REST_URLS=$rests
PUSHHUB_ADMIN_KEY='$admin_key'
PUSHHUB_CA_CERT=$certs/ca.pem
PUSHHUB_CONNECTION_STRING_FULL='Endpoint=$endpoint;SharedAccessKeyName=DefaultFullSharedAccessSignature;SharedAccessKey=$full_key'
PUSHHUB_CONNECTION_STRING_LISTEN='Endpoint=$endpoint;SharedAccessKeyName=DefaultListenSharedAccessSignature;SharedAccessKey=$listen_key'
PUSHHUB_CONFIG=$RUNDIR/pushhubd.toml
PNS_MOCK_CONTROL_URL=http://127.0.0.1:$control_port
PNS_MOCK_APNS_URL=https://127.0.0.1:$mock_port
PNS_MOCK_FCM_URL=https://127.0.0.1:$fcm_port
PNS_MOCK_WNS_URL=https://127.0.0.1:$wns_port
REDIS_URL='$redis_url'
ENV
  say "stack up: source $STACK_ENV (logs in $RUNDIR/*.log; ./run down stops it)"
  say "console: http://127.0.0.1:$admin_port/ (hub demo, \$PUSHHUB_CONNECTION_STRING_FULL)"
}

# Prints "platform: sent to N distinct devices" for each provider pns-mock saw.
mock_summary() {
  curl -fsS "$PNS_MOCK_CONTROL_URL/_mock/stats" |
    jq -r 'to_entries[] | select(.value.accepted + .value.rejected_total > 0)
           | "  \(.key): \(.value.distinct_tokens) distinct devices (\(.value.accepted) accepted, \(.value.rejected_total) refused as dead)"'
}

stack_demo() {
  local devices=${DEMO_DEVICES:-10000}
  [[ ${PUSHHUB_SKIP_BUILD:-} == 1 ]] || build
  stack_up
  trap stack_down EXIT
  set -a; source "$STACK_ENV"; set +a
  local ctl=$BUILD/bin/pushhubctl

  local dead=30
  say "registering $devices devices: 50% iOS (APNs), 35% Android (FCM), 15% Windows (WNS);"
  say "3 tags each from tag-0..tag-9, one template each; $dead of them with dead handles"
  local reg
  reg=$("$ctl" install bulk --count "$devices" --mix apns:50,fcm:35,wns:15 \
    --wns-base "$PNS_MOCK_WNS_URL/?token=" --tag-pool 10 --tags-per 3 --dead "$dead" \
    --template 'apns:alert={"aps":{"alert":"$(message)"}}' \
    --template 'fcm:alert={"message":{"notification":{"title":"pushhub","body":"$(message)"}}}' \
    --template 'wns:alert=<toast><visual><binding template="ToastGeneric"><text>$(message)</text></binding></visual></toast>' \
    --template-header 'wns:alert:X-WNS-Type=wns/toast')
  echo "$reg" | jq -c '{registered, per_second: (.per_second|floor)}'

  say "sending native payloads (one per platform) to tag-3"
  curl -fsS -X POST "$PNS_MOCK_CONTROL_URL/_mock/reset" >/dev/null
  "$ctl" send --tag tag-3 --apns '{"aps":{"alert":"Hello tag-3"}}' \
    --fcm '{"message":{"notification":{"title":"pushhub","body":"Hello tag-3"}}}' \
    --wns '<toast><visual><binding template="ToastGeneric"><text>Hello tag-3</text></binding></visual></toast>' \
    --header X-WNS-Type=wns/toast --wait | jq -c '{state, outcomes: [.outcomes[] | {platform, outcome, count}]}'
  printf 'tag-3: %s registered; pns-mock received:\n' "$(echo "$reg" | jq '.tags["tag-3"]')"
  mock_summary
  local removed
  removed=$(curl -fsS "$PUSHHUB_METRICS_URL" | awk '/^pushhub_handles_expired_total/ {print $2}')
  printf 'dead handles the providers refused, marked pushChannelExpired and no longer targeted: %s\n' "$removed"

  say "sending a templated notification to everyone"
  curl -fsS -X POST "$PNS_MOCK_CONTROL_URL/_mock/reset" >/dev/null
  "$ctl" send --broadcast --prop message='Hello from pushhub' --wait |
    jq -c '{state, outcomes: [.outcomes[] | {platform, outcome, count}]}'
  printf 'everyone: %s registered, %s with a dead handle; pns-mock received:\n' "$devices" "$removed"
  mock_summary
  printf 'one device of each platform, as pns-mock received it:\n'
  for provider in apns fcm wns; do
    curl -fsS "$PNS_MOCK_CONTROL_URL/_mock/received?provider=$provider&limit=1" |
      jq -c --arg p "$provider" '.[0] | {provider: $p, token: (.token[0:24] + "..."), body}'
  done

  say "the Azure REST API (what Azure's SDKs speak; docs/AZURE-MIGRATION.md): a device registers"
  say "with the Listen key, the backend sends to its tag with the full key"
  local listen_token full_token location
  listen_token=$("$ctl" token --connection-string "$PUSHHUB_CONNECTION_STRING_LISTEN")
  full_token=$("$ctl" token)
  curl -fsS --cacert "$PUSHHUB_CA_CERT" -X PUT -H "Authorization: $listen_token" \
    -H 'Content-Type: application/json' -o /dev/null -w 'PUT installation: %{http_code}\n' \
    -d '{"installationId":"rest-1","platform":"apns","pushChannel":"00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0","tags":["from-rest"]}' \
    "${PUSHHUB_REST_URL}demo/installations/rest-1?api-version=2020-06"
  location=$(curl -fsS --cacert "$PUSHHUB_CA_CERT" -X POST -H "Authorization: $full_token" \
    -H 'ServiceBusNotification-Format: apple' -H 'ServiceBusNotification-Tags: from-rest' \
    -H 'Content-Type: application/json' -d '{"aps":{"alert":"Hello over REST"}}' -D - -o /dev/null \
    "${PUSHHUB_REST_URL}demo/messages/?api-version=2020-06" | tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
  printf 'POST messages: 201, Location %s\n' "$location"
  sleep 1
  curl -fsS --cacert "$PUSHHUB_CA_CERT" -H "Authorization: $full_token" "$location" |
    sed -e 's/.*<State>\([^<]*\)<\/State>.*<ApnsOutcomeCounts>\(.*\)<\/ApnsOutcomeCounts>.*/outcome details: \1, APNs \2/'
  echo

  say "what an operator sees (pushhubctl stats; docs/OPERATIONS.md)"
  "$ctl" stats
  say "pushhubd metrics (Prometheus, $PUSHHUB_METRICS_URL)"
  curl -fsS "$PUSHHUB_METRICS_URL" | grep -E '^pushhub_(deliveries_total|notifications_accepted|handles_expired)'
}
