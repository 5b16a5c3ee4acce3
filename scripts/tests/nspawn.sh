# shellcheck shell=bash
# Boot and drive Ubuntu containers under systemd-nspawn on a host that is not
# systemd-booted (no machinectl, no systemd-run --machine). Sourced, not executed;
# needs root, bash with `set -euo pipefail` is fine.
#
#   source scripts/tests/nspawn.sh
#   trap ct_cleanup_all EXIT
#   ct_create c1 "$(scripts/tests/rootfs-noble)"
#   ct_boot c1 [--bind=/host/dir:/in/container ...]
#   ct_wait_booted c1 120
#   ct_exec c1 systemctl is-system-running
#   ct_exec c1 bash -s <script.sh
#   ct_exec_env c1 DEBIAN_FRONTEND=noninteractive -- apt-get install -y jq
#   curl "http://$(ct_ip c1)/"
#   ct_reboot c1
#   ct_journal c1 -u caddy --no-pager
#   ct_destroy c1
#
# Layout under CT_BASE (default: a new temp dir under /var/tmp, made when this file is
# sourced): NAME/ the root file system, NAME.console.log the console (all boots),
# NAME.ct/ the state (network number, nspawn's pid, boot count, exit codes,
# supervisor.log).
#
# Network: each container gets a /30 of its own, 10.77.N.0/30 with N in 1..250 leased
# host-wide (/run/ai-sandbox-ct/net.N, so several shells can run containers at once):
# host side ve-NAME = 10.77.N.1, the container's host0 = 10.77.N.2 with the default
# route via 10.77.N.1. The container side is a systemd-networkd file written into the
# root before each boot (networkd is enabled in the rootfs, as on a Linode); the host
# side is set by the supervisor after every (re)boot. Nothing is routed beyond the host
# unless the host forwards (net.ipv4.ip_forward=1): see ct_check_isolated.
#
# Names: 1-12 characters [a-z0-9-] starting with a letter (ve-NAME must fit the
# kernel's 15-character interface names) and unique on the host while running.
#
# Timeouts: CT_BOOT_TIMEOUT (default 120 s), CT_EXEC_TIMEOUT (default 1800 s, for each
# ct_exec; the unit inside is given the same RuntimeMaxSec), CT_STOP_TIMEOUT (60 s).
# CT_KEEP=1 keeps the roots and logs at ct_cleanup_all. CT_CONSOLE (default pipe): with
# "pipe" the container has no /dev/console and the console log gets only nspawn's own
# lines; "read-only" gives it a pseudo-terminal /dev/console whose output (systemd's boot
# status, anything written to /dev/console) goes to NAME.console.log.

CT_BASE="${CT_BASE:-}"
if [[ -z "$CT_BASE" ]]; then
    CT_BASE="$(mktemp -d /var/tmp/ai-sandbox-ct.XXXXXX)"
    _CT_BASE_OWNED=1
fi
export CT_BASE
_CT_LEASES=/run/ai-sandbox-ct
_CT_OWNER=$$

_ct_err() { printf 'nspawn.sh: %s\n' "$*" >&2; }
_ct_fail() { _ct_err "$*"; return 1; }

_ct_check_name() { # NAME
    [[ "$1" =~ ^[a-z][a-z0-9-]{0,11}$ ]] ||
        _ct_fail "container name '$1' is invalid: 1-12 characters [a-z0-9-], starting with a letter (ve-NAME must fit 15)"
}

_ct_state() { printf '%s/%s.ct' "$CT_BASE" "$1"; }

_ct_known() { # NAME
    _ct_check_name "$1" || return 1
    [[ -d "$(_ct_state "$1")" ]] || _ct_fail "$1: no such container under $CT_BASE (ct_create first)"
}

ct_root() { # NAME
    _ct_known "$1" || return 1
    printf '%s/%s\n' "$CT_BASE" "$1"
}

_ct_netnum() { cat "$(_ct_state "$1")/net"; }
_ct_veth() { printf 've-%s' "$1"; }
ct_ip() { _ct_known "$1" && printf '10.77.%s.2\n' "$(_ct_netnum "$1")"; }
ct_host_ip() { _ct_known "$1" && printf '10.77.%s.1\n' "$(_ct_netnum "$1")"; }

