#!/bin/bash
# AI Sandbox: a private Mistral-7B-Instruct-v0.3 with a browser chat and an OpenAI-compatible
# API, on one RTX 4000 Ada GPU (llama.cpp with CUDA), behind HTTPS.
#
# The Linode Marketplace runs this as a StackScript (the answers below arrive as upper-case
# environment variables); it also works as cloud-init user data with the same variables
# exported after the first line. It fetches the release's deploy kit (sha256-checked against
# the release's SHA256SUMS), saves the answers to /etc/ai-sandbox/deploy.env and hands over to
# the provisioner (ai-sandbox-provision.service), which resumes by itself after a reboot.
# Progress and failures: /etc/motd, /var/log/stackscript.log, /var/log/ai-sandbox/provision.log.
#
# <UDF name="user_name" label="Sudo user to create (lower-case letters, digits, - and _)" example="sandbox" />
# <UDF name="hf_token_password" label="Hugging Face token (only for a private or gated model; the default needs none)" default="" />
# <UDF name="quantization" label="Model quantization (Q4_K_M: 4.4 GB, fastest; Q8_0: 7.7 GB, closest to the original)" oneOf="Q4_K_M,Q5_K_M,Q6_K,Q8_0" default="Q4_K_M" />
# <UDF name="tls_header" label="HTTPS (optional)" default="Yes" header="Yes" />
# <UDF name="domain" label="Domain whose DNS points at this instance (empty: the instance's ip.linodeusercontent.com name)" example="chat.example.com" default="" />
# <UDF name="soa_email_address" label="Email address for Let's Encrypt notices" example="admin@example.com" default="" />
# <UDF name="access_header" label="Access (optional)" default="Yes" header="Yes" />
# <UDF name="allowed_cidr" label="Allow the chat and the API only from this IP address or CIDR (empty: from anywhere; a restriction keeps Let's Encrypt out, so HTTPS uses a self-signed certificate)" example="203.0.113.7/32" default="" />
# <UDF name="install_docker" label="Also install Docker and the NVIDIA Container Toolkit?" oneOf="Yes,No" default="No" />
set -euo pipefail

AI_SANDBOX_VERSION="${AI_SANDBOX_VERSION:-0.1.0}"
# One variable for where the release is, so a mirror or a test serves it instead.
AI_SANDBOX_RELEASE_URL="${AI_SANDBOX_RELEASE_URL:-https://github.com/ai-sandbox/ai-sandbox/releases/download/v$AI_SANDBOX_VERSION}"
AI_SANDBOX_RELEASE_URL="${AI_SANDBOX_RELEASE_URL%/}"
ETC=/etc/ai-sandbox
KIT=/opt/ai-sandbox/deploy
LOG=/var/log/stackscript.log

log_to_console() {
    local sinks=("$LOG")
    # The serial console is where Linode's Lish shows a booting instance.
    [[ -w /dev/ttyS0 ]] && sinks+=(/dev/ttyS0)
    exec > >(tee -a "${sinks[@]}") 2>&1
}

