#!/usr/bin/env bats
# scripts/deploy against a local fake of the Linode API v4 (fake_linode.py), which checks
# every request body and every answer against Linode's published OpenAPI description,
# and whose instances get loopback addresses where a fake sandbox answers /ready.
# Run by scripts/test: bats scripts/tests/deploy_tool.bats
# Each @test runs in its own subshell, so variables set in one never reach another.
# shellcheck disable=SC2030,SC2031

bats_require_minimum_version 1.5.0

setup_file() {
    REPO_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    export REPO_ROOT
    export DEPLOY="$REPO_ROOT/scripts/deploy"
    export OPENAPI="${LINODE_OPENAPI:-$REPO_ROOT/../shared/linode-openapi/subset.json}"
    [ -r "$OPENAPI" ] || { echo "no Linode OpenAPI subset at $OPENAPI (set LINODE_OPENAPI)" >&3; return 1; }
    export PY="${VENV_PY:-${AI_SANDBOX_CACHE:-/var/cache/ai-sandbox}/venv/bin/python}"
}

setup() {
    TOKEN="tok-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    export TOKEN
    STATE="$BATS_TEST_TMPDIR/fake"
    mkdir -p "$STATE" "$BATS_TEST_TMPDIR/home/.ssh"
    export HOME="$BATS_TEST_TMPDIR/home" XDG_CONFIG_HOME="$BATS_TEST_TMPDIR/home/.config" USER=tester
    echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnlyFakeKeyForTestsOnly00 tester@laptop" >"$HOME/.ssh/id_ed25519.pub"
    export AI_SANDBOX_POLL_SECONDS=0.2 LINODE_API_RETRY_SECONDS=20
    unset LINODE_TOKEN AI_SANDBOX_URL
}

teardown() {
    if [ -n "${FAKE_PID:-}" ]; then kill "$FAKE_PID" 2>/dev/null || true; wait "$FAKE_PID" 2>/dev/null || true; fi
}

# Starts the fake with extra arguments; exports what the tool needs to reach it.
start_fake() {
    printf '%s\n' "$TOKEN" >"$BATS_TEST_TMPDIR/token"
    "$PY" "$BATS_TEST_DIRNAME/fake_linode.py" --state-dir "$STATE" --openapi "$OPENAPI" --token-file "$BATS_TEST_TMPDIR/token" \
        --page-size-cap 25 --timing provisioning=0.4,booting=0.4 --record-root-pass "$BATS_TEST_TMPDIR/root-pass" \
        "$@" >"$BATS_TEST_TMPDIR/fake.log" 2>&1 &
    FAKE_PID=$!
    local _
    for _ in $(seq 100); do
        [ -s "$STATE/ready.json" ] && break
        kill -0 "$FAKE_PID" 2>/dev/null || { cat "$BATS_TEST_TMPDIR/fake.log" >&3; return 1; }
        sleep 0.1
    done
    LINODE_API_URL="$(jq -r .api "$STATE/ready.json")"
    SANDBOX_PORT="$(jq -r .sandbox_port "$STATE/ready.json")"
    export LINODE_API_URL LINODE_TOKEN="$TOKEN" AI_SANDBOX_URL="http://{ip}:$SANDBOX_PORT"
}

fake_state() { curl -fsS "${LINODE_API_URL%/v4}/__fake/state"; }
requests() { cat "$STATE/requests.jsonl" 2>/dev/null || true; }
count_requests() { # METHOD PATH-REGEX
    requests | jq -s --arg m "$1" --arg p "$2" '[.[] | select(.method == $m and (.path | test($p)))] | length'
}