# Leases a free 10.77.N.0/30 host-wide; a lease whose state dir is gone is stale.
_ct_lease_net() { # STATE_DIR
    local n owner
    mkdir -p "$_CT_LEASES"
    (
        flock -w 30 9 || { _ct_err "timed out locking $_CT_LEASES/lock"; exit 1; }
        for ((n = 1; n <= 250; n++)); do
            if [[ -f "$_CT_LEASES/net.$n" ]]; then
                owner="$(cat "$_CT_LEASES/net.$n")"
                [[ -d "$owner" ]] && continue
            fi
            ip -4 -o addr show 2>/dev/null | grep -qF " 10.77.$n.1/" && continue
            printf '%s\n' "$1" >"$_CT_LEASES/net.$n"
            echo "$n"
            exit 0
        done
        _ct_err "no free 10.77.N.0/30 network (all 250 leased in $_CT_LEASES)"
        exit 1
    ) 9>"$_CT_LEASES/lock"
}

_ct_release_net() { # NAME
    local st n
    st="$(_ct_state "$1")"
    n="$(cat "$st/net" 2>/dev/null)" || return 0
    [[ "$(cat "$_CT_LEASES/net.$n" 2>/dev/null)" == "$st" ]] && rm -f "$_CT_LEASES/net.$n"
    return 0
}

ct_create() { # NAME TARBALL
    local name="$1" tarball="$2" st root n
    _ct_check_name "$name" || return 1
    [[ -s "$tarball" ]] || _ct_fail "$name: create: no tarball at '$tarball'" || return 1
    st="$(_ct_state "$name")"
    root="$CT_BASE/$name"
    [[ ! -e "$root" && ! -e "$st" ]] || _ct_fail "$name: create: $root already exists" || return 1
    mkdir -p "$st" "$root"
    echo "$_CT_OWNER" >"$st/owner"
    echo 0 >"$st/boots"
    n="$(_ct_lease_net "$st")" || { rm -rf "$st" "$root"; _ct_fail "$name: create: no network lease"; return 1; }
    echo "$n" >"$st/net"
    # shellcheck disable=SC2016  # expanded by the inner bash
    if ! timeout 300 bash -o pipefail -c 'zstd -dc -- "$1" | tar -x --numeric-owner --xattrs --xattrs-include="*" -C "$2"' \
        _ "$tarball" "$root"; then
        ct_destroy "$name"
        _ct_fail "$name: create: unpacking $tarball into $root failed"
        return 1
    fi
}

# The container's side of the network, read by systemd-networkd at each boot.
_ct_write_network() { # NAME
    local n root
    n="$(_ct_netnum "$1")"
    root="$CT_BASE/$1"
    mkdir -p "$root/etc/systemd/network"
    cat >"$root/etc/systemd/network/10-ct-host0.network" <<EOF
# Written by scripts/tests/nspawn.sh: a /30 to the test host, nothing else.
[Match]
Name=host0

[Network]
Address=10.77.$n.2/30
Gateway=10.77.$n.1
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
}

_ct_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

_ct_supervisor_pid() { cat "$(_ct_state "$1")/supervisor.pid" 2>/dev/null; }
_ct_nspawn_pid() { cat "$(_ct_state "$1")/nspawn.pid" 2>/dev/null; }

# The host side of the network, once nspawn has made the veth pair.
_ct_host_net() { # NAME NSPAWN_PID
    local ve n i
    ve="$(_ct_veth "$1")"
    n="$(_ct_netnum "$1")"
    for ((i = 0; i < 300; i++)); do
        [[ -e "/sys/class/net/$ve" ]] && break
        _ct_alive "$2" || return 1
        sleep 0.1
    done
    [[ -e "/sys/class/net/$ve" ]] || { echo "no $ve 30 s after nspawn started"; return 1; }
    ip addr replace "10.77.$n.1/30" dev "$ve" && ip link set "$ve" up
}

