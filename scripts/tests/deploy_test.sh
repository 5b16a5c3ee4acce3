#!/usr/bin/env bash
# The Marketplace path end to end, in a real Ubuntu 24.04 systemd under systemd-nspawn:
# the StackScript runs with its UDF answers as environment variables, fetches the deploy
# kit and the CPU release from a local HTTP server, the model from the fake hub; a fake
# GPU probe stands in for the RTX 4000 Ada and the CPU mode for its driver. Then, from
# outside the container: services, the public HTTPS entry (Caddy, internal CA), kill -9
# and SIGSTOP recovery, a reboot, a second provisioner run, every failure the motd must
# explain, file modes, and no secret in any log.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=nspawn.sh
source "$REPO_ROOT/scripts/tests/nspawn.sh"

work="$(mktemp -d /var/tmp/deploy-test.XXXXXX)"
mkdir "$work/www"
pids=()
cleanup() {
    local p
    ct_cleanup_all || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    printf '\033[31mFAIL: %s\033[0m\n' "$*" >&2
    if [[ -n "${CT:-}" ]]; then
        echo "--- /etc/motd of $CT:" >&2
        cat "$(ct_root "$CT")/etc/motd" >&2 || true
        echo "--- provision.log (tail):" >&2
        tail -40 "$(ct_root "$CT")/var/log/ai-sandbox/provision.log" >&2 || true
        echo "--- journal (tail):" >&2
        ct_journal "$CT" -n 60 --no-pager >&2 || true
    fi
    exit 1
}
pass() { printf 'ok: %s\n' "$*" >&2; }
elapsed() { echo $((SECONDS - $1)); }

[[ -s "$FIXTURES/smollm2-135m-instruct.gguf" ]] || "$REPO_ROOT/scripts/fixtures/setup"
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"

# --- the release and the root file system ------------------------------------------------
t0=$SECONDS
if [[ -n "${DEPLOY_TEST_RELEASE:-}" ]]; then
    # A release built before (e.g. by a developer iterating on the scripts).
    cp -a "$DEPLOY_TEST_RELEASE/." "$work/www/"
else
    "$REPO_ROOT/scripts/release" --target linux-x86_64-cpu --out "$work/www" >"$work/release.log" 2>&1 ||
        { tail -30 "$work/release.log"; fail "scripts/release"; }
fi
pass "release (cpu tarball + deploy kit) in $(elapsed "$t0") s"
t0=$SECONDS
rootfs="$("$REPO_ROOT/scripts/tests/rootfs-noble")"
pass "Ubuntu 24.04 root file system $rootfs ($(du -h "$rootfs" | cut -f1)) in $(elapsed "$t0") s"

MODEL_REPO=test/smollm2-private
MODEL_FILE=smollm2-135m-instruct.gguf
HF_TOKEN_SECRET="hf_deploy_test_$(random_secret 16)"
PROBE_RTX="echo '01:00.0 VGA compatible controller [0300]: NVIDIA Corporation AD104GL [RTX 4000 Ada Generation] [10de:27b2] (rev a1)'"

start_servers() { # NAME: the release server and the fake hub, on the container's link
    local ip _
    ip="$(ct_host_ip "$1")"
    printf '%s cdn.hub.test\n' "$ip" >>"$(ct_root "$1")/etc/hosts"
    python3 -u -m http.server --bind "$ip" --directory "$work/www" 0 >"$work/www.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        RELEASE_PORT="$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/www.log" | head -1)"
        [[ -n "$RELEASE_PORT" ]] && break
        sleep 0.1
    done
    [[ -n "$RELEASE_PORT" ]] || fail "the release server did not start"
    RELEASE_URL="http://$ip:$RELEASE_PORT"
    start_hub "$ip"
}

start_hub() { # IP [BYTES_PER_SECOND_PER_CONNECTION]: sets HUB_URL
    local _ rate=()
    [[ -n "${2:-}" ]] && rate=(--rate "$2")
    : >"$work/hub.url"
    # The CDN must be another host name than the hub (the client follows same-host
    # redirects itself and would lose the hub's headers): the container knows it from
    # its /etc/hosts, as an instance knows the real CDN from DNS.
    python3 "$REPO_ROOT/scripts/fakehub/fake_hub.py" --bind "$1" --cdn-host cdn.hub.test "${rate[@]}" \
        --serve "$MODEL_REPO=$MODEL_FILE=$FIXTURES/smollm2-135m-instruct.gguf" --require-token "$MODEL_REPO" \
        --serve "test/smollm2=$MODEL_FILE=$FIXTURES/smollm2-135m-instruct.gguf" \
        --token "$HF_TOKEN_SECRET" >"$work/hub.url" 2>"$work/hub.log" &
    HUB_PID=$!
    pids+=("$HUB_PID")
    for _ in $(seq 100); do [[ -s "$work/hub.url" ]] && break; sleep 0.1; done
    [[ -s "$work/hub.url" ]] || fail "the fake hub did not start: $(cat "$work/hub.log")"
    HUB_URL="$(cat "$work/hub.url")"
}