# Every test ends here: nothing the fake saw broke the OpenAPI description, and neither
# the token nor a root password is in any output or file the run left behind.
assert_clean() {
    if [ -s "$STATE/violations.jsonl" ]; then
        echo "OpenAPI violations:" && cat "$STATE/violations.jsonl"
        return 1
    fi
    local secrets=("$TOKEN") f
    if [ -s "$BATS_TEST_TMPDIR/root-pass" ]; then
        while IFS= read -r f; do secrets+=("$f"); done <"$BATS_TEST_TMPDIR/root-pass"
    fi
    for f in "${secrets[@]}"; do
        [ -n "$f" ] || continue
        if [[ "$output" == *"$f"* ]]; then echo "a secret is in the output"; return 1; fi
        # The files a test itself keeps secrets in are the only ones allowed to hold them.
        leaks="$(grep -rlF --exclude=root-pass --exclude=kept-root-pass --exclude=linode-cli --exclude=token -- "$f" "$BATS_TEST_TMPDIR" || true)"
        if [ -n "$leaks" ]; then echo "a secret is in: $leaks"; return 1; fi
    done
}

# DEPLOY_BASH runs the tool under another bash (e.g. a 3.2 build, as on macOS).
deploy() { timeout 120 "${DEPLOY_BASH:-bash}" "$DEPLOY" "$@" </dev/null; }

@test "help names every subcommand, flag and exit code" {
    run "${DEPLOY_BASH:-bash}" "$DEPLOY" --help
    [ "$status" -eq 0 ]
    for word in create status list destroy --region --type --label --ssh-key --hf-token-file --quant --domain \
        --allow-from --no-firewall --yes --dry-run --json --wait --no-wait --timeout --sandbox-url LINODE_API_URL LINODE_TOKEN \
        "2 bad arguments" "3 no token" "4 nothing can be created" "5 a Linode" "6 timed out" "7 deployed but"; do
        [[ "$output" == *"$word"* ]] || { echo "help lacks $word"; return 1; }
    done
}

@test "only bash 3.2 features (the macOS shell): no bash 4 constructs" {
    # declare -A/-n, mapfile, case conversion, |&, &>>, coproc, ${x@Q}, wait -n, printf %()T, negative lengths
    run grep -nE 'declare -[aA-Za-z]*[An]|local -n|mapfile|readarray|\$\{[A-Za-z_]+(,,|\^\^)|\|&|&>>|coproc|@Q\}|wait -n|%\(|EPOCHSECONDS|\$\{[A-Za-z_]+:[^}]*:-[0-9]' "$DEPLOY"
    [ "$status" -eq 1 ] || { echo "$output"; return 1; }
    # Empty arrays under set -u fail before bash 4.4: every expanded array is filled first.
    run grep -nE '"\$\{[A-Za-z_]+\[@\]\}"' "$DEPLOY"
    [[ "$(echo "$output" | grep -vc 'args\[@\]')" == 0 ]] || { echo "$output"; return 1; }
}

@test "a missing jq or curl is named with how to install it" {
    mkdir -p "$BATS_TEST_TMPDIR/bin"
    ln -sf "$(command -v "${DEPLOY_BASH:-bash}")" "$BATS_TEST_TMPDIR/bin/bash"
    for t in curl cat head tr sed awk mktemp chmod rm dirname od grep; do ln -sf "$(command -v "$t")" "$BATS_TEST_TMPDIR/bin/$t"; done
    PATH="$BATS_TEST_TMPDIR/bin" run "${DEPLOY_BASH:-bash}" "$DEPLOY" list
    [ "$status" -eq 8 ]
    [[ "$output" == *"jq is needed"* && "$output" == *"apt-get install jq"* && "$output" == *"brew install jq"* ]]
}

@test "no token: says how to make one and which scopes it needs" {
    start_fake
    unset LINODE_TOKEN
    run deploy list
    echo "$output"
    [ "$status" -eq 3 ]
    [[ "$output" == *"LINODE_TOKEN"* && "$output" == *"API Tokens"* && "$output" == *"Read/Write on Linodes, Firewalls and StackScripts"* ]]
    [ "$(requests | wc -l)" -eq 0 ]
}

