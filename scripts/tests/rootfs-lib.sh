# shellcheck shell=bash
# What scripts/tests/rootfs-noble and rootfs-bookworm share: apt set up and the packages
# pre-downloaded inside the new root (plain nspawn, nothing booted), the first-boot
# settings, the offline-install check, packing and the cache. Sourced by them after they
# set SUITE, MIRROR, SECURITY_MIRROR, PREFETCH, HOST_TOOLS, HOST_FILES and define `bootstrap WORK ROOT`
# (debootstrap, signature checked) and `apt_sources` (shell that writes the sources).

# Edits to the distribution's script or to this file build a new root.
cache_key() {
    { cat "$0" "${BASH_SOURCE[0]}"; echo "$MIRROR $SECURITY_MIRROR ${PREFETCH[*]}"; } | sha256sum | cut -c1-12
}

# HOST_TOOLS: "command:package"; HOST_FILES (optional): "path:package".
install_host_tools() {
    local need=() t
    for t in "${HOST_TOOLS[@]}"; do command -v "${t%%:*}" >/dev/null || need+=("${t#*:}"); done
    for t in "${HOST_FILES[@]}"; do [[ -s "${t%%:*}" ]] || need+=("${t#*:}"); done
    apt_install "${need[@]}"
}

# Runs stdin as a bash script in ROOT, with the host's network (apt needs it), as a plain
# nspawn container (nothing booted); extra args go to systemd-nspawn.
in_root() { # ROOT [nspawn args...]
    local root="$1"
    shift
    timeout 1800 systemd-nspawn -q --register=no --keep-unit --pipe --timezone=off --resolv-conf=bind-host \
        -E DEBIAN_FRONTEND=noninteractive -E LC_ALL=C.UTF-8 "$@" -D "$root" -- bash -euo pipefail -s
}

configure_apt() { # ROOT WORK
    log "apt: $SUITE, $SUITE-updates, $SUITE-security; upgrade; download ${PREFETCH[*]}"
    in_root "$1" >"$2/apt.log" 2>&1 <<EOF ||
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
rm -f /etc/apt/apt.conf.d/docker-clean
$(apt_sources)
apt-get update -q
apt-get -y -q -o Dpkg::Options::=--force-confold dist-upgrade
apt-get clean
apt-get install -y -q --download-only ${PREFETCH[*]}
EOF
        { tail -n 40 "$2/apt.log" >&2; die "apt in the new root failed (log above)"; }
}

configure_system() { # ROOT
    log "machine-id, hostname, console, networkd"
    in_root "$1" >&2 <<'EOF'
: >/etc/machine-id
ln -sf /etc/machine-id /var/lib/dbus/machine-id
echo localhost >/etc/hostname
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >/etc/hosts
echo 'LANG=C.UTF-8' >/etc/default/locale
passwd -l root >/dev/null
# Nothing may wait for a login or a first-boot question on the (pipe) console.
systemctl mask -q console-getty.service systemd-firstboot.service
systemctl enable -q systemd-networkd.service
EOF
}

# The provisioner's later offline install, tried in a throwaway copy with no network.
check_offline_install() { # ROOT WORK
    local copy="$2/offline-check"
    log "check: apt-get install ${PREFETCH[*]} offline in a copy"
    cp -a "$1" "$copy"
    in_root "$copy" --private-network >"$2/offline.log" 2>&1 <<EOF ||
apt-get install -y --no-download ${PREFETCH[*]}
caddy version
ufw version
jq --version
EOF
        { tail -n 40 "$2/offline.log" >&2; die "offline install of ${PREFETCH[*]} failed in the copy"; }
    rm -rf --one-file-system "$copy"
}

finalize() { # ROOT
    local root="$1"
    rm -f "$root/usr/sbin/policy-rc.d" "$root"/var/cache/apt/*.bin
    rm -f "$root"/var/log/apt/* "$root/var/log/dpkg.log" "$root/var/log/alternatives.log" "$root/var/log/bootstrap.log"
    printf '# No DNS: a test container reaches only its host.\n' >"$root/etc/resolv.conf"
    [[ -s "$root/etc/machine-id" ]] && die "machine-id is not empty"
    ls "$root"/var/cache/apt/archives/caddy_*.deb >/dev/null 2>&1 || die "caddy's package was not downloaded"
}

build() { # OUT
    local out="$1" work root t0=$SECONDS
    work="$(mktemp -d "$(dirname "$out")/build.XXXXXX")"
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "cleanup_build '$work'" EXIT
    root="$work/root"
    bootstrap "$work" "$root"
    configure_apt "$root" "$work"
    configure_system "$root"
    check_offline_install "$root" "$work"
    finalize "$root"
    log "tar + zstd ($(du -sh --one-file-system "$root" | cut -f1) tree)"
    tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$root" -cf - . | zstd -q -T0 -o "$work/rootfs.tar.zst"
    mv "$work/rootfs.tar.zst" "$out"
    log "rootfs built in $((SECONDS - t0)) s: $out ($(du -h "$out" | cut -f1), $(stat -c %s "$out") bytes)"
}

cleanup_build() { # WORK
    local m
    # A failed debootstrap can leave /proc etc. mounted inside.
    findmnt -rn -o TARGET | { grep -F "$1/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$1"
}

rootfs_main() {
    [[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, systemd-nspawn)"
    local dir="$AI_SANDBOX_CACHE/rootfs" out
    out="$dir/$SUITE-$(cache_key).tar.zst"
    if [[ -s "$out" ]]; then echo "$out"; return; fi
    mkdir -p "$dir"
    exec 9>"$dir/.$SUITE.lock"
    flock -w "${ROOTFS_LOCK_TIMEOUT:-1800}" 9 || die "timed out waiting for another build (lock $dir/.$SUITE.lock)"
    if [[ ! -s "$out" ]]; then
        install_host_tools
        build "$out"
        find "$dir" -maxdepth 1 -name "$SUITE-*.tar.zst" ! -path "$out" -delete
    fi
    echo "$out"
}

