#!/usr/bin/env bash
# The Prometheus alert rules and the Grafana dashboard under deploy/: the rules load and each alert
# fires (and stays quiet) on the series its unit tests give; every dashboard query is valid PromQL;
# every metric either names is one pushhubd exports (gateway/metrics.cc).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cd "$ROOT/deploy/prometheus"
promtool check rules pushhub-alerts.yml
promtool test rules pushhub-alerts.test.yml

# The dashboard's queries as recording rules, so promtool parses each one; Grafana's variables
# become what they stand for.
dashboard=$ROOT/deploy/grafana/pushhub-dashboard.json
jq -e '.panels | length > 0' "$dashboard" >/dev/null || fail "no panels in $dashboard"
{
  echo 'groups:'
  echo '  - name: dashboard'
  echo '    rules:'
  jq -r '.panels[] | .targets[]?.expr' "$dashboard" | sed -e 's/\$__rate_interval/5m/g' -e 's/\$hub/.*/g' |
    awk '{ gsub(/\x27/, "\x27\x27"); printf "      - record: dashboard:query%d\n        expr: \x27%s\x27\n", NR, $0 }'
} >"$WORK/dashboard-rules.yml"
promtool check rules "$WORK/dashboard-rules.yml"
queries=$(grep -c 'record:' "$WORK/dashboard-rules.yml")
((queries >= 20)) || fail "only $queries dashboard queries"

# Metric names: what the rules and the dashboard use must be exported.
grep -o '"pushhub_[a-z_]*' "$ROOT/gateway/metrics.cc" | tr -d '"' | sort -u >"$WORK/exported"
{
  grep -o 'pushhub_[a-z_]*' "$ROOT/deploy/prometheus/pushhub-alerts.yml"
  jq -r '.panels[] | .targets[]?.expr' "$dashboard" | grep -o 'pushhub_[a-z_]*'
} | sort -u >"$WORK/used"
unknown=$(comm -23 "$WORK/used" "$WORK/exported")
[[ -z $unknown ]] || fail "not exported by pushhubd: $unknown"
echo "deploy: rules and their tests pass; $queries dashboard queries parse; $(wc -l <"$WORK/used") metrics, all exported"