@test "the token comes from linode-cli's configuration when LINODE_TOKEN is unset" {
    start_fake
    unset LINODE_TOKEN
    mkdir -p "$XDG_CONFIG_HOME"
    printf '[DEFAULT]\ndefault-user = me\n\n[me]\ntoken = %s\nregion = us-ord\n' "$TOKEN" >"$XDG_CONFIG_HOME/linode-cli"
    run deploy list
    [ "$status" -eq 0 ]
    [[ "$output" == *"No AI Sandbox instances"* ]]
    requests | jq -e -s 'all(.auth == "ok")'
    assert_clean
}

@test "a refused token: exit 3 with the API's words" {
    start_fake
    export LINODE_TOKEN=wrong-token
    run deploy list
    [ "$status" -eq 3 ]
    [[ "$output" == *"refused the token"* && "$output" == *"Invalid Token"* ]]
    run --separate-stderr deploy list --json
    [ "$status" -eq 3 ]
    jq -e '.error.exit_code == 3 and (.error.message | contains("Invalid Token"))' <<<"$output"
    run --separate-stderr deploy create --bogus --json
    [ "$status" -eq 2 ] && jq -e '.error.exit_code == 2' <<<"$output"
}

@test "a token that may only read: exit 3 naming the scopes; an unknown id: a plain sentence" {
    start_fake --read-only-token "ro-$TOKEN"
    export LINODE_TOKEN="ro-$TOKEN"
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --no-wait
    echo "$output"
    [ "$status" -eq 3 ]
    [[ "$output" == *"the token may not do this (HTTP 403: Unauthorized)"* && "$output" == *"Read/Write on Linodes, Firewalls and StackScripts"* ]]
    export LINODE_TOKEN="$TOKEN"
    run deploy destroy 99999 --yes
    [ "$status" -eq 2 ] && [[ "$output" == *"no instance with id 99999"* ]]
    run deploy status 99999
    [ "$status" -eq 2 ] && [[ "$output" == *"no instance with id 99999"* ]]
}

@test "without a terminal a missing choice is a usage error naming the flag, never a wait" {
    start_fake
    run deploy create --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes
    [ "$status" -eq 2 ] && [[ "$output" == *"--region is needed"* ]]
    run deploy create --region us-ord --yes
    [ "$status" -eq 2 ] && [[ "$output" == *"--ssh-key is needed"* ]]
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub"
    [ "$status" -eq 2 ] && [[ "$output" == *"--yes"* ]]
    run deploy destroy some-label
    [ "$status" -eq 2 ] && [[ "$output" == *"--yes"* ]]
    [ "$(count_requests POST .)" -eq 0 ]
}

@test "bad flag values are refused before any API call" {
    start_fake
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --label 9starts-with-digit
    [ "$status" -eq 2 ] && [[ "$output" == *"must start with a letter"* ]]
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --label "ab--cd"
    [ "$status" -eq 2 ] && [[ "$output" == *"'--'"* ]]
    run deploy create --region us-east --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes
    [ "$status" -eq 2 ] && [[ "$output" == *"us-ord de-fra-2 jp-osa fr-par us-sea sg-sin-2"* ]]
    run deploy create --region us-ord --type g6-standard-2 --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes
    [ "$status" -eq 2 ] && [[ "$output" == *"not an RTX 4000 Ada type"* ]]
    echo "-----BEGIN OPENSSH PRIVATE KEY-----" >"$BATS_TEST_TMPDIR/id_priv"
    run deploy create --region us-ord --ssh-key "$BATS_TEST_TMPDIR/id_priv" --yes
    [ "$status" -eq 2 ] && [[ "$output" == *"not an OpenSSH public key"* ]]
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --allow-from 300.1.1.1
    [ "$status" -eq 2 ] && [[ "$output" == *"not an IPv4 address"* ]]
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --user root
    [ "$status" -eq 2 ] && [[ "$output" == *"already uses"* ]]
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --quant Q2_K
    [ "$status" -eq 2 ] && [[ "$output" == *"Q4_K_M Q5_K_M Q6_K Q8_0"* ]]
    run deploy create --bogus
    [ "$status" -eq 2 ] && [[ "$output" == *"unknown flag --bogus"* ]]
    [ "$(requests | wc -l)" -eq 0 ]
}