hub_requests() { curl -fsS "$HUB_URL/_stats" | jq '.resolve + .cdn'; }

run_stackscript() { # NAME VAR=VAL...: runs the StackScript inside NAME; its status is returned
    local name="$1"
    shift
    install -m 0755 "$REPO_ROOT/scripts/marketplace/ai-sandbox.sh" "$(ct_root "$name")/root/ai-sandbox.sh"
    ct_exec_env "$name" "$@" -- /root/ai-sandbox.sh
}

in_ct() { ct_exec "$CT" "$@"; }
motd() { cat "$(ct_root "$CT")/etc/motd"; }
unit_prop() { in_ct systemctl show -p "$2" --value "$1"; }

wait_for() { # SECONDS DESCRIPTION CMD...: until CMD succeeds
    local limit="$1" what="$2" t=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        (($(elapsed "$t") < limit)) || fail "$what: not within $limit s"
        sleep 0.5
    done
}

# The motd's boxed text wraps: search it as one line.
motd_says() { motd | sed 's/^| //; s/ *|$//' | tr '\n' ' ' | tr -s ' ' | grep -qF -- "$1"; }
pid_changed() { [[ "$(unit_prop "$1" MainPID)" != "$2" ]]; }
port_listening() { in_ct ss -Hltn | grep -q "127.0.0.1:$1"; }
# The public readiness document, as the deploy tool reads it: "CODE BODY".
public_ready() { curl -s --max-time 3 -o "$work/ready.json" -w '%{http_code}' "http://$ct_ip/ready" 2>/dev/null; printf ' %s' "$(tr -d '\n' <"$work/ready.json" 2>/dev/null)"; }
# Records every state /ready passes through while the provisioner works, one per line.
watch_public_ready() { # FILE
    while sleep 0.5; do public_ready >>"$1" 2>/dev/null && echo >>"$1"; done
}

# --- a deployment that works -----------------------------------------------------------------
CT=aisb1
ct_create "$CT" "$rootfs"
ct_boot "$CT"
ct_wait_booted "$CT" 60
ct_ip="$(ct_ip "$CT")"
start_servers "$CT"
HOST="$(linode_rdns_name "$ct_ip")"
root="$(ct_root "$CT")"

udf=(USER_NAME=sandbox QUANTIZATION=Q4_K_M DOMAIN= SOA_EMAIL_ADDRESS= ALLOWED_CIDR= INSTALL_DOCKER=No
    "HF_TOKEN_PASSWORD=$HF_TOKEN_SECRET" "AI_SANDBOX_RELEASE_URL=$RELEASE_URL" "HF_ENDPOINT=$HUB_URL"
    "AI_SANDBOX_MODEL=$MODEL_REPO/$MODEL_FILE" "AI_SANDBOX_GPU_PROBE=$PROBE_RTX" AI_SANDBOX_CPU_MODE=1)
