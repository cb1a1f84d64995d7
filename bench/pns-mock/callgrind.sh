#!/usr/bin/env bash
# Instructions (callgrind Ir) per request of pns-mock's own process, per provider: runs one
# pns-mock (--threads 1) under valgrind --tool=callgrind, drives it with h2load (HTTP/2 for APNs
# and FCM, HTTP/1.1 keep-alive for WNS, as pushhubd talks to them), and takes the difference of
# two measured runs of NA and NB requests, so that connection set-up cancels out:
#   Ir/request = (Ir(NB requests) - Ir(NA requests)) / (NB - NA)
# Instruction counts are repeatable to ~0.5% on a busy machine, unlike wall-clock rates. Each
# provider first gets WARM requests, enough to fill the /_mock/received ring (--keep-received,
# 10,000 by default) so that the measured runs record into a warm ring, as in a long fan-out.
# Bodies and tokens look like the fan-out benchmark's (bench/fanout/fanout.sh): a 153-character
# FCM token, a 40-character WNS channel token.
#
#   bench/pns-mock/callgrind.sh [--bin DIR] [--out DIR] [--na N] [--nb N] [--warm N] [fcm|wns|apns]...
#
# Prints one line per provider: "<provider> ir_per_request=N ...". The callgrind dumps stay in
# --out (default a new directory under /tmp): callgrind_annotate --inclusive=yes OUT/cg.out.K.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/build/bin
OUT=
NA=2000
NB=12000
WARM=10500
PROVIDERS=()
while (($#)); do
  case $1 in
    --bin) BIN=$2; shift ;;
    --out) OUT=$2; shift ;;
    --na) NA=$2; shift ;;
    --nb) NB=$2; shift ;;
    --warm) WARM=$2; shift ;;
    fcm | wns | apns) PROVIDERS+=("$1") ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
((${#PROVIDERS[@]})) || PROVIDERS=(fcm wns apns)
((NB > NA)) || { echo "--nb must be larger than --na" >&2; exit 2; }
for tool in valgrind callgrind_control h2load curl jq openssl; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done
MOCK=$BIN/pns-mock
[[ -x $MOCK ]] || { echo "no $MOCK (--bin DIR)" >&2; exit 2; }
OUT=${OUT:-$(mktemp -d /tmp/pns-mock-callgrind.XXXXXX)}
mkdir -p "$OUT"
"$ROOT/scripts/make-certs.sh" "$OUT/certs"
C=$OUT/certs
EMAIL=bench-sender@pushhub-bench.iam.gserviceaccount.com
PROJECT=pushhub-bench
SID=ms-app://s-1-15-2-0000000001-bench
SECRET=$(openssl rand -hex 16)
rm -f "$OUT"/cg.out* "$OUT/ports.env"

valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" --compress-strings=no \
  --compress-pos=no "$MOCK" --listen 127.0.0.1 --apns-port 0 --control-port 0 \
  --cert "$C/server.pem" --key "$C/server.key" --threads 1 --log-level warn \
  --apns-key-id BENCHKEY01 --apns-team-id BENCHTEAM1 --apns-public-key "$C/apns-pub.pem" \
  --apns-topic com.example.pushhub.bench --initial-streams 0 --max-concurrent-streams 100 \
  --fcm-port 0 --fcm-account "$EMAIL:$C/fcm-pub.pem" --fcm-project "$PROJECT" \
  --wns-port 0 --wns-sid "$SID" --wns-secret "$SECRET" --ports-file "$OUT/ports.env" \
  >"$OUT/pns-mock.log" 2>&1 &
VG_PID=$!
trap 'kill "$VG_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  [[ -s $OUT/ports.env ]] && break
  sleep 0.2
done
[[ -s $OUT/ports.env ]] || { cat "$OUT/pns-mock.log" >&2; exit 1; }
# shellcheck disable=SC1091
. "$OUT/ports.env"

ASSERTION=$("$MOCK" --print-fcm-assertion --fcm-key-file "$C/fcm.key" --fcm-client-email "$EMAIL" \
  --fcm-audience "https://127.0.0.1:$fcm_port/token")
FCM_TOKEN=$(curl -fsS --cacert "$C/ca.pem" "https://127.0.0.1:$fcm_port/token" \
  -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d "assertion=$ASSERTION" |
  jq -r .access_token)
WNS_TOKEN=$(curl -fsS --cacert "$C/ca.pem" "https://127.0.0.1:$wns_port/accesstoken.srf" \
  -d grant_type=client_credentials --data-urlencode "client_id=$SID" -d "client_secret=$SECRET" \
  -d scope=notify.windows.com | jq -r .access_token)
JWT=$("$MOCK" --print-jwt --apns-key-file "$C/apns.p8" --apns-key-id BENCHKEY01 \
  --apns-team-id BENCHTEAM1)
DEVICE=f$(printf '0123456789abcdef%.0s' {1..10} | cut -c1-152)
printf '{"message":{"token":"%s","notification":{"title":"pushhub","body":"Hello tag"}}}' \
  "$DEVICE" >"$OUT/fcm.json"
printf '%s' '<toast><visual><binding template="ToastGeneric"><text>Hello tag</text></binding></visual></toast>' \
  >"$OUT/toast.xml"
printf '%s' '{"aps":{"alert":"Hello tag"}}' >"$OUT/apns.json"

fcm() {
  h2load -n "$1" -c 4 -m 10 -t 1 -H "authorization: Bearer $FCM_TOKEN" \
    -H 'content-type: application/json' -d "$OUT/fcm.json" \
    "https://127.0.0.1:$fcm_port/v1/projects/$PROJECT/messages:send"
}
wns() {
  h2load --h1 -n "$1" -c 4 -m 1 -t 1 -H "authorization: Bearer $WNS_TOKEN" \
    -H 'x-wns-type: wns/toast' -H 'content-type: text/xml' -d "$OUT/toast.xml" \
    "https://127.0.0.1:$wns_port/?token=w$(printf '0123456789abcdef%.0s' 1 2 3 | cut -c1-40)"
}
apns() {
  h2load -n "$1" -c 4 -m 10 -t 1 -H "authorization: bearer $JWT" \
    -H 'apns-topic: com.example.pushhub.bench' -H 'apns-push-type: alert' -d "$OUT/apns.json" \
    "https://127.0.0.1:$apns_port/3/device/$(printf 'a%.0s' {1..64})"
}
# Runs `$1 $2` and dumps the counts since the last dump as "<label>".
run() {
  "$1" "$2" >"$OUT/$3.txt" 2>&1
  grep -q "status codes: $2 2xx" "$OUT/$3.txt" || { echo "$3: not all 2xx" >&2; cat "$OUT/$3.txt" >&2; exit 1; }
  callgrind_control -d "$3" "$VG_PID" >/dev/null 2>&1
}
summary() {  # label -> Ir of that dump
  awk '/^summary:/ { print $2 }' "$(grep -l "^desc: Trigger: dump $1\$" "$OUT"/cg.out.*)"
}
for p in "${PROVIDERS[@]}"; do
  run "$p" "$WARM" "$p-warm"
  run "$p" "$NA" "$p-a"
  run "$p" "$NB" "$p-b"
done
kill "$VG_PID"
wait "$VG_PID" 2>/dev/null || true
trap - EXIT
for p in "${PROVIDERS[@]}"; do
  a=$(summary "$p-a")
  b=$(summary "$p-b")
  echo "$p ir_per_request=$(((b - a) / (NB - NA))) ir_${NA}=$a ir_${NB}=$b out=$OUT"
done