@test "flags only: firewall, StackScript and instance created, waited on until ready, URLs printed" {
    start_fake --sandbox downloading=1.2,loading=0.4
    echo "hf_secrettoken123" >"$BATS_TEST_TMPDIR/hf-token"
    run deploy create --region jp-osa --type g2-gpu-rtx4000a1-m --label my-box --ssh-key "$HOME/.ssh/id_ed25519.pub" \
        --user alice --hf-token-file "$BATS_TEST_TMPDIR/hf-token" --quant Q8_0 --allow-from 203.0.113.7 --docker --yes
    echo "$output"
    [ "$status" -eq 0 ]
    # The price is jp-osa's own (region_prices), not the base price.
    [[ "$output" == *"Cost           \$0.804 per hour, up to \$535.20 per month"* ]]
    [[ "$output" == *"downloading the model"*"%"* ]]
    [[ "$output" == *"loading the model"* ]]
    [[ "$output" == *"is ready"* ]]
    [[ "$output" == *"Chat in the browser   http://127.0.0.10:$SANDBOX_PORT/"* ]]
    [[ "$output" == *"OpenAI API base URL   http://127.0.0.10:$SANDBOX_PORT/v1"* ]]
    [[ "$output" == *"ssh alice@127.0.0.10 cat ~/.credentials"* ]]
    [[ "$output" != *hf_secrettoken123* ]]
    st="$(fake_state)"
    jq -e '.instances | length == 1' <<<"$st"
    inst="$(jq -c '.instances[0]' <<<"$st")"
    jq -e '.region == "jp-osa" and .type == "g2-gpu-rtx4000a1-m" and .label == "my-box" and .image == "linode/ubuntu24.04"' <<<"$inst"
    body="$(requests | jq -c 'select(.method == "POST" and .path == "/v4/linode/instances") | .body')"
    jq -e '.stackscript_data == {user_name: "alice", quantization: "Q8_0", install_docker: "Yes", hf_token_password: "hf_secrettoken123", allowed_cidr: "203.0.113.7"}' <<<"$body"
    jq -e '.authorized_keys[0] | startswith("ssh-ed25519 AAAAC3")' <<<"$body"
    jq -e '.root_pass == "<redacted>" and (.tags | index("ai-sandbox"))' <<<"$body"
    fw="$(requests | jq -c 'select(.method == "POST" and .path == "/v4/networking/firewalls") | .body')"
    jq -e '.rules.inbound_policy == "DROP" and .rules.outbound_policy == "ACCEPT"
        and .rules.inbound[0].ports == "22, 80, 443" and .rules.inbound[0].addresses == {ipv4: ["203.0.113.7/32"]}
        and .label == "my-box-fw"' <<<"$fw"
    fwid="$(jq -r '.firewalls[0].id' <<<"$st")"
    jq -e --argjson f "$fwid" '.firewall_id == $f' <<<"$body"
    jq -e '.firewalls[0].entities[0].type == "linode"' <<<"$st"
    [ "$(count_requests POST '^/v4/linode/stackscripts$')" -eq 1 ]
    jq -e '.stackscripts[0].is_public == false and (.stackscripts[0].label | startswith("ai-sandbox-0."))' <<<"$st"
    # Pagination: availability has several pages under the cap of 25, and all were read.
    [ "$(count_requests GET '^/v4/regions/availability$')" -ge 3 ]
    # A filter belongs to the list it was made for, never to a later call.
    requests | jq -e -s 'all(select(.method != "GET" or (.path | test("/[0-9]+$"))) | .x_filter == null)'
    assert_clean
}

