# Sourced by ./run: a local pushhub stack (redis-server, pns-mock, pushhubd) on free loopback
# ports, in the background, with everything it makes under .run/.
#   stack_up     start it (building first only when no build exists) and write .run/stack.env
#   stack_down   stop what stack_up started
#   stack_demo   build, start, register devices, send, show deliveries, stop

STACK_ENV=$RUNDIR/stack.env
APNS_KEY_ID=DEMOKEY123
APNS_TEAM_ID=DEMOTEAM12
APNS_TOPIC=com.example.pushhub.demo
FCM_PROJECT=pushhub-demo
FCM_ACCOUNT=demo-sender@pushhub-demo.iam.gserviceaccount.com
WNS_SID=ms-app://s-1-15-2-0000000001-demo

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || { echo "$port"; return; }
  done
}

wait_port() {  # wait_port PORT NAME LOG
  for _ in $(seq 1 200); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$2 did not start; its log ($3):" >&2
  tail -n 20 "$3" >&2
  return 1
}

start_bg() {  # start_bg NAME LOG CMD...: starts CMD in the background, records its pid
  local name=$1 logfile=$2
  shift 2
  nohup "$@" >"$logfile" 2>&1 &
  echo $! >"$RUNDIR/$name.pid"
}

stack_down() {
  local stopped=0
  for name in pushhubd pns-mock redis; do
    local pidfile=$RUNDIR/$name.pid
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

stack_up() {
  [[ -x $BUILD/bin/pushhubd && -x $BUILD/bin/pns-mock && -x $BUILD/bin/pushhubctl ]] || build
  stack_down >/dev/null
  mkdir -p "$RUNDIR/certs"
  "$ROOT/scripts/make-certs.sh" "$RUNDIR/certs"
  local certs=$RUNDIR/certs
  local redis_port mock_port fcm_port wns_port control_port grpc_port admin_port
  redis_port=$(free_port); mock_port=$(free_port); fcm_port=$(free_port); wns_port=$(free_port)
  control_port=$(free_port); grpc_port=$(free_port); admin_port=$(free_port)
  local wns_secret
  wns_secret=$(openssl rand -hex 16)

  start_bg redis "$RUNDIR/redis.log" redis-server --port "$redis_port" --bind 127.0.0.1 \
    --save "" --appendonly no --dir "$RUNDIR"
  wait_port "$redis_port" redis-server "$RUNDIR/redis.log"

  start_bg pns-mock "$RUNDIR/pns-mock.log" "$BUILD/bin/pns-mock" --listen 127.0.0.1 \
    --apns-port "$mock_port" --control-port "$control_port" \
    --cert "$certs/server.pem" --key "$certs/server.key" \
    --apns-key-id "$APNS_KEY_ID" --apns-team-id "$APNS_TEAM_ID" \
    --apns-public-key "$certs/apns-pub.pem" --apns-topic "$APNS_TOPIC" \
    --fcm-port "$fcm_port" --fcm-account "$FCM_ACCOUNT:$certs/fcm-pub.pem" \
    --fcm-project "$FCM_PROJECT" \
    --wns-port "$wns_port" --wns-sid "$WNS_SID" --wns-secret "$wns_secret"
  wait_port "$control_port" pns-mock "$RUNDIR/pns-mock.log"

  # The service-account key file a Firebase console would hand out, pointing at pns-mock.
  jq -n --rawfile key "$certs/fcm.key" --arg email "$FCM_ACCOUNT" --arg project "$FCM_PROJECT" \
    --arg uri "https://127.0.0.1:$fcm_port/token" \
    '{type: "service_account", project_id: $project, private_key_id: "demo-key-1",
      private_key: $key, client_email: $email, token_uri: $uri}' \
    >"$RUNDIR/fcm-service-account.json"

  local full_key listen_key
  full_key=$(openssl rand -base64 32)
  listen_key=$(openssl rand -base64 32)
  cat >"$RUNDIR/pushhubd.toml" <<TOML
# Written by ./run up: a dev stack whose providers point at pns-mock.
[server]
grpc_listen = "127.0.0.1:$grpc_port"
admin_listen = "127.0.0.1:$admin_port"
tls_cert = "certs/server.pem"
tls_key = "certs/server.key"

[redis]
host = "127.0.0.1"
port = $redis_port

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
  start_bg pushhubd "$RUNDIR/pushhubd.log" "$BUILD/bin/pushhubd" --config "$RUNDIR/pushhubd.toml"
  wait_port "$grpc_port" pushhubd "$RUNDIR/pushhubd.log"

  local endpoint="sb://127.0.0.1:$grpc_port/"
  cat >"$STACK_ENV" <<ENV
PUSHHUB_HUB=demo
PUSHHUB_GRPC_ADDR=127.0.0.1:$grpc_port
PUSHHUB_METRICS_URL=http://127.0.0.1:$admin_port/metrics
PUSHHUB_CA_CERT=$certs/ca.pem
PUSHHUB_CONNECTION_STRING_FULL='Endpoint=$endpoint;SharedAccessKeyName=DefaultFullSharedAccessSignature;SharedAccessKey=$full_key'
PUSHHUB_CONNECTION_STRING_LISTEN='Endpoint=$endpoint;SharedAccessKeyName=DefaultListenSharedAccessSignature;SharedAccessKey=$listen_key'
PUSHHUB_CONFIG=$RUNDIR/pushhubd.toml
PNS_MOCK_CONTROL_URL=http://127.0.0.1:$control_port
PNS_MOCK_APNS_URL=https://127.0.0.1:$mock_port
PNS_MOCK_FCM_URL=https://127.0.0.1:$fcm_port
PNS_MOCK_WNS_URL=https://127.0.0.1:$wns_port
REDIS_URL=redis://127.0.0.1:$redis_port
ENV
  say "stack up: source $STACK_ENV (logs in $RUNDIR/*.log; ./run down stops it)"
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

  say "pushhubd metrics"
  curl -fsS "$PUSHHUB_METRICS_URL" | grep -E '^pushhub_(deliveries_total|notifications_accepted|handles_expired)'
}
