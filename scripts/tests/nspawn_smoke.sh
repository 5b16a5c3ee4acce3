#!/usr/bin/env bash
# shellcheck disable=SC2016  # $ in single quotes: expanded inside the container, on purpose
# Proves scripts/tests/nspawn.sh and the rootfs from scripts/tests/rootfs-noble: boots
# Ubuntu 24.04 under systemd-nspawn, runs commands inside (output, exit codes, stdin,
# environment), HTTP both ways over the container's /30, the offline install of caddy,
# ufw and jq, ufw surviving a reboot, the container's journal, a second container at
# the same time, stop and destroy. Prints the timings. Needs root. Traffic goes only to
# the containers this test starts and to the host's own address on their links.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/nspawn.sh"

fail() { printf '\033[31mFAIL: %s\033[0m\n' "$*" >&2; exit 1; }
pass() { printf 'ok: %s\n' "$*" >&2; }
ms() { date +%s%3N; }
since() { echo "$(($(ms) - $1)) ms"; } # START_MS

pids=()
cleanup() {
    local rc=$? p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if ((rc)); then
        for p in "$CT_BASE"/*.console.log; do
            [[ -f "$p" ]] && { echo "--- $p (end)"; tail -n 20 "$p"; }
        done >&2
    fi
    (exit "$rc")
    ct_cleanup_all
}
trap cleanup EXIT
[[ $(id -u) -eq 0 ]] || fail "needs root"
timings=()

# --- rootfs -----------------------------------------------------------------------------
t=$(ms)
tarball="$("$REPO_ROOT/scripts/tests/rootfs-noble")"
timings+=("rootfs-noble: $(since "$t") ($(du -h "$tarball" | cut -f1) $(basename "$tarball"))")
pass "rootfs $tarball"

# --- create, boot -----------------------------------------------------------------------
t=$(ms)
ct_create s1 "$tarball"
timings+=("ct_create: $(since "$t")")
serial="$CT_BASE/s1.ttyS0"
: >"$serial"
t=$(ms)
ct_boot s1 --bind="$serial:/dev/ttyS0"
ct_wait_booted s1 60
timings+=("boot to running + network: $(since "$t")")
state="$(ct_exec s1 systemctl is-system-running)" || true
[[ "$state" == running ]] || fail "systemctl is-system-running says '$state' (failed: $(ct_exec s1 systemctl --failed --plain --no-legend))"
[[ "$(ct_exec s1 cat /etc/os-release)" == *'VERSION_ID="24.04"'* ]] || fail "not Ubuntu 24.04 inside"
[[ "$(ct_exec s1 systemd-detect-virt)" == systemd-nspawn ]] || fail "systemd-detect-virt is not systemd-nspawn"
mid="$(ct_exec s1 cat /etc/machine-id)"
[[ "$mid" =~ ^[0-9a-f]{32}$ ]] || fail "no machine-id generated: '$mid'"
pass "booted: $state, Ubuntu 24.04, machine-id $mid"

# --- ct_exec ----------------------------------------------------------------------------
out="$(ct_exec s1 bash -c 'echo to-stdout; echo to-stderr >&2' 2>"$CT_BASE/err")"
[[ "$out" == to-stdout && "$(cat "$CT_BASE/err")" == to-stderr ]] || fail "ct_exec stdout/stderr: '$out' / '$(cat "$CT_BASE/err")'"
rc=0; ct_exec s1 bash -c 'exit 7' || rc=$?
((rc == 7)) || fail "ct_exec exit status: $rc, not 7"
rc=0; ct_exec s1 false || rc=$?
((rc == 1)) || fail "ct_exec false: $rc"
rc=0; ct_exec s1 /nonexistent 2>/dev/null || rc=$?
((rc != 0)) || fail "ct_exec of a missing program succeeded"
[[ "$(printf 'echo $((6 * 7))\n' | ct_exec s1 bash -s)" == 42 ]] || fail "ct_exec stdin"
[[ "$(ct_exec_env s1 A=1 'B=two words' -- bash -c 'echo "$A/$B/$HOME"')" == "1/two words//root" ]] || fail "ct_exec_env"
[[ "$(ct_exec s1 id -u)" == 0 ]] || fail "ct_exec is not root"
[[ "$(ct_exec s1 bash -c 'x=1; echo "${x}$x$$" | tr -d 0-9')" == "" ]] || fail "ct_exec arguments are \$-expanded by systemd"
# Its own capabilities: the container's bounding set, not the host's full one.
cap_in="$(ct_exec s1 awk '/^CapBnd/ {print $2}' /proc/self/status)"
cap_host="$(awk '/^CapBnd/ {print $2}' /proc/self/status)"
[[ "$cap_in" != "$cap_host" ]] || fail "ct_exec runs with the host's capabilities ($cap_host)"
pass "ct_exec: stdout, stderr, exit status, stdin, environment, container capabilities ($cap_in)"

# --- network ----------------------------------------------------------------------------
ip="$(ct_ip s1)"
host_ip="$(ct_host_ip s1)"
ct_check_isolated s1
pass "routes inside: only $host_ip/30 and default via $host_ip; host ip_forward=0"

www="$CT_BASE/www"
mkdir -p "$www"
echo "from-the-host" >"$www/marker"
python3 -m http.server --bind "$host_ip" --directory "$www" 8765 >/dev/null 2>&1 &
pids+=($!)
for _ in {1..50}; do curl -fs -o /dev/null "http://$host_ip:8765/marker" && break; sleep 0.1; done
[[ "$(ct_exec s1 curl -fsS --max-time 5 "http://$host_ip:8765/marker")" == from-the-host ]] ||
    fail "container -> host HTTP (http://$host_ip:8765/)"
pass "container -> host: curl http://$host_ip:8765/"

# A minimal HTTP answer on :8080 from what minbase has (systemd-socket-activate, bash).
ct_exec s1 bash -c 'cat >/run/smoke-http' <<'EOF'
#!/bin/bash
while IFS= read -r line && [[ -n "${line%$'\r'}" ]]; do :; done
printf 'HTTP/1.0 200 OK\r\nContent-Length: 15\r\n\r\nfrom-container\n'
EOF
ct_exec s1 chmod 755 /run/smoke-http
ct_exec s1 systemd-run --quiet --unit=smoke-http -- systemd-socket-activate --inetd -a -l 8080 /run/smoke-http
body=""
for _ in {1..50}; do body="$(curl -fs --max-time 2 "http://$ip:8080/")" && break; sleep 0.1; done
[[ "$body" == from-container ]] || fail "host -> container HTTP (http://$ip:8080/): '$body'"
pass "host -> container: curl http://$ip:8080/"

# --- offline install --------------------------------------------------------------------
t=$(ms)
ct_exec_env s1 DEBIAN_FRONTEND=noninteractive -- apt-get install -y -q caddy ufw jq >"$CT_BASE/apt.log" 2>&1 ||
    { tail -n 30 "$CT_BASE/apt.log" >&2; fail "apt-get install caddy ufw jq offline"; }
timings+=("apt-get install caddy ufw jq (offline): $(since "$t")")
[[ "$(ct_exec s1 jq -n '1 + 1')" == 2 ]] || fail "jq"
page=""
for _ in {1..100}; do page="$(curl -fs --max-time 2 "http://$ip/")" && break; sleep 0.1; done
[[ "$page" == *Caddy* ]] || fail "Caddy's default page on http://$ip/"
pass "offline apt-get install caddy ufw jq; Caddy's default page on http://$ip/"

# --- ufw --------------------------------------------------------------------------------
ct_exec s1 ufw allow 22,80,443/tcp >/dev/null
ct_exec s1 ufw --force enable >/dev/null
[[ "$(ct_exec s1 ufw status)" == *"Status: active"* ]] || fail "ufw is not active"
curl -fs --max-time 5 -o /dev/null "http://$ip/" || fail "port 80 closed by ufw"
if curl -fs --max-time 2 -o /dev/null "http://$ip:8080/"; then fail "ufw does not block port 8080"; fi
pass "ufw: active, 80 open, 8080 now blocked"

# --- reboot -----------------------------------------------------------------------------
leader="$(_ct_leader s1)"
t=$(ms)
ct_reboot s1 60
timings+=("ct_reboot (down and up again): $(since "$t")")
[[ "$(_ct_leader s1)" != "$leader" ]] || fail "same leader after reboot"
[[ "$(ct_exec s1 ufw status)" == *"Status: active"* ]] || fail "ufw not active after reboot"
[[ "$(ct_exec s1 cat /etc/machine-id)" == "$mid" ]] || fail "machine-id changed across the reboot"
page=""
for _ in {1..100}; do page="$(curl -fs --max-time 2 "http://$ip/")" && break; sleep 0.1; done
[[ "$page" == *Caddy* ]] || fail "Caddy not answering after the reboot"
[[ "$(tail -n1 "$(_ct_state s1)/exits")" == "1 133" ]] || fail "nspawn did not exit 133 on the reboot"
pass "reboot: new leader, ufw still active, same machine-id, Caddy answers"

# --- journal, serial --------------------------------------------------------------------
caddy_log="$(ct_journal s1 -b 0 -u caddy.service -o cat)"
[[ "$caddy_log" == *"serving initial configuration"* ]] || fail "ct_journal -b 0 -u caddy: no 'serving initial configuration' in: $caddy_log"
boots="$(ct_journal s1 --list-boots | grep -cE ' [0-9a-f]{32} ')"
((boots >= 2)) || fail "ct_journal --list-boots shows $boots boots"
pass "ct_journal: caddy's log, $boots boots"
ct_exec s1 bash -c 'echo to-the-serial-console | tee /dev/ttyS0' >/dev/null
grep -q to-the-serial-console "$serial" || fail "--bind of a host file to /dev/ttyS0"
pass "/dev/ttyS0 bound to $serial: what the container writes there is on the host"
devs="$(ct_exec s1 bash -c 'for d in /dev/console /dev/kmsg /dev/tty0 /dev/ttyS1; do [[ -e $d ]] && echo "$d: present" || echo "$d: absent"; done')"
pass "devices: $(echo "$devs" | paste -sd, -)"

# --- a second container at the same time ------------------------------------------------
ct_create s2 "$tarball"
t=$(ms)
ct_boot s2
ct_wait_booted s2 60
timings+=("second container boot: $(since "$t")")
[[ "$(ct_ip s2)" != "$ip" ]] || fail "s2 got s1's address"
ct_check_isolated s2
if ct_exec s2 curl -fs --max-time 2 -o /dev/null "http://$ip/"; then fail "s2 reaches s1"; fi
curl -fs --max-time 5 -o /dev/null "http://$ip/" || fail "s1 unreachable with s2 running"
pass "s2 ($(ct_ip s2)) runs beside s1 ($ip) and cannot reach it"

# --- stop, destroy ----------------------------------------------------------------------
t=$(ms)
ct_stop s1
timings+=("ct_stop: $(since "$t")")
[[ ! -e /sys/class/net/ve-s1 ]] || fail "ve-s1 still there after ct_stop"
if ct_exec s1 true 2>/dev/null; then fail "ct_exec works on a stopped container"; fi
[[ "$(tail -n1 "$(_ct_state s1)/exits")" == "2 0" ]] || fail "s1 did not power off cleanly: $(tail -n1 "$(_ct_state s1)/exits")"
root="$(ct_root s1)"
ct_destroy s1
[[ ! -e "$root" ]] || fail "ct_destroy left $root"
pass "stop (poweroff, exit 0), destroy"

printf '\ntimings:\n' >&2
printf '  %s\n' "${timings[@]}" >&2
echo "nspawn smoke test passed" >&2