@test "a second deployment reuses the private StackScript with the same content" {
    start_fake --sandbox downloading=0.2,loading=0.2
    run deploy create --region us-ord --label box-one --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --no-wait
    [ "$status" -eq 0 ]
    run deploy create --region us-sea --label box-two --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --no-wait
    [ "$status" -eq 0 ]
    [ "$(count_requests POST '^/v4/linode/stackscripts$')" -eq 1 ]
    fake_state | jq -e '[.instances[].stackscript_id] | unique | length == 1'
    # A changed script is a new upload, not a silent reuse of the old one.
    sed 's/^set -euo pipefail$/set -euo pipefail # changed/' "$REPO_ROOT/scripts/marketplace/ai-sandbox.sh" >"$BATS_TEST_TMPDIR/changed.sh"
    run deploy create --region us-sea --label box-three --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --no-wait \
        --stackscript-file "$BATS_TEST_TMPDIR/changed.sh"
    [ "$status" -eq 0 ]
    [ "$(count_requests POST '^/v4/linode/stackscripts$')" -eq 2 ]
    assert_clean
}

@test "a configured Marketplace StackScript id is used as is" {
    start_fake --sandbox downloading=0.2,loading=0.2
    run --separate-stderr deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --no-wait --dry-run --stackscript-id 4242 --json
    [ "$status" -eq 0 ]
    jq -e '.requests | map(select(.path == "/linode/instances"))[0].body.stackscript_id == 4242' <<<"$output"
    jq -e '.requests | map(select(.path == "/linode/stackscripts")) | length == 0' <<<"$output"
}

@test "--dry-run prints the exact request bodies with secrets masked and creates nothing" {
    start_fake
    echo "hf_dryrunsecret" >"$BATS_TEST_TMPDIR/hf-token"
    run deploy create --region de-fra-2 --ssh-key "$HOME/.ssh/id_ed25519.pub" --hf-token-file "$BATS_TEST_TMPDIR/hf-token" --dry-run
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"POST /networking/firewalls"* && "$output" == *"POST /linode/instances"* && "$output" == *"POST /linode/stackscripts"* ]]
    [[ "$output" == *'"root_pass":"<generated, not shown>"'* && "$output" == *'"hf_token_password":"<hidden>"'* ]]
    [[ "$output" == *"<contents of "*"ai-sandbox.sh: "*" bytes, sha256 "* ]]
    [[ "$output" == *'"type":"g2-gpu-rtx4000a1-s"'* && "$output" == *"Dry run: nothing was created"* ]]
    [[ "$output" != *hf_dryrunsecret* ]]
    [ "$(count_requests POST .)" -eq 0 ] && [ "$(count_requests DELETE .)" -eq 0 ]
    assert_clean
}

@test "--json: one JSON document on stdout, progress on stderr" {
    start_fake --sandbox downloading=0.4,loading=0.2
    run --separate-stderr "${DEPLOY_BASH:-bash}" "$DEPLOY" create --region fr-par --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --json </dev/null
    [ "$status" -eq 0 ]
    jq -e --arg p "$SANDBOX_PORT" '.state == "ready" and .sandbox == "ready" and .region == "fr-par"
        and .ui_url == "http://127.0.0.10:\($p)/" and .api_base_url == "http://127.0.0.10:\($p)/v1"
        and (.credentials | startswith("ssh tester@127.0.0.10")) and (.firewall_id | type) == "number"
        and (.seconds_to_ready | type) == "number"' <<<"$output"
    # shellcheck disable=SC2154 # bats sets it with --separate-stderr
    [[ "$stderr" == *"instance "* ]]
    run "${DEPLOY_BASH:-bash}" "$DEPLOY" list --json </dev/null
    jq -e 'length == 1 and .[0].region == "fr-par" and .[0].status == "running"' <<<"$output"
    assert_clean
}

@test "nothing available anywhere: exit 4 with what to do" {
    start_fake --none-available
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes
    echo "$output"
    [ "$status" -eq 4 ]
    [[ "$output" == *"no RTX 4000 Ada instance can be created"* && "$output" == *"support"* && "$output" == *"try again later"* ]]
    for r in us-ord de-fra-2 jp-osa fr-par us-sea sg-sin-2; do [[ "$output" == *"$r"* ]]; done
    [ "$(count_requests POST .)" -eq 0 ]
}