say() { printf '%s ai-sandbox: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# Failures before the deploy kit is on disk are explained here, in the motd's words.
fail() { # REASON DO
    say "ERROR: $1"
    say "what to do: $2"
    {
        echo "+------------------------------------------------------------------------+"
        echo "| ERROR: AI Sandbox could not be installed                               |"
        echo "+------------------------------------------------------------------------+"
        fold -s -w 72 <<<"$1" | sed 's/^/  /'
        echo
        fold -s -w 72 <<<"What to do: $2" | sed 's/^/  /'
        echo
        echo "  Log: $LOG"
    } >/etc/motd
    chmod 644 /etc/motd
    exit 1
}

fetch() { # URL FILE: retries a flaky network for about two minutes
    curl -fsSL --retry 8 --retry-delay 5 --retry-all-errors --connect-timeout 20 -o "$2" "$1"
}

# Answers go to one root-only file; the token goes to its own file and never to the log.
save_answers() {
    local v
    for v in USER_NAME QUANTIZATION DOMAIN SOA_EMAIL_ADDRESS ALLOWED_CIDR INSTALL_DOCKER AI_SANDBOX_MODEL AI_SANDBOX_GPU_PROBE AI_SANDBOX_CPU_MODE HF_ENDPOINT; do
        [[ "${!v:-}" != *$'\n'* ]] || fail "the answer $v spans several lines" "Deploy again with a one-line value."
    done
    [[ -n "${USER_NAME:-}" ]] || fail "no sudo user name was given (user_name)" "Deploy again and fill in the sudo user name."
    install -d -m 0750 "$ETC"
    umask 077
    {
        echo "# The deployment's answers (StackScript $(date -u +%FT%TZ)); rerun $KIT/provision after editing."
        echo "AI_SANDBOX_VERSION=$AI_SANDBOX_VERSION"
        echo "AI_SANDBOX_RELEASE_URL=$AI_SANDBOX_RELEASE_URL"
        echo "SUDO_USER_NAME=$USER_NAME"
        echo "QUANT=${QUANTIZATION:-Q4_K_M}"
        echo "DOMAIN=${DOMAIN:-}"
        echo "SOA_EMAIL=${SOA_EMAIL_ADDRESS:-}"
        echo "ALLOW_FROM=${ALLOWED_CIDR:-}"
        echo "INSTALL_DOCKER=${INSTALL_DOCKER:-No}"
        echo "HF_ENDPOINT=${HF_ENDPOINT:-}"
        echo "AI_SANDBOX_MODEL=${AI_SANDBOX_MODEL:-}"
        echo "AI_SANDBOX_GPU_PROBE=${AI_SANDBOX_GPU_PROBE:-}"
        echo "AI_SANDBOX_CPU_MODE=${AI_SANDBOX_CPU_MODE:-0}"
    } >"$ETC/deploy.env.new"
    mv -f "$ETC/deploy.env.new" "$ETC/deploy.env"
    if [[ -n "${HF_TOKEN_PASSWORD:-}" ]]; then
        printf '%s\n' "$HF_TOKEN_PASSWORD" >"$ETC/hf-token.new"
    fi
    umask 022
    unset HF_TOKEN_PASSWORD
}

install_kit() {
    local work name expected actual
    name="ai-sandbox-$AI_SANDBOX_VERSION-deploy.tar.gz"
    work="$(mktemp -d)"
    say "fetching the deploy kit $name from $AI_SANDBOX_RELEASE_URL"
    fetch "$AI_SANDBOX_RELEASE_URL/SHA256SUMS" "$work/SHA256SUMS" ||
        fail "the release's SHA256SUMS could not be downloaded from $AI_SANDBOX_RELEASE_URL" "Check the network (and AI_SANDBOX_RELEASE_URL), then run this script again: sudo bash $0"
    expected="$(awk -v f="$name" '$2 == f || $2 == "*" f {print $1}' "$work/SHA256SUMS" | head -1)"
    [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || fail "$name is not listed in the release's SHA256SUMS" "Use a published version (AI_SANDBOX_VERSION)."
    fetch "$AI_SANDBOX_RELEASE_URL/$name" "$work/$name" ||
        fail "$name could not be downloaded from $AI_SANDBOX_RELEASE_URL" "Check the network, then run this script again: sudo bash $0"
    actual="$(sha256sum "$work/$name" | cut -d' ' -f1)"
    [[ "$actual" == "$expected" ]] || fail "$name does not match SHA256SUMS (expected $expected, got $actual)" "Run this script again; if it persists, the download is being tampered with."
    mkdir -p "$work/unpack" /opt/ai-sandbox
    tar -C "$work/unpack" -xzf "$work/$name"
    [[ -x "$work/unpack/ai-sandbox-$AI_SANDBOX_VERSION-deploy/provision" ]] || fail "$name holds no provisioner" "Use a published version (AI_SANDBOX_VERSION)."
    rm -rf "$KIT.old"
    [[ -e "$KIT" ]] && mv "$KIT" "$KIT.old"
    mv "$work/unpack/ai-sandbox-$AI_SANDBOX_VERSION-deploy" "$KIT"
    rm -rf "$work" "$KIT.old"
}

# The provisioner runs as a unit so that a reboot or a temporary failure resumes it
# without a person; its log is followed here for the StackScript log until it is done
# or needs a person.
provision() {
    local state=/var/lib/ai-sandbox/provision unit=ai-sandbox-provision.service active result
    install -m 0644 "$KIT/systemd/ai-sandbox-provision.service" /etc/systemd/system/
    systemctl daemon-reload
    systemctl enable --quiet "$unit"
    mkdir -p /var/log/ai-sandbox
    touch /var/log/ai-sandbox/provision.log
    tail -n 0 -F /var/log/ai-sandbox/provision.log >>"$LOG" 2>/dev/null &
    local tail_pid=$!
    say "provisioning ($unit; progress in /etc/motd)"
    systemctl start --no-block "$unit"
    sleep 2
    local deadline=$((SECONDS + 2700))
    while ((SECONDS < deadline)); do
        [[ -e "$state/complete" ]] && break
        active="$(systemctl show -p ActiveState --value "$unit")"
        result="$(systemctl show -p Result --value "$unit")"
        # Failed for good (exit 1: needs a person); a temporary failure (exit 75) shows
        # as "activating" while the unit waits to retry.
        [[ "$active" == failed || ("$active" == inactive && "$result" != success) ]] && break
        sleep 2
    done
    sleep 1
    kill "$tail_pid" 2>/dev/null || true
    if [[ ! -e "$state/complete" ]]; then
        say "provisioning needs attention: see /etc/motd and /var/log/ai-sandbox/provision.log"
        exit 1
    fi
    say "done: see /etc/motd"
}

main() {
    [[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 1; }
    log_to_console
    say "AI Sandbox $AI_SANDBOX_VERSION StackScript on $(. /etc/os-release && echo "$PRETTY_NAME")"
    save_answers
    printf 'AI Sandbox is being set up: fetching the installer (this message updates itself).\n' >/etc/motd
    install_kit
    provision
}

main "$@"