# Runs in the background: nspawn, restarted when it exits 133 (a reboot inside). Stops
# the container when the shell that started it is gone.
_ct_supervise() { # NAME [nspawn args...]
    set +e
    local name="$1" st root log npid rc boots owner ticks
    shift
    st="$(_ct_state "$name")"
    root="$CT_BASE/$name"
    log="$CT_BASE/$name.console.log"
    owner="$(cat "$st/owner")"
    while :; do
        boots=$(($(cat "$st/boots") + 1))
        echo "$boots" >"$st/boots"
        printf '\n===== boot %d at %s =====\n' "$boots" "$(date -u +%FT%TZ)" >>"$log"
        systemd-nspawn --boot --register=no --keep-unit --timezone=off --console="${CT_CONSOLE:-pipe}" \
            --link-journal=no --resolv-conf=off -D "$root" -M "$name" --network-veth "$@" \
            </dev/null >>"$log" 2>&1 &
        npid=$!
        echo "$npid" >"$st/nspawn.pid"
        echo "boot $boots: nspawn pid $npid"
        _ct_host_net "$name" "$npid" || echo "boot $boots: host side of the network not set up"
        ticks=0
        while _ct_alive "$npid"; do
            if ! _ct_alive "$owner" && [[ ! -e "$st/stop" ]]; then
                echo "owner $owner is gone: stopping"
                touch "$st/stop"
                kill -TERM "$npid"
            fi
            if [[ -e "$st/stop" ]] && ((++ticks > 120)); then kill -KILL "$npid"; fi
            sleep 0.5
        done
        wait "$npid"
        rc=$?
        echo "$boots $rc" >>"$st/exits"
        echo "boot $boots: nspawn exited $rc"
        [[ $rc -eq 133 && ! -e "$st/stop" ]] || break
    done
    rm -f "$st/nspawn.pid"
}

ct_boot() { # NAME [extra nspawn args...]
    local name="$1" st sup
    shift
    _ct_known "$name" || return 1
    st="$(_ct_state "$name")"
    sup="$(_ct_supervisor_pid "$name")" || true
    ! _ct_alive "$sup" || _ct_fail "$name: boot: already running (supervisor $sup)" || return 1
    [[ ! -e "/sys/class/net/$(_ct_veth "$name")" ]] ||
        _ct_fail "$name: boot: host interface $(_ct_veth "$name") exists: another container of this name is running" || return 1
    command -v systemd-nspawn >/dev/null || _ct_fail "$name: boot: systemd-nspawn is missing (apt-get install systemd-container)" || return 1
    rm -f "$st/stop" "$st/nspawn.pid"
    _ct_write_network "$name"
    _ct_supervise "$name" "$@" </dev/null >>"$st/supervisor.log" 2>&1 &
    echo "$!" >"$st/supervisor.pid"
}

# PID 1 of the container: the child of nspawn whose NSpid ends in 1.
_ct_leader() { # NAME
    local npid c children
    npid="$(_ct_nspawn_pid "$1")" || return 1
    read -r -a children 2>/dev/null <"/proc/$npid/task/$npid/children" || true
    for c in "${children[@]}"; do
        [[ "$(awk '/^NSpid:/ {print $NF}' "/proc/$c/status" 2>/dev/null)" == 1 ]] && { echo "$c"; return 0; }
    done
    return 1
}