@test "an unavailable region or size by flag: exit 4 naming what is available" {
    types="g2-gpu-rtx4000a1-s g2-gpu-rtx4000a1-m g2-gpu-rtx4000a1-l g2-gpu-rtx4000a1-xl g2-gpu-rtx4000a2-s g2-gpu-rtx4000a2-m g2-gpu-rtx4000a2-hs g2-gpu-rtx4000a4-s g2-gpu-rtx4000a4-m"
    pairs="$(for t in $types; do printf 'us-ord:%s,' "$t"; done)sg-sin-2:g2-gpu-rtx4000a1-s"
    start_fake --unavailable "$pairs" --account-unavailable de-fra-2
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes
    [ "$status" -eq 4 ] && [[ "$output" == *"no capacity now"* && "$output" == *"jp-osa"* ]]
    [[ "$output" != *"Regions with capacity now: "*"de-fra-2"* ]]
    run deploy create --region de-fra-2 --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes
    [ "$status" -eq 4 ] && [[ "$output" == *"your account cannot create Linodes here"* ]]
    run deploy create --region sg-sin-2 --type g2-gpu-rtx4000a1-s --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes
    [ "$status" -eq 4 ] && [[ "$output" == *"Available there now: g2-gpu-rtx4000a1-m"* ]]
    [ "$(count_requests POST .)" -eq 0 ]
}

@test "an API error is shown verbatim; the firewall is kept, or removed with --destroy-on-failure" {
    cat >"$BATS_TEST_TMPDIR/faults.json" <<'EOF'
[{"method": "POST", "path": "^/v4/linode/instances$", "status": 400, "times": 2,
  "body": {"errors": [{"field": "region", "reason": "Region us-ord is undergoing maintenance; try another region."}]}}]
EOF
    start_fake --faults "$BATS_TEST_TMPDIR/faults.json"
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes
    echo "$output"
    [ "$status" -eq 5 ]
    [[ "$output" == *"creating the instance failed: Linode API HTTP 400: region: Region us-ord is undergoing maintenance; try another region."* ]]
    # A firewall without its instance is removed, so the same label works next time.
    [[ "$output" == *"removed Cloud Firewall"* ]]
    fake_state | jq -e '(.firewalls | length) == 0 and (.instances | length) == 0'
    run --separate-stderr deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --json
    [ "$status" -eq 5 ]
    jq -e '.error.exit_code == 5 and .error.step == "instance" and (.error.message | contains("undergoing maintenance"))' <<<"$output"
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --no-wait
    [ "$status" -eq 0 ]
    assert_clean
}

@test "429 is retried after its Retry-After, 500 with backoff" {
    cat >"$BATS_TEST_TMPDIR/faults.json" <<'EOF'
[{"method": "GET", "path": "^/v4/linode/types$", "status": 429, "headers": {"Retry-After": "2"}, "times": 1,
  "body": {"errors": [{"reason": "Too many requests"}]}},
 {"method": "POST", "path": "^/v4/networking/firewalls$", "status": 500, "times": 1,
  "body": {"errors": [{"reason": "Internal server error"}]}}]
EOF
    start_fake --faults "$BATS_TEST_TMPDIR/faults.json" --sandbox downloading=0.2,loading=0.2
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --no-wait
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"HTTP 429: Too many requests; retrying in 2 s"* ]]
    [[ "$output" == *"HTTP 500: Internal server error; retrying in 1 s"* ]]
    gap="$(requests | jq -s '[.[] | select(.path == "/v4/linode/types")] | .[1].time - .[0].time')"
    jq -e --argjson g "$gap" -n '$g >= 2'
    fake_state | jq -e '(.firewalls | length) == 1 and (.instances | length) == 1'
    assert_clean
}

