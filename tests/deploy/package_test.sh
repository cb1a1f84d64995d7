#!/usr/bin/env bash
# The .deb (`./run package`): built with CPack from this build tree, it holds what an admin
# needs with the right owners and modes, its maintainer scripts parse, its systemd unit verifies
# and scores as hardened, and the daemon starts from the unpacked tree with the packaged config
# (an admin key set) against a test redis-server: /healthz answers 200, the packaged pushhubctl
# creates and lists a hub, and SIGTERM stops it cleanly.
# Usage: package_test.sh BUILD_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd)
WORK=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cpack --config "$BUILD/CPackConfig.cmake" -B "$WORK/out" >"$WORK/cpack.log" 2>&1 ||
  { cat "$WORK/cpack.log"; fail "cpack"; }
deb=$(ls "$WORK"/out/pushhub_*.deb)
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

info=$(dpkg-deb --field "$deb" Package Depends Recommends)
grep -q '^Package: pushhub$' <<<"$info" || fail "package name: $info"
grep -q 'adduser' <<<"$info" || fail "Depends lacks adduser: $info"
grep -q 'libhiredis' <<<"$info" || fail "Depends lacks the libraries (dpkg-shlibdeps): $info"
grep -q 'libgrpc++' <<<"$info" || fail "Depends lacks libgrpc++: $info"
grep -q 'redis-server' <<<"$info" || fail "Recommends lacks redis-server: $info"

listing=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/pushhubd ./usr/bin/pushhubctl ./lib/systemd/system/pushhubd.service \
  ./etc/pushhub/pushhubd.toml ./usr/share/doc/pushhub/OPERATIONS.md \
  ./usr/share/doc/pushhub/CONFIG.md ./usr/share/doc/pushhub/README.md \
  ./usr/share/pushhub/pushhub-alerts.yml ./usr/share/pushhub/pushhub-dashboard.json; do
  grep -q " $path\$" <<<"$listing" || fail "$path not in the package"
done
# The config holds keys: not world-readable (postinst gives it to root:pushhub).
grep -E ' \./etc/pushhub/pushhubd\.toml$' <<<"$listing" | grep -q '^-rw-r----- root/root' ||
  fail "config mode: $(grep pushhubd.toml <<<"$listing")"

dpkg-deb --control "$deb" "$WORK/control"
grep -qx /etc/pushhub/pushhubd.toml "$WORK/control/conffiles" || fail "config is not a conffile"
for script in postinst prerm postrm; do
  [[ -x $WORK/control/$script ]] || fail "$script missing or not executable"
  sh -n "$WORK/control/$script" || fail "$script does not parse"
done
grep -q 'adduser --system' "$WORK/control/postinst" || fail "postinst makes no system user"

root=$WORK/root
dpkg-deb --extract "$deb" "$root"
unit=$root/lib/systemd/system/pushhubd.service
grep -qx 'User=pushhub' "$unit" || fail "the unit does not run as pushhub"
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (./run deps installs systemd)"
# verify wants the unit's binary where ExecStart says: a copy pointing into the unpacked tree.
# It warns (and still exits 0) on unknown keys, so any output fails.
sed "s|/usr/bin/pushhubd|$root/usr/bin/pushhubd|" "$unit" >"$WORK/pushhubd.service"
verify=$(systemd-analyze verify --man=no "$WORK/pushhubd.service" 2>&1) ||
  fail "systemd-analyze verify: $verify"
[[ -z $verify ]] || fail "systemd-analyze verify: $verify"
exposure=$(systemd-analyze security --offline=yes --root="$root" pushhubd.service 2>&1 |
  sed -n 's/.*Overall exposure level for pushhubd.service: \([0-9.]*\).*/\1/p')
[[ -n $exposure ]] || fail "no exposure score from systemd-analyze security"
awk -v e="$exposure" 'BEGIN { exit !(e < 2.5) }' || fail "exposure $exposure, want < 2.5"
echo "unit verified; exposure $exposure"

