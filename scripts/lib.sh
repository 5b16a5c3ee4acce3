# shellcheck shell=bash disable=SC2034  # variables here are used by the scripts that source it
# Shared settings for the scripts in this folder. Sourced, not executed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Caches live outside the clone so that a fresh clone (CI) reuses the compiled llama.cpp.
if [[ -z "${AI_SANDBOX_CACHE:-}" ]]; then
    if [[ $(id -u) -eq 0 ]]; then AI_SANDBOX_CACHE=/var/cache/ai-sandbox; else AI_SANDBOX_CACHE="$HOME/.cache/ai-sandbox"; fi
fi
export AI_SANDBOX_CACHE
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$AI_SANDBOX_CACHE/target}"
FIXTURES="${AI_SANDBOX_FIXTURES:-$REPO_ROOT/.fixtures}"
VENV="$AI_SANDBOX_CACHE/venv"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }


# Installs Debian packages (none given: nothing to do), quietly.
apt_install() { # PACKAGE...
    (($#)) || return 0
    log "apt-get install $*"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Puts rustup's cargo on PATH when rustup installed it (scripts/install-deps does).
use_rust() {
    # shellcheck source=/dev/null # rustup's, outside the repository
    if [[ -f "$HOME/.cargo/env" ]]; then source "$HOME/.cargo/env"; fi
}

# llama.cpp's CMake options for its CUDA shared libraries for compute capabilities
# ARCHS ("89;90"): those of llama-cpp-sys-2's own build (tests, server, app and curl
# off, common on, no -march=native) with CUDA added, and NCCL off so the libraries need
# only cudart and cuBLAS. The release and the GPU benchmark build with exactly these,
# so the benchmark measures what ships.
llama_cuda_cmake_args() { # ARCHS
    printf '%s\n' -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_CUDA=ON \
        -DGGML_CUDA_NCCL=OFF "-DCMAKE_CUDA_ARCHITECTURES=$1" -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_COMMON=ON
}

# Applies our CUDA patches (llama-sys/patches/*.patch, in name order) to the llama.cpp
# tree DIR, a copy of llama-cpp-sys-2's source: the CUDA builds (scripts/release and the
# GPU benchmark) compile exactly this, and the cargo registry's copy stays untouched.
# A patch that no longer applies (a llama-cpp-sys-2 update) stops the build by name.
llama_cuda_patch() { # DIR
    local p
    for p in "$REPO_ROOT"/llama-sys/patches/*.patch; do
        patch -p1 --forward --quiet --no-backup-if-mismatch -d "$1" <"$p" >/dev/null ||
            { echo "llama-sys/patches/${p##*/} does not apply to the llama.cpp source in $1" >&2; return 1; }
    done
}

# "DIR VERSION" of the llama-cpp-sys-2 crate cargo resolved (its llama.cpp is DIR/llama.cpp).
llama_sys_crate() {
    cargo metadata --format-version 1 --manifest-path "$REPO_ROOT/Cargo.toml" | python3 -c '
import json, sys, os
p = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "llama-cpp-sys-2")
print(os.path.dirname(p["manifest_path"]), p["version"])'
}

# The hash of the CUDA patches, for build caches keyed by what they compile.
llama_cuda_patches_hash() {
    cat "$REPO_ROOT"/llama-sys/patches/*.patch | sha256sum | cut -c1-12
}

# "Filename SHA256 Version" of each PACKAGE in a Debian-format package index (apt's
# Packages file); fails naming the first one that is not there.
deb_index_lookup() { # INDEX_FILE PACKAGE...
    python3 - "$@" <<'EOF'
import sys
fields = {}
for stanza in open(sys.argv[1]).read().split("\n\n"):
    d = dict(l.split(": ", 1) for l in stanza.splitlines() if ": " in l and not l.startswith(" "))
    if "Package" in d:
        fields[d["Package"]] = d
for name in sys.argv[2:]:
    d = fields.get(name) or sys.exit(f"{name} is not in the package index {sys.argv[1]}")
    print(d["Filename"], d["SHA256"], d["Version"])
EOF
}

# --- Deployment helpers, shared by scripts/provision and scripts/ai-sandbox ------------
# (They run on an instance from the release's deploy kit, where this file sits next to
# them, as it does in the repository.)


# Where a deployed sandbox keeps its state; tests point them into a container anyway.
AIS_ETC="${AIS_ETC:-/etc/ai-sandbox}"
AIS_VAR="${AIS_VAR:-/var/lib/ai-sandbox}"
AIS_OPT="${AIS_OPT:-/opt/ai-sandbox}"
AIS_LOG_DIR="${AIS_LOG_DIR:-/var/log/ai-sandbox}"
AIS_STATE="$AIS_VAR/provision"
AIS_USER=ai-sandbox
AIS_API_LISTEN=127.0.0.1:8080
AIS_UI_LISTEN=127.0.0.1:8081

# Writes standard input to FILE with MODE and OWNER (user:group) only when the content,
# mode or owner differ, through a rename so that a reader never sees half a file.
# Returns 0 when it changed something, 1 when FILE was already so.
write_if_changed() { # FILE MODE OWNER
    local file="$1" mode="$2" owner="$3" tmp
    tmp="$(mktemp "$(dirname "$file")/.$(basename "$file").XXXXXX")"
    cat >"$tmp"
    if [[ -f "$file" ]] && cmp -s "$tmp" "$file" &&
        [[ "$(stat -c '%a %U:%G' "$file")" == "$mode $owner" ]]; then
        rm -f "$tmp"
        return 1
    fi
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    mv -f "$tmp" "$file"
}

# A random secret of N url-safe characters; it never appears on a command line.
random_secret() { # N
    local s=""
    while ((${#s} < $1)); do s+="$(head -c 64 /dev/urandom | base64 -w0 | tr -d '/+=')"; done
    printf '%s' "${s:0:$1}"
}

# Value of KEY in a KEY=VALUE file (no shell evaluation: the file may hold user input).
env_file_get() { # FILE KEY
    [[ -r "$1" ]] || return 0
    sed -n "s/^$2=//p" "$1" | tail -1 | sed -e 's/^"\(.*\)"$/\1/'
}

# The instance's primary IPv4 address: the source address of the default route (no
# packet is sent).
primary_ipv4() {
    ip -4 -o route get 192.0.2.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -1
}

# Linode's reverse-DNS name of an IPv4 address, which every instance has and which is
# its own registrable domain for Let's Encrypt (on the Public Suffix List).
linode_rdns_name() { # IPV4
    printf '%s.ip.linodeusercontent.com' "${1//./-}"
}

# "PROCESS (pid N, UNIT)" listening on TCP PORT, empty when the port is free.
port_owner() { # PORT
    local name pid unit
    read -r name pid < <(ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 \2/p' | head -1) || return 0
    [[ -n "$pid" ]] || return 0
    unit="$(ps -o unit= -p "$pid" 2>/dev/null | tr -d ' ')"
    printf '%s (pid %s%s)' "$name" "$pid" "${unit:+, $unit}"
}

# Sets KEY=VALUE in USER's ~/.credentials (0600, theirs); values never reach a command
# line or a log.
set_credential() { # USER KEY VALUE
    local file="/home/$1/.credentials" content=""
    [[ -f "$file" ]] && content="$(grep -v "^$2=" "$file" || true)"
    [[ -n "$content" ]] || content="# AI Sandbox credentials, generated on this instance. Keep them secret.
# Rotate: sudo ai-sandbox rotate-key / sudo ai-sandbox rotate-password"
    printf '%s\n%s=%s\n' "$content" "$2" "$3" | write_if_changed "$file" 600 "$1:$1" || true
}

# The chat login "admin" gets the password in $AIS_ETC/ui-admin-password. sandbox-ui must
# be stopped (its history database admits one process). The password arrives on
# standard input, opened by root: the service account cannot read the 0600 file, and a
# command line would show it to every user.
set_ui_admin_password() {
    runuser -u "$AIS_USER" -- "$AIS_OPT/current/bin/sandbox-ui" user set admin \
        --data-dir "$AIS_VAR/ui" <"$AIS_ETC/ui-admin-password" >/dev/null
}

# Caddy's plain-HTTP site once a public certificate is held: everything redirects to
# HTTPS except /ready, which monitors and the deploy tool may read by IP address.
caddy_http_redirect() { # HOST
    printf '\timport status\n\thandle {\n\t\tredir https://%s{uri} 308\n\t}\n' "$1"
}