t0=$SECONDS
: >"$work/motd-progress"
(
    while sleep 0.5; do
        [[ -f "$root/etc/motd" ]] && grep -q 'being set up' "$root/etc/motd" && cat "$root/etc/motd" >>"$work/motd-progress"
    done
) &
watcher=$!
: >"$work/ready-progress"
watch_public_ready "$work/ready-progress" &
ready_watcher=$!
run_stackscript "$CT" "${udf[@]}" >"$work/stackscript.out" 2>&1 || { cat "$work/stackscript.out"; fail "the StackScript failed"; }
kill "$watcher" "$ready_watcher" 2>/dev/null || true
deploy_s=$(elapsed "$t0")
pass "StackScript → ready in $deploy_s s (CPU mode, local release server and hub)"
grep -q 'AI Sandbox is being set up' "$work/motd-progress" || fail "the motd never showed the work in progress"
grep -q 'installing: ' "$work/motd-progress" || fail "the in-progress motd names no step: $(head -5 "$work/motd-progress")"
pass "in-progress motd seen: $(grep -o 'installing: .*' "$work/motd-progress" | sort -u | head -8 | paste -sd '|')"
# shellcheck disable=SC2016 # jq's $ variables
seen="$(grep '^503 {' "$work/ready-progress" | cut -d' ' -f2- | jq -r '"\(.status)/\(.step // "")"' 2>/dev/null | uniq | paste -sd ' ')"
grep -qE '(installing|loading)/' <<<"$seen" || fail "public /ready never showed the installation in progress: $(head -3 "$work/ready-progress")"
out="$(public_ready)"
[[ "$out" == 200* ]] && [[ "$(jq -r .status <<<"${out#* }")" == ready ]] || fail "public /ready after the deployment: $out"
pass "public http://IP/ready while installing: $seen; then $(cut -c1-60 <<<"$out")"

for u in ai-sandbox-api ai-sandbox-ui caddy ai-sandbox-motd.timer; do
    [[ "$(in_ct systemctl is-active "$u")" == active ]] || fail "$u is not active"
    [[ "$(in_ct systemctl is-enabled "$u")" == enabled ]] || fail "$u is not enabled"
done
pass "ai-sandbox-api, ai-sandbox-ui, caddy and the motd timer are active and enabled"

motd_says "AI Sandbox is ready" || fail "the motd does not say ready"
motd_says "https://$HOST/v1" && motd_says "/home/sandbox/.credentials" && motd_says "SECURITY" &&
    motd_says "Cloud Firewall" || fail "the ready motd lacks the URL, the credentials path or the security section"
motd_says "self-signed" || fail "the motd does not say that the certificate is not publicly trusted"
[[ "$(stat -c %a "$root/etc/motd")" == 644 ]] || fail "/etc/motd is not world-readable"
pass "ready motd: URLs, credentials path, security section, TLS note; mode 644"

# --- files and secrets ------------------------------------------------------------------------
cred="$root/home/sandbox/.credentials"
API_KEY="$(sed -n 's/^API_KEY=//p' "$cred")"
UI_PASSWORD="$(sed -n 's/^UI_PASSWORD=//p' "$cred")"
SUDO_PASSWORD="$(sed -n 's/^SUDO_PASSWORD=//p' "$cred")"
[[ ${#API_KEY} -ge 40 && ${#UI_PASSWORD} -ge 16 && ${#SUDO_PASSWORD} -ge 16 ]] || fail "credentials file incomplete: $(sed 's/=.*/=.../' "$cred")"
check_mode() { # PATH MODE OWNER
    local got
    got="$(in_ct stat -c '%a %U:%G' "$1")"
    [[ "$got" == "$2 $3" ]] || fail "$1 is $got, expected $2 $3"
}
check_mode /home/sandbox/.credentials 600 sandbox:sandbox
check_mode /etc/ai-sandbox 750 root:ai-sandbox
check_mode /etc/ai-sandbox/deploy.env 600 root:root
check_mode /etc/ai-sandbox/api-keys 600 ai-sandbox:ai-sandbox
check_mode /etc/ai-sandbox/api.env 640 root:ai-sandbox
check_mode /etc/ai-sandbox/ui.env 640 root:ai-sandbox
check_mode /etc/ai-sandbox/ui-admin-password 600 root:root
check_mode /var/lib/ai-sandbox/hf/token 600 ai-sandbox:ai-sandbox
[[ ! -e "$root/etc/ai-sandbox/hf-token.new" ]] || fail "the StackScript's token file was left behind"
pass "file modes of the credentials, keys, token and configuration"

# --- the public entry ------------------------------------------------------------------------
ca="$work/caddy-root.crt"
cp "$root/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt" "$ca" || fail "Caddy has no internal CA"
chat_request() { # BASE_URL BODY [CURL_OPTION...]: a chat completion through the public entry, with the key
    local base="$1" body="$2"
    shift 2
    printf 'header = "Authorization: Bearer %s"\n' "$API_KEY" | curl -sS -K - --cacert "$ca" "$@" \
        --resolve "$HOST:443:$ct_ip" --resolve "$HOST:80:$ct_ip" -H 'Content-Type: application/json' "$base/v1/chat/completions" \
        -d "$body"
}
chat_api() { # BASE_URL: one short chat completion
    chat_request "$1" '{"model":"gpt-4o-mini","max_tokens":8,"temperature":0,"messages":[{"role":"user","content":"What is the capital of France?"}]}' \
        -f --max-time 60
}
out="$(chat_api "https://$HOST")" || fail "no API answer through https://$HOST/v1"
jq -e '.choices[0].message.content | length > 0' <<<"$out" >/dev/null || fail "API answer: $out"
pass "API chat answer through Caddy over HTTPS: $(jq -c '.choices[0].message.content' <<<"$out")"
code="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" --resolve "$HOST:443:$ct_ip" "https://$HOST/v1/models")"
[[ "$code" == 401 ]] || fail "the public API answers $code without a key"
chat_api "http://$HOST" >/dev/null || fail "plain HTTP does not serve while only an internal certificate is held"
pass "no key → 401; plain HTTP serves until a public certificate is held"
VENV_PY="$AI_SANDBOX_CACHE/venv/bin/python"
conv="$("$VENV_PY" "$REPO_ROOT/scripts/tests/deploy_ui.py" "$HOST" "$ct_ip" "$ca" "$UI_PASSWORD" chat "Remember the word pelican.")" ||
    fail "UI login and chat through https://$HOST/"
pass "UI login and a streamed chat answer through https://$HOST/ (conversation $conv)"

stream_counting() { # FILE MAX_TOKENS: an answer that never ends early, streamed through the public entry
    chat_request "https://$HOST" '{"model":"m","max_tokens":'"$2"',"temperature":0,"stream":true,"stream_options":{"include_usage":true},"logit_bias":{"0":-100,"2":-100},"messages":[{"role":"user","content":"Count from one to one thousand."}]}' \
        -N --max-time 120 >"$1" 2>&1
}
streamed_some() { (($(grep -c '^data: {' "$1") >= 5)); } # FILE
engine_running() { # true or false: whether the API is generating, from its own /ready
    local out
    out="$(in_ct curl -fsS --max-time 3 http://127.0.0.1:8080/ready)" || return 2
    jq -r '.queue.running' <<<"$out"
}
engine_idle() { [[ "$(engine_running)" == false ]]; }

# Caddy reloads its configuration when a public certificate arrives (ai-sandbox motd) and
# whenever the provisioner runs again: an answer being streamed must go on across it.
stream_out="$work/stream-across-reload"
stream_counting "$stream_out" 400 &
stream_pid=$!
wait_for 30 "the first tokens of a streamed answer" streamed_some "$stream_out"
in_ct systemctl reload caddy.service || fail "systemctl reload caddy failed"
streaming_at_reload=1
kill -0 "$stream_pid" 2>/dev/null || streaming_at_reload=0
wait "$stream_pid" || fail "the streamed answer broke off when Caddy reloaded: $(tail -3 "$stream_out")"
[[ "$(grep -v '^$' "$stream_out" | tail -1)" == "data: [DONE]" ]] ||
    fail "the streamed answer broke off when Caddy reloaded ($(grep -c '^data: {' "$stream_out") events, no [DONE])"
streamed="$(grep '^data: {' "$stream_out" | tail -1 | cut -c7- | jq -r '.usage.completion_tokens')"
[[ "$streamed" == 400 ]] || fail "the streamed answer across Caddy's reload holds $streamed tokens, not 400"
((streaming_at_reload)) || fail "the streamed answer ended before Caddy's reload did; the check needs a longer answer"
pass "a streamed answer (400 tokens) ran on while Caddy reloaded its configuration"

# One queue for everyone: a client that goes away behind Caddy must not keep it busy.
stream_out="$work/stream-abandoned"
stream_counting "$stream_out" 1500 &
stream_pid=$!
wait_for 30 "the first tokens of a streamed answer" streamed_some "$stream_out"
[[ "$(engine_running)" == true ]] || fail "the API is not generating while it streams an answer: $(engine_running)"
# The background job is a subshell: curl is its child.
pkill -P "$stream_pid" curl || fail "no curl streaming under job $stream_pid"
wait "$stream_pid" 2>/dev/null || true
t0=$SECONDS
wait_for 5 "the API idle after its streaming client went away behind Caddy" engine_idle
pass "a streaming client that went away behind Caddy freed the API within $(elapsed "$t0") s (of 1,500 tokens asked, $(grep -c '^data: {' "$stream_out") streamed)"

listen="$(in_ct ss -Hltn)"
grep -q '127.0.0.1:8080' <<<"$listen" && grep -q '127.0.0.1:8081' <<<"$listen" || fail "API/UI not on loopback: $listen"
grep -qE '(0\.0\.0\.0|\*|\[::\]):(8080|8081)\b' <<<"$listen" && fail "API/UI listen beyond loopback: $listen"
ufw="$(in_ct ufw status)"
grep -q 'Status: active' <<<"$ufw" && grep -q '^22/tcp' <<<"$ufw" && grep -q '^80,443/tcp' <<<"$ufw" ||
    fail "ufw: $ufw"
[[ "$(grep -c ALLOW <<<"$ufw")" -le 4 ]] || fail "ufw allows more than 22, 80, 443: $ufw"
pass "API and UI on loopback only; ufw active with only 22, 80, 443 in"

# --- self-healing -----------------------------------------------------------------------------
api_answers() { printf 'header = "Authorization: Bearer %s"\n' "$API_KEY" | in_ct curl -fsS --max-time 5 -K - "http://127.0.0.1:8080/v1/models" >/dev/null; }
ui_answers() { in_ct curl -fsS --max-time 5 http://127.0.0.1:8081/health >/dev/null; }
api_ready() { in_ct curl -fsS --max-time 5 http://127.0.0.1:8080/ready >/dev/null; }
for svc in api ui; do
    pid="$(unit_prop "ai-sandbox-$svc" MainPID)"
    t0=$SECONDS
    in_ct kill -9 "$pid"
    wait_for 10 "ai-sandbox-$svc back after kill -9" pid_changed "ai-sandbox-$svc" "$pid"
    if [[ $svc == api ]]; then wait_for 10 "API answering after kill -9" api_ready; else wait_for 10 "UI answering after kill -9" ui_answers; fi
    pass "kill -9 of sandbox-$svc: back and answering in $(elapsed "$t0") s"
done
pid="$(unit_prop ai-sandbox-api MainPID)"
watchdog_s="$(unit_prop ai-sandbox-api WatchdogUSec | sed 's/s$//')"
[[ "$watchdog_s" =~ ^[0-9]+$ ]] || fail "ai-sandbox-api has no watchdog in seconds: $watchdog_s"
t0=$SECONDS
in_ct kill -STOP "$pid"
wait_for $((watchdog_s + 15)) "hung API restarted by the watchdog" pid_changed ai-sandbox-api "$pid"
wait_for 15 "API answering after the watchdog restart" api_ready
grep -q 'Watchdog timeout' <<<"$(in_ct journalctl -u ai-sandbox-api --no-pager)" || fail "the journal does not show a watchdog restart"
pass "SIGSTOP of sandbox-api: killed by the watchdog (WatchdogSec $watchdog_s) and answering again in $(elapsed "$t0") s"

# --- reboot: everything back from the cache, no hub request --------------------------------
hub_before="$(hub_requests)"
t0=$SECONDS
ct_reboot "$CT"
wait_for 60 "API ready after reboot" api_ready
wait_for 30 "UI answering after reboot" ui_answers
reboot_s=$(elapsed "$t0")
[[ "$(hub_requests)" == "$hub_before" ]] || fail "the reboot made $(($(hub_requests) - hub_before)) hub requests"
out="$(chat_api "https://$HOST")" || fail "no API answer through Caddy after the reboot"
"$VENV_PY" "$REPO_ROOT/scripts/tests/deploy_ui.py" "$HOST" "$ct_ip" "$ca" "$UI_PASSWORD" history "$conv" pelican >/dev/null ||
    fail "chat history lost across the reboot"
wait_for 20 "ready motd after the reboot" motd_says "AI Sandbox is ready"
pass "reboot: API ready and answering, chat history intact, zero hub requests, in $reboot_s s"

# --- a second provisioner run changes nothing ------------------------------------------------
snapshot() {
    # shellcheck disable=SC2016 # expanded inside the container
    in_ct bash -c 'for u in ai-sandbox-api ai-sandbox-ui caddy; do systemctl show -p MainPID -p NRestarts --value $u; done | paste -sd " "
        stat -c "%n %Y %a" /etc/ai-sandbox/* /etc/caddy/Caddyfile /etc/systemd/system/ai-sandbox-* /home/sandbox/.credentials'
}
before="$(snapshot)"
hub_before="$(hub_requests)"
t0=$SECONDS
in_ct /opt/ai-sandbox/deploy/provision >"$work/second.out" 2>&1 || { cat "$work/second.out"; fail "the second provisioner run failed"; }
[[ "$(snapshot)" == "$before" ]] || fail "the second run changed something: $(diff <(echo "$before") <(snapshot))"
[[ "$(hub_requests)" == "$hub_before" ]] || fail "the second run made hub requests"
pass "second provisioner run: no file, process or hub request changed ($(elapsed "$t0") s)"

# --- failures while running, explained in the motd ---------------------------------------------
# Port 8080 taken by another program.
in_ct systemctl stop ai-sandbox-api
in_ct systemd-run --unit squatter -- systemd-socket-activate --accept -l 127.0.0.1:8080 /bin/true >/dev/null
wait_for 10 "squatter listening" port_listening 8080
in_ct systemctl start --no-block ai-sandbox-api
wait_for 60 "a boxed motd error for port 8080" motd_says "ERROR: port 8080 is in use"
motd_says "systemd-socket-" && motd_says "squatter.service" || fail "the motd does not name the program on port 8080: $(motd)"
pass "port 8080 taken: the motd names $(motd | grep -o 'systemd-socket-[^)]*)' | head -1)"
in_ct systemctl stop squatter
wait_for 60 "API back once 8080 is free" api_ready
wait_for 40 "ready motd once 8080 is free" motd_says "AI Sandbox is ready"
pass "port 8080 freed: the API recovered by itself"

# A service binary that exits at once.
in_ct mv /opt/ai-sandbox/current/bin/sandbox-ui /opt/ai-sandbox/current/bin/sandbox-ui.real
in_ct bash -c 'printf "#!/bin/sh\necho \"sandbox-ui: error: simulated damaged binary\" >&2\nexit 3\n" >/opt/ai-sandbox/current/bin/sandbox-ui; chmod 755 /opt/ai-sandbox/current/bin/sandbox-ui'
in_ct systemctl restart --no-block ai-sandbox-ui
wait_for 60 "motd reporting the crash loop" motd_says "ai-sandbox-ui.service keeps crashing"
motd_says "simulated damaged binary" || fail "the crash motd does not quote the journal: $(motd)"
pass "crash loop of sandbox-ui explained with its last log lines"
in_ct mv -f /opt/ai-sandbox/current/bin/sandbox-ui.real /opt/ai-sandbox/current/bin/sandbox-ui
wait_for 60 "UI back after the binary is restored" ui_answers
wait_for 60 "ready motd after the UI recovered" motd_says "AI Sandbox is ready"
pass "restored binary: the UI came back by itself"

# --- once a publicly trusted certificate is held, plain HTTP redirects ----------------------
# Stands in for Let's Encrypt answering: the certificate Caddy holds is filed where its
# ACME issuer's would be (what the motd and the redirect switch look at).
certs="$root/var/lib/caddy/.local/share/caddy/certificates"
in_ct cp -a "/var/lib/caddy/.local/share/caddy/certificates/local" "/var/lib/caddy/.local/share/caddy/certificates/acme-v02.api.letsencrypt.org-directory"
[[ -d "$certs/acme-v02.api.letsencrypt.org-directory/$HOST" ]] || fail "no certificate for $HOST to stand in with"
redirects() {
    local loc
    loc="$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --resolve "$HOST:80:$ct_ip" "http://$HOST/v1/models")"
    [[ "$loc" == "308 https://$HOST/v1/models" ]]
}
wait_for 30 "plain HTTP redirecting to HTTPS once a public certificate is held" redirects
# The same `ai-sandbox motd` run switches Caddy (a reload, at once) and then rewrites the
# motd (after collecting the state): the redirect can show first.
motd_trusts_the_certificate() { ! motd_says "self-signed"; }
wait_for 30 "the motd to drop the certificate warning" motd_trusts_the_certificate
grep -q "redir https://$HOST{uri} 308" "$root/etc/caddy/Caddyfile" || fail "the Caddyfile has no redirect"
out="$(public_ready)"
[[ "$out" == 200* ]] || fail "after the switch to HTTPS, http://IP/ready is not served any more: $out"
pass "public certificate held: http:// answers 308 → https://, the motd drops the certificate warning"

# --- no secret anywhere it should not be -------------------------------------------------------
ct_journal "$CT" --no-pager -o cat >"$work/journal.txt"
in_ct ps -eo args >"$work/ps.txt"
for secret in "$API_KEY" "$UI_PASSWORD" "$SUDO_PASSWORD" "$HF_TOKEN_SECRET"; do
    for f in "$root/etc/motd" "$root/var/log/stackscript.log" "$root/var/log/ai-sandbox/provision.log" "$work/journal.txt" "$work/ps.txt" "$work/stackscript.out"; do
        grep -qF -- "$secret" "$f" && fail "a secret (${secret:0:4}…) is in $f"
    done
done
pass "no key, password or token in the motd, the logs, the journal or the process list"
# --- rotation -------------------------------------------------------------------------------
old_key="$API_KEY"
in_ct ai-sandbox rotate-key >/dev/null
API_KEY="$(sed -n 's/^API_KEY=//p' "$cred")"
[[ -n "$API_KEY" && "$API_KEY" != "$old_key" ]] || fail "rotate-key wrote no new key"
wait_for 30 "the API answering with the rotated key" api_answers
code="$(printf 'header = "Authorization: Bearer %s"\n' "$old_key" | curl -s -o /dev/null -w '%{http_code}' -K - \
    --cacert "$ca" --resolve "$HOST:443:$ct_ip" "https://$HOST/v1/models")"
[[ "$code" == 401 ]] || fail "the old key still answers $code after rotate-key"
in_ct ai-sandbox rotate-password >/dev/null
new_pw="$(sed -n 's/^UI_PASSWORD=//p' "$cred")"
[[ -n "$new_pw" && "$new_pw" != "$UI_PASSWORD" ]] || fail "rotate-password wrote no new password"
wait_for 30 "UI back after rotate-password" ui_answers
"$VENV_PY" "$REPO_ROOT/scripts/tests/deploy_ui.py" "$HOST" "$ct_ip" "$ca" "$new_pw" history "$conv" pelican >/dev/null ||
    fail "login with the rotated password"
pass "rotate-key (old key 401, new key answers) and rotate-password (new login works, history kept)"
ct_destroy "$CT"

# --- failures during provisioning -------------------------------------------------------------
CT=aisb2
ct_create "$CT" "$rootfs"
ct_boot "$CT"
ct_wait_booted "$CT" 60
ct_ip="$(ct_ip "$CT")"
root="$(ct_root "$CT")"
kill "${pids[@]}" 2>/dev/null || true
pids=()
start_servers "$CT"
fail_udf=(USER_NAME=sandbox "AI_SANDBOX_RELEASE_URL=$RELEASE_URL" "HF_ENDPOINT=$HUB_URL" AI_SANDBOX_CPU_MODE=1)

expect_failure() { # KIND MOTD_TEXT: the provisioner failed with KIND and the motd says TEXT
    [[ "$(cat "$root/var/lib/ai-sandbox/provision/failure.kind" 2>/dev/null)" == "$1" ]] ||
        fail "expected failure kind $1, got '$(cat "$root/var/lib/ai-sandbox/provision/failure.kind" 2>/dev/null)'"
    motd_says "ERROR: " && motd_says "$2" && motd_says "What to do:" && motd_says "/var/log/stackscript.log" ||
        fail "the motd for $1 lacks the box, '$2', what to do or the logs"
    grep -q "ERROR ($1)" "$root/var/log/ai-sandbox/provision.log" || fail "the log has no detail for $1"
    pass "$1: $(motd | sed -n '2p' | sed 's/^| *//;s/ *|$//')"
    motd | sed 's/^/    /' >&2
}
set_deploy() { # KEY VALUE: as a person fixing the deployment would
    in_ct sed -i "s|^$1=.*|$1=$2|" /etc/ai-sandbox/deploy.env
}
reprovision() { in_ct /opt/ai-sandbox/deploy/provision >>"$work/fail.out" 2>&1; }

run_stackscript "$CT" "${fail_udf[@]}" "AI_SANDBOX_GPU_PROBE=true" "AI_SANDBOX_MODEL=test/smollm2/$MODEL_FILE" >"$work/fail.out" 2>&1 &&
    fail "the StackScript succeeded without a GPU"
expect_failure no_gpu "g2-gpu-rtx4000a1-s"

set_deploy AI_SANDBOX_GPU_PROBE "$PROBE_RTX"
set_deploy AI_SANDBOX_MODEL "test/smollm2/missing.gguf"
reprovision && fail "provisioning succeeded with a missing model file"
expect_failure model_not_found "missing.gguf"
out="$(public_ready)"
[[ "$out" == 503* && "$(jq -r '.status + " " + .failure' <<<"${out#* }")" == "failed model_not_found" ]] ||
    fail "public /ready does not report the failure: $out"
[[ "$out" != *missing.gguf* ]] || fail "public /ready gives away the failure's details: $out"
pass "public /ready on failure: $out"

set_deploy AI_SANDBOX_MODEL "$MODEL_REPO/$MODEL_FILE"
reprovision && fail "provisioning succeeded without the token a private model needs"
expect_failure model_auth "HTTP 401"
motd_says "token" || fail "the 401 motd gives no token advice"

set_deploy AI_SANDBOX_MODEL "test/smollm2/$MODEL_FILE"
in_ct mount -t tmpfs -o size=16m,uid=ai-sandbox,gid=ai-sandbox,mode=0750 tmpfs /var/lib/ai-sandbox/hf
reprovision && fail "provisioning succeeded on a full disk"
expect_failure disk_full "disk"
in_ct umount /var/lib/ai-sandbox/hf

# The last run downloads through a slow hub, so the motd's progress line can be seen.
kill "$HUB_PID"
start_hub "$(ct_host_ip "$CT")" 1500000
set_deploy HF_ENDPOINT "$HUB_URL"
: >"$work/motd-download"
(
    while sleep 0.5; do grep -h 'model download: ' "$root/etc/motd" >>"$work/motd-download" 2>/dev/null || true; done
) &
watcher=$!
: >"$work/ready-download"
watch_public_ready "$work/ready-download" &
ready_watcher=$!
reprovision || fail "provisioning did not finish once the causes were fixed: $(tail -5 "$work/fail.out")"
kill "$watcher" "$ready_watcher" 2>/dev/null || true
motd_says "AI Sandbox is ready" || fail "no ready motd after the fixes"
pass "after fixing each cause, the same provisioner finished: the failures left nothing half-done"
grep -qE 'model download: [0-9]+ % \([0-9.]+ [MG]B of [0-9.]+ [MG]B\) at [0-9.]+ [MG]B/s' "$work/motd-download" ||
    fail "the motd never showed the download's percentage and speed: $(head -3 "$work/motd-download")"
pass "download progress in the motd: $(sort -u "$work/motd-download" | sed 's/^ *//' | head -3 | paste -sd '|')"
progress="$(grep '^503 {' "$work/ready-download" | cut -d' ' -f2- | jq -r 'select(.status == "downloading" and .progress > 0 and .progress < 1 and .total_bytes > 0) | .progress' 2>/dev/null | uniq | awk 'NR <= 3' | paste -sd ' ')"
[[ -n "$progress" ]] || fail "public /ready never reported the download's progress: $(grep -m3 downloading "$work/ready-download")"
pass "download progress on public /ready: $progress"
ct_destroy "$CT"

# --- Debian 12, the second supported system ------------------------------------------------
t0=$SECONDS
rootfs_debian="$("$REPO_ROOT/scripts/tests/rootfs-bookworm")"
pass "Debian 12 root file system $rootfs_debian ($(du -h "$rootfs_debian" | cut -f1)) in $(elapsed "$t0") s"
CT=aisb3
ct_create "$CT" "$rootfs_debian"
ct_boot "$CT"
ct_wait_booted "$CT" 60
root="$(ct_root "$CT")"
ct_ip="$(ct_ip "$CT")"
HOST="$(linode_rdns_name "$ct_ip")"
kill "${pids[@]}" 2>/dev/null || true
pids=()
start_servers "$CT"
udf=(USER_NAME=sandbox "HF_TOKEN_PASSWORD=$HF_TOKEN_SECRET" "AI_SANDBOX_RELEASE_URL=$RELEASE_URL" "HF_ENDPOINT=$HUB_URL"
    "AI_SANDBOX_MODEL=$MODEL_REPO/$MODEL_FILE" "AI_SANDBOX_GPU_PROBE=$PROBE_RTX" AI_SANDBOX_CPU_MODE=1)
t0=$SECONDS
run_stackscript "$CT" "${udf[@]}" >"$work/debian.out" 2>&1 || { cat "$work/debian.out"; fail "the StackScript failed on Debian 12"; }
debian_s=$(elapsed "$t0")
motd_says "AI Sandbox is ready" || fail "no ready motd on Debian 12"
API_KEY="$(sed -n 's/^API_KEY=//p' "$root/home/sandbox/.credentials")"
UI_PASSWORD="$(sed -n 's/^UI_PASSWORD=//p' "$root/home/sandbox/.credentials")"
cp "$root/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt" "$ca"
out="$(chat_api "https://$HOST")" || fail "no API answer through Caddy on Debian 12"
"$VENV_PY" "$REPO_ROOT/scripts/tests/deploy_ui.py" "$HOST" "$ct_ip" "$ca" "$UI_PASSWORD" chat "Hello from Debian." >/dev/null ||
    fail "UI login and chat through Caddy on Debian 12"
[[ "$(in_ct systemctl is-enabled ai-sandbox-api)" == enabled && "$(in_ct ufw status | head -1)" == "Status: active" ]] ||
    fail "Debian 12: services not enabled or ufw not active"
pass "Debian 12 (systemd $(in_ct systemctl --version | awk 'NR == 1 {print $2}')): StackScript → ready in $debian_s s, API and UI answer through HTTPS, ufw active"
ct_destroy "$CT"
printf 'deploy test: StackScript → ready %s s (Debian 12: %s s), reboot → ready %s s\n' "$deploy_s" "$debian_s" "$reboot_s" >&2