# A test redis-server: a random port, another on a clash (redis cannot bind port 0 and say).
for attempt in 1 2 3 4 5 6 7 8; do
  redis_port=$((20000 + RANDOM % 30000))
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK" --logfile "$WORK/redis.log" &
  redis_pid=$!
  for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
    kill -0 $redis_pid 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 $redis_pid 2>/dev/null && redis-cli -p "$redis_port" ping | grep -q PONG; then
    pids+=("$redis_pid")
    break
  fi
  wait $redis_pid 2>/dev/null || true
  redis_port=
done
[[ -n $redis_port ]] || fail "no redis-server"

# The packaged config, as an admin would edit it: an admin key, this Redis, listeners on port 0.
admin_key=$(openssl rand -base64 32)
mkdir -p "$WORK/etc"
sed -e "s|^# admin_key = \"\"|admin_key = \"$admin_key\"|" \
  -e "s|^port = 6379|port = $redis_port|" \
  -e 's|^grpc_listen = .*|grpc_listen = "127.0.0.1:0"|' \
  -e 's|^admin_listen = .*|admin_listen = "127.0.0.1:0"|' \
  "$root/etc/pushhub/pushhubd.toml" >"$WORK/etc/pushhubd.toml"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
read -r -a command <<<"${exec_start//\/etc\/pushhub/$WORK/etc}"
command[0]=$root${command[0]}
[[ ${command[0]} == "$root/usr/bin/pushhubd" ]] || fail "ExecStart: $exec_start"
"${command[@]}" >"$WORK/pushhubd.log" 2>&1 &
daemon=$!
pids+=("$daemon")

listening=
for _ in $(seq 100); do
  listening=$(grep -m1 'pushhubd listening' "$WORK/pushhubd.log" || true)
  [[ -n $listening ]] && break
  kill -0 $daemon 2>/dev/null || { cat "$WORK/pushhubd.log"; fail "pushhubd exited"; }
  sleep 0.1
done
[[ -n $listening ]] || { cat "$WORK/pushhubd.log"; fail "pushhubd did not start"; }
grpc=$(sed -n 's/.*grpc \([0-9.]*:[0-9]*\).*/\1/p' <<<"$listening")
admin=$(sed -n 's|.*admin http://\([0-9.]*:[0-9]*\).*|\1|p' <<<"$listening")
status=
for _ in $(seq 50); do
  status=$(curl -s -o "$WORK/health" -w '%{http_code}' "http://$admin/healthz" || true)
  [[ $status == 200 ]] && break
  sleep 0.1
done
[[ $status == 200 ]] || fail "/healthz answered $status: $(cat "$WORK/health")"

ctl=$root/usr/bin/pushhubctl
cat >"$WORK/hub.json" <<JSON
{"name": "packaged", "buckets": 64,
 "keys": [{"name": "backend", "secret": "$(openssl rand -base64 32)", "rights": ["Listen", "Send", "Manage"]}]}
JSON
"$ctl" --addr "$grpc" --admin-key "$admin_key" hub create --file "$WORK/hub.json" >/dev/null
"$ctl" --addr "$grpc" --admin-key "$admin_key" hub list | grep -q packaged ||
  fail "the created hub is not listed"
if "$ctl" --addr "$grpc" --admin-key "wrong-$admin_key" hub list >/dev/null 2>&1; then
  fail "a wrong admin key was accepted"
fi

kill -TERM $daemon
rc=0
wait $daemon || rc=$?
[[ $rc == 0 ]] || { cat "$WORK/pushhubd.log"; fail "pushhubd exited $rc on SIGTERM"; }
grep -q 'pushhubd stopped' "$WORK/pushhubd.log" || fail "no clean stop in the log"
! grep -q "$admin_key" "$WORK/pushhubd.log" || fail "the admin key is in the log"
echo "package: unpacked, started against redis :$redis_port, served a hub, stopped cleanly"