@test "a sandbox that never answers: exit 6 after --timeout, with where to look" {
    start_fake --sandbox never
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --timeout 3
    [ "$status" -eq 6 ]
    [[ "$output" == *"not ready within 0:03"* && "$output" == *"deploy status"* && "$output" == *"/etc/motd"* ]]
    [[ "$output" == *"kept instance 40000 and Cloud Firewall 5000"* ]]
    assert_clean
}

@test "a sandbox that reports a failure: exit 7 with its reason and where the details are" {
    start_fake --sandbox failed
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --user bob
    echo "$output"
    [ "$status" -eq 7 ]
    [[ "$output" == *"the model download was refused (HTTP 401/403) (model_auth)"* && "$output" == *"ssh bob@127.0.0.10"* ]]
    run deploy status
    [ "$status" -eq 7 ]
}

@test "status, status --wait, list and destroy" {
    start_fake --sandbox downloading=1,loading=0.3
    run deploy create --region us-ord --label watched --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --no-wait
    [ "$status" -eq 0 ] && [[ "$output" == *"being set up"* ]]
    run deploy status watched
    [ "$status" -eq 0 ] && [[ "$output" == *"AI Sandbox watched: instance "* ]]
    run deploy status watched --wait
    [ "$status" -eq 0 ] && [[ "$output" == *"is ready"* ]]
    run deploy status
    [ "$status" -eq 0 ] && [[ "$output" == *"AI Sandbox watched is ready."* ]]
    run deploy list
    [ "$status" -eq 0 ] && [[ "$output" == *"watched"*"us-ord"*"g2-gpu-rtx4000a1-s"*"running"*"127.0.0.10"* ]]
    run deploy destroy nosuch --yes
    [ "$status" -eq 2 ] && [[ "$output" == *"no instance labelled 'nosuch'"* ]]
    run deploy destroy watched --yes
    echo "$output"
    [ "$status" -eq 0 ] && [[ "$output" == *"Destroyed watched"*"Cloud Firewall"* ]]
    fake_state | jq -e '(.instances | length) == 0 and (.firewalls | length) == 0'
    [ "$(count_requests DELETE '^/v4/networking/firewalls/[0-9]+$')" -eq 1 ]
    assert_clean
}

@test "the root password is never shown or stored unless --root-pass-file asks" {
    start_fake --sandbox downloading=0.2,loading=0.2
    run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --root-pass-file "$BATS_TEST_TMPDIR/kept-root-pass"
    [ "$status" -eq 0 ]
    [ "$(stat -c %a "$BATS_TEST_TMPDIR/kept-root-pass")" = 600 ]
    diff "$BATS_TEST_TMPDIR/kept-root-pass" "$BATS_TEST_TMPDIR/root-pass"
    run deploy create --region us-ord --label other --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --root-pass-file "$BATS_TEST_TMPDIR/kept-root-pass"
    [ "$status" -eq 2 ] && [[ "$output" == *"already exists"* ]]
    run deploy create --region us-ord --label other --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --root-pass-file "$BATS_TEST_TMPDIR/no/such/dir/pass"
    [ "$status" -eq 2 ] && [[ "$output" == *"cannot be written"* ]]
    [ "$(count_requests POST '^/v4/linode/instances$')" -eq 1 ]
    assert_clean
}

@test "the token is never on a command line while the tool runs" {
    start_fake --sandbox downloading=1.5,loading=0.5
    "${DEPLOY_BASH:-bash}" "$DEPLOY" create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes </dev/null >"$BATS_TEST_TMPDIR/out" 2>&1 &
    pid=$!
    seen=0
    while kill -0 "$pid" 2>/dev/null; do
        # Every process's arguments, as any local user can read them.
        # shellcheck disable=SC2009
        ps -eo args | grep -F -- "$TOKEN" | grep -v grep && seen=1
        sleep 0.05
    done
    wait "$pid"
    [ "$seen" -eq 0 ]
    output="$(cat "$BATS_TEST_TMPDIR/out")"
    assert_clean
}

