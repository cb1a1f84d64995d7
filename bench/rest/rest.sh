#!/usr/bin/env bash
# The REST API benchmark (docs/PERFORMANCE.md, "The Azure REST API"). Starts the dev stack
# (./run up: redis-server, pns-mock, pushhubd with the REST API on), then, in rounds that
# alternate the two APIs so each pair shares the machine's mood:
#   registration: N installations, one call each, 64 clients at once: over REST (HTTPS/1.1
#     keep-alive, as Azure's SDKs) and over gRPC (the reference);
#   sends: D direct sends one after another, accept latency (call -> answer), REST and gRPC.
# Stops the stack on exit.
#
#   bench/rest/rest.sh [--count 20000] [--concurrency 64] [--sends 2000] [--rounds 3]
# The last line of output is `rest_register_per_s=.. grpc_register_per_s=.. ratio=.. ...`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${PUSHHUB_BUILD_DIR:-$ROOT/build}
COUNT=20000
CONCURRENCY=64
SENDS=2000
ROUNDS=3
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }
while (($#)); do
  case $1 in
    --count) COUNT=$2; shift ;;
    --concurrency) CONCURRENCY=$2; shift ;;
    --sends) SENDS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    *) usage ;;
  esac
  shift
done

cd "$ROOT"
PUSHHUB_SKIP_BUILD=1 ./run up >/dev/null
trap './run down >/dev/null' EXIT
set -a; source .run/stack.env; set +a
probe=$BUILD/bin/rest_probe

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { jq -r ".$1"; }
rest_rates=() grpc_rates=() rest_p99=() grpc_p99=()
for ((round = 1; round <= ROUNDS; round++)); do
  grpc=$("$probe" register --api grpc --count "$COUNT" --concurrency "$CONCURRENCY" --prefix "g$round")
  rest=$("$probe" register --api rest --count "$COUNT" --concurrency "$CONCURRENCY" --prefix "r$round")
  grpc_rates+=("$(echo "$grpc" | field per_second)")
  rest_rates+=("$(echo "$rest" | field per_second)")
  printf 'round %d registration: REST %s/s (p99 %s ms), gRPC %s/s (p99 %s ms)\n' "$round" \
    "$(echo "$rest" | field per_second)" "$(echo "$rest" | field p99_ms)" \
    "$(echo "$grpc" | field per_second)" "$(echo "$grpc" | field p99_ms)"
  grpc=$("$probe" send --api grpc --count "$SENDS")
  rest=$("$probe" send --api rest --count "$SENDS")
  grpc_p99+=("$(echo "$grpc" | field p99_ms)")
  rest_p99+=("$(echo "$rest" | field p99_ms)")
  printf 'round %d send accept latency: REST p50 %s ms p99 %s ms, gRPC p50 %s ms p99 %s ms\n' \
    "$round" "$(echo "$rest" | field p50_ms)" "$(echo "$rest" | field p99_ms)" \
    "$(echo "$grpc" | field p50_ms)" "$(echo "$grpc" | field p99_ms)"
done
rest_rate=$(printf '%s\n' "${rest_rates[@]}" | median)
grpc_rate=$(printf '%s\n' "${grpc_rates[@]}" | median)
rest_send=$(printf '%s\n' "${rest_p99[@]}" | median)
grpc_send=$(printf '%s\n' "${grpc_p99[@]}" | median)
printf 'rest_register_per_s=%s grpc_register_per_s=%s ratio=%s rest_send_p99_ms=%s grpc_send_p99_ms=%s\n' \
  "$rest_rate" "$grpc_rate" "$(awk -v a="$rest_rate" -v b="$grpc_rate" 'BEGIN { printf "%.3f", a / b }')" \
  "$rest_send" "$grpc_send"