# systemd-run inside the container (its own capabilities, cgroup, journal); stdin is
# passed through unless it is a terminal. The command runs as a transient service with
# User=root (HOME=/root), cwd /, systemd's PATH and only the variables given; its
# arguments are passed as they are (--expand-environment=no: no $VAR expansion by
# systemd). At CT_EXEC_TIMEOUT the unit is killed (RuntimeMaxSec) and the status is 1.
_ct_run() { # NAME [VAR=VAL...] -- CMD...
    local name="$1" leader t="${CT_EXEC_TIMEOUT:-1800}" args=()
    shift
    while (($#)) && [[ "$1" != -- ]]; do
        [[ "$1" == *=* ]] || _ct_fail "$name: exec: '$1' is not VAR=VALUE" || return 1
        args+=("--setenv=$1")
        shift
    done
    [[ "${1:-}" == -- ]] && shift
    (($#)) || _ct_fail "$name: exec: no command" || return 1
    _ct_known "$name" || return 1
    leader="$(_ct_leader "$name")" || _ct_fail "$name: exec $1: the container is not running" || return 1
    local enter=(env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        nsenter --target "$leader" --mount --uts --ipc --net --pid --cgroup --root --wd --) noexp=(--expand-environment=no)
    # systemd-run before 254 (Debian 12 has 252) lacks --expand-environment: PID 1 then
    # expands $VAR and ${VAR} in the arguments and reads "$$" as "$", so double each "$".
    if [[ "$(timeout 10 "${enter[@]}" systemd-run --help 2>/dev/null)" != *--expand-environment* ]]; then
        noexp=()
        set -- "${@//\$/\$\$}"
    fi
    local cmd=(timeout -k 10 "$((t + 15))" "${enter[@]}"
        systemd-run --wait --pipe --quiet --collect --service-type=exec "${noexp[@]}" -p User=root
        -p "RuntimeMaxSec=$t" "${args[@]}" -- "$@")
    if [[ -t 0 ]]; then "${cmd[@]}" </dev/null; else "${cmd[@]}"; fi
}

ct_exec() { # NAME CMD...
    local name="$1"
    shift
    _ct_run "$name" -- "$@"
}

ct_exec_env() { # NAME VAR=VAL... -- CMD...
    _ct_run "$@"
}

# Time left until DEADLINE (in $SECONDS) is > 0.
_ct_before() { ((SECONDS < $1)); }

ct_wait_booted() { # NAME [TIMEOUT_S]
    local name="$1" t="${2:-${CT_BOOT_TIMEOUT:-120}}" deadline state="" inside outside sup
    _ct_known "$name" || return 1
    deadline=$((SECONDS + t))
    while _ct_before "$deadline"; do
        sup="$(_ct_supervisor_pid "$name")" || true
        _ct_alive "$sup" || { _ct_boot_failed "$name" "the container exited"; return 1; }
        if _ct_leader "$name" >/dev/null; then
            state="$(CT_EXEC_TIMEOUT=10 _ct_run "$name" -- systemctl is-system-running 2>/dev/null)" || true
            inside="$(CT_EXEC_TIMEOUT=10 _ct_run "$name" -- ip -4 -o addr show dev host0 up 2>/dev/null)" || true
            outside="$(ip -4 -o addr show dev "$(_ct_veth "$name")" up 2>/dev/null)" || true
            if [[ ("$state" == running || "$state" == degraded) && "$inside" == *" $(ct_ip "$name")/30 "* &&
                "$outside" == *" $(ct_host_ip "$name")/30 "* ]]; then
                [[ "$state" == degraded ]] && _ct_err "$name: booted degraded; failed units: $(ct_exec "$name" systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
                return 0
            fi
        fi
        sleep 0.3
    done
    _ct_boot_failed "$name" "not booted after $t s (systemctl is-system-running: '${state:-no answer}')"
}

_ct_boot_failed() { # NAME WHY
    _ct_err "$1: boot: $2; console ($CT_BASE/$1.console.log) ends:"
    tail -n 25 "$CT_BASE/$1.console.log" >&2 2>/dev/null || true
    return 1
}

ct_reboot() { # NAME [TIMEOUT_S]
    local name="$1" t="${2:-${CT_BOOT_TIMEOUT:-120}}" st before deadline
    _ct_known "$name" || return 1
    st="$(_ct_state "$name")"
    before="$(cat "$st/boots")"
    CT_EXEC_TIMEOUT=30 ct_exec "$name" systemctl --no-block reboot ||
        _ct_fail "$name: reboot: systemctl reboot failed" || return 1
    deadline=$((SECONDS + t))
    while (($(cat "$st/boots") == before)); do
        _ct_alive "$(_ct_supervisor_pid "$name")" ||
            { _ct_boot_failed "$name" "reboot: nspawn exited $(tail -n1 "$st/exits" | cut -d' ' -f2) instead of 133"; return 1; }
        _ct_before "$deadline" || { _ct_boot_failed "$name" "reboot: still not down after $t s"; return 1; }
        sleep 0.2
    done
    ct_wait_booted "$name" "$((deadline - SECONDS > 5 ? deadline - SECONDS : 5))"
}

ct_journal() { # NAME [journalctl args...]
    local name="$1"
    shift
    _ct_known "$name" || return 1
    timeout "${CT_JOURNAL_TIMEOUT:-60}" journalctl -D "$CT_BASE/$name/var/log/journal" --no-pager "$@"
}

ct_stop() { # NAME
    local name="$1" st sup npid leader deadline
    _ct_known "$name" || return 1
    st="$(_ct_state "$name")"
    sup="$(_ct_supervisor_pid "$name")" || true
    _ct_alive "$sup" || { rm -f "$st/supervisor.pid" "$st/nspawn.pid"; return 0; }
    touch "$st/stop"
    deadline=$((SECONDS + ${CT_STOP_TIMEOUT:-60}))
    if _ct_leader "$name" >/dev/null; then
        CT_EXEC_TIMEOUT=20 ct_exec "$name" systemctl --no-block poweroff 2>/dev/null || true
    fi
    while _ct_alive "$sup" && _ct_before "$((deadline - 15))"; do sleep 0.2; done
    npid="$(_ct_nspawn_pid "$name")" || true
    if _ct_alive "$sup" && _ct_alive "$npid"; then
        _ct_err "$name: stop: no poweroff, killing nspawn $npid"
        leader="$(_ct_leader "$name")" || true
        kill -KILL "$npid" ${leader:+"$leader"} 2>/dev/null || true
    fi
    while _ct_alive "$sup" && _ct_before "$deadline"; do sleep 0.2; done
    if _ct_alive "$sup"; then
        _ct_err "$name: stop: supervisor $sup still there after ${CT_STOP_TIMEOUT:-60} s, killing it"
        kill -KILL "$sup" 2>/dev/null || true
    fi
    wait "$sup" 2>/dev/null || true
    rm -f "$st/supervisor.pid" "$st/nspawn.pid"
}

ct_destroy() { # NAME
    local name="$1"
    _ct_known "$name" || return 1
    ct_stop "$name" || true
    _ct_release_net "$name"
    rm -rf --one-file-system "${CT_BASE:?}/$name" "$(_ct_state "$name")"
}

# Stops every container this shell started and, unless CT_KEEP=1 or the shell is
# exiting with an error (its status is $? on entry, as in `trap ct_cleanup_all EXIT`),
# deletes their roots and CT_BASE when it made it. Logs are kept on failure.
ct_cleanup_all() {
    local rc=$? st name
    for st in "$CT_BASE"/*.ct; do
        [[ -f "$st/owner" && "$(cat "$st/owner")" == "$_CT_OWNER" ]] || continue
        name="$(basename "$st" .ct)"
        if [[ "${CT_KEEP:-0}" == 1 ]]; then ct_stop "$name" || true; else ct_destroy "$name" || true; fi
    done
    if [[ "${CT_KEEP:-0}" == 1 || $rc -ne 0 ]]; then
        _ct_err "container logs kept in $CT_BASE"
    elif [[ "${_CT_BASE_OWNED:-0}" == 1 ]]; then
        rm -rf --one-file-system "$CT_BASE"
    fi
    return "$rc"
}

# True when the container can reach nothing but its host: its only routes are the /30
# and the default via the host, and the host does not forward.
ct_check_isolated() { # NAME
    local name="$1" routes want
    routes="$(ct_exec "$name" ip -4 route show | sed 's/ *$//' | sort)" || return 1
    want="$(printf 'default via %s dev host0 proto static\n10.77.%s.0/30 dev host0 proto kernel scope link src %s\n' \
        "$(ct_host_ip "$name")" "$(_ct_netnum "$name")" "$(ct_ip "$name")" | sort)"
    [[ "$routes" == "$want" ]] || _ct_fail "$name: routes inside are not just the /30 and the host: $routes" || return 1
    [[ "$(cat /proc/sys/net/ipv4/ip_forward)" == 0 ]] || _ct_fail "$name: the host forwards IPv4 (net.ipv4.ip_forward=1)"
}