@test "no secret on any command line: curl and jq see neither the token, the root password nor the HF token" {
    start_fake --sandbox downloading=0.3,loading=0.2
    mkdir -p "$BATS_TEST_TMPDIR/shim"
    for t in curl jq; do
        printf '#!/bin/sh\nprintf "%%s\\n" "$*" >>"%s/argv.log"\nexec %s "$@"\n' "$BATS_TEST_TMPDIR" "$(command -v "$t")" >"$BATS_TEST_TMPDIR/shim/$t"
        chmod +x "$BATS_TEST_TMPDIR/shim/$t"
    done
    echo "hf_argvsecret" >"$BATS_TEST_TMPDIR/hf-token"
    PATH="$BATS_TEST_TMPDIR/shim:$PATH" run deploy create --region us-ord --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes \
        --hf-token-file "$BATS_TEST_TMPDIR/hf-token"
    [ "$status" -eq 0 ]
    [ "$(wc -l <"$BATS_TEST_TMPDIR/argv.log")" -gt 20 ]
    run grep -F hf_argvsecret "$BATS_TEST_TMPDIR/argv.log"
    [ "$status" -eq 1 ]
    requests | jq -e -s '[.[] | select(.path == "/v4/linode/instances" and .method == "POST")][0].body.stackscript_data.hf_token_password == "hf_argvsecret"'
    assert_clean
}

@test "interactive: numbered menus, bad answers re-asked, unavailable choices refused, summary with cost" {
    start_fake --unavailable us-ord:g2-gpu-rtx4000a1-s --account-unavailable jp-osa --sandbox downloading=0.6,loading=0.2
    run "$PY" "$BATS_TEST_DIRNAME/deploy_tool_tty.py" full "$DEPLOY" "$BATS_TEST_TMPDIR/transcript"
    cat "$BATS_TEST_TMPDIR/transcript"
    [ "$status" -eq 0 ]
    st="$(fake_state)"
    jq -e '.instances[0].region == "us-ord" and .instances[0].type == "g2-gpu-rtx4000a1-m" and .instances[0].label == "ai-sandbox-us-ord"' <<<"$st"
    requests | jq -e -s '[.[] | select(.method == "POST" and .path == "/v4/linode/instances")][0].body.stackscript_data
        == {user_name: "tester", quantization: "Q5_K_M", install_docker: "No", hf_token_password: "hf_typedsecret"}'
    output="$(cat "$BATS_TEST_TMPDIR/transcript")"
    [[ "$output" != *hf_typedsecret* ]]
    assert_clean
}

@test "interactive: Ctrl-C at a prompt or 'n' at the confirmation creates nothing" {
    start_fake
    run "$PY" "$BATS_TEST_DIRNAME/deploy_tool_tty.py" ctrl-c "$DEPLOY" "$BATS_TEST_TMPDIR/transcript"
    cat "$BATS_TEST_TMPDIR/transcript"
    [ "$status" -eq 0 ]
    run "$PY" "$BATS_TEST_DIRNAME/deploy_tool_tty.py" decline "$DEPLOY" "$BATS_TEST_TMPDIR/transcript2"
    cat "$BATS_TEST_TMPDIR/transcript2"
    [ "$status" -eq 0 ]
    [ "$(count_requests POST .)" -eq 0 ]
    fake_state | jq -e '(.instances | length) == 0 and (.firewalls | length) == 0'
}

@test "interactive destroy asks first" {
    start_fake --sandbox downloading=0.2,loading=0.2
    run deploy create --region us-ord --label to-go --ssh-key "$HOME/.ssh/id_ed25519.pub" --yes --no-wait
    [ "$status" -eq 0 ]
    run "$PY" "$BATS_TEST_DIRNAME/deploy_tool_tty.py" destroy "$DEPLOY" "$BATS_TEST_TMPDIR/transcript"
    cat "$BATS_TEST_TMPDIR/transcript"
    [ "$status" -eq 0 ]
    fake_state | jq -e '(.instances | length) == 0 and (.firewalls | length) == 0'
}
