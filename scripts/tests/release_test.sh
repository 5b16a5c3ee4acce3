#!/usr/bin/env bash
# The release path end to end on a machine without a GPU: scripts/release builds the CPU
# tarball (incrementally, in the target-dyn cache), scripts/install installs it from a
# local HTTP server into a temporary prefix, and the installed server answers a real
# chat completion with an empty environment (so the RUNPATH, not LD_LIBRARY_PATH, finds
# llama.cpp). Then the refusals: a tampered tarball, one missing from SHA256SUMS, and a
# CUDA tarball whose runtime is absent (a fake nvidia-smi makes "auto" pick it).
source "$(dirname "$0")/../lib.sh"

work="$(mktemp -d)"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

fail() { printf '\033[31mFAIL: %s\033[0m\n' "$*" >&2; exit 1; }
pass() { printf 'ok: %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

[[ -s "$FIXTURES/smollm2-135m-instruct.gguf" ]] || "$REPO_ROOT/scripts/fixtures/setup"
use_rust

# --- build ----------------------------------------------------------------------------
dist="$work/dist"
t0=$SECONDS
"$REPO_ROOT/scripts/release" --target linux-x86_64-cpu --out "$dist"
version="$(cargo metadata --no-deps --format-version 1 --manifest-path "$REPO_ROOT/Cargo.toml" | python3 -c '
import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "sandbox-api"))')"
name="ai-sandbox-$version-linux-x86_64-cpu"
tarball="$dist/$name.tar.gz"
[[ -s "$tarball" ]] || fail "scripts/release made no $tarball"
pass "scripts/release built $name.tar.gz ($(du -h "$tarball" | cut -f1)) in $((SECONDS - t0)) s"

if [[ -z "${CUDA_HOME:-}" ]] && ! command -v nvcc >/dev/null && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
    if out="$("$REPO_ROOT/scripts/release" --target linux-x86_64-cuda12 --out "$dist" 2>&1)"; then
        fail "scripts/release --target linux-x86_64-cuda12 succeeded without nvcc"
    fi
    [[ "$out" == *"needs nvcc"* ]] || fail "no clear message for cuda12 without nvcc: $out"
    pass "cuda12 without nvcc is refused: ${out%%$'\n'*}"
fi

# The CUDA build compiles llama.cpp with our patches: they must apply to the source
# that llama-cpp-sys-2 ships (a crate update can break them before anyone builds CUDA).
read -r sys_dir _ < <(llama_sys_crate)
mkdir -p "$work/cuda-src/ggml/src"
cp -r "$sys_dir/llama.cpp/ggml/src/ggml-cuda" "$work/cuda-src/ggml/src/"
llama_cuda_patch "$work/cuda-src" || fail "llama-sys/patches do not apply to $sys_dir/llama.cpp"
grep -q 'AI Sandbox patch' "$work/cuda-src/ggml/src/ggml-cuda/ggml-cuda.cu" || fail "the CUDA graph key patch left no trace"
if llama_cuda_patch "$work/cuda-src" 2>/dev/null; then fail "a patch applied twice went unnoticed"; fi
pass "llama-sys/patches apply to llama-cpp-sys-2's llama.cpp, and only once"

# --- layout and checksums -------------------------------------------------------------
tar -tzf "$tarball" | sort >"$work/list"
want=(
    "$name/" "$name/LICENSES/" "$name/LICENSES/ai-sandbox-Apache-2.0.txt" "$name/LICENSES/llama.cpp-MIT.txt"
    "$name/README.txt" "$name/VERSION" "$name/bin/" "$name/bin/sandbox-api" "$name/bin/sandbox-ui" "$name/lib/"
    "$name/lib/libggml-base.so.0" "$name/lib/libggml-cpu.so.0" "$name/lib/libggml.so.0"
    "$name/lib/libllama-common.so.0" "$name/lib/libllama.so.0"
)
printf '%s\n' "${want[@]}" | sort | diff -u - "$work/list" || fail "tarball layout differs from the expected one (above)"
mkdir "$work/unpacked"
tar -C "$work/unpacked" -xzf "$tarball"
u="$work/unpacked/$name"
grep -qx "version=$version" "$u/VERSION" && grep -qx "target=linux-x86_64-cpu" "$u/VERSION" &&
    grep -q '^glibc=2\.' "$u/VERSION" || fail "VERSION file: $(cat "$u/VERSION")"
grep -q 'Apache License' "$u/LICENSES/ai-sandbox-Apache-2.0.txt" && grep -q 'MIT License' "$u/LICENSES/llama.cpp-MIT.txt" ||
    fail "LICENSES/ does not hold the Apache-2.0 and MIT texts"
grep -q "AI Sandbox $version" "$u/README.txt" || fail "README.txt does not name the version"
for f in "$u"/bin/*; do
    # shellcheck disable=SC2016 # a literal $ORIGIN
    [[ "$(patchelf --print-rpath "$f")" == '$ORIGIN/../lib' ]] || fail "$f has RUNPATH '$(patchelf --print-rpath "$f")'"
done
kit="ai-sandbox-$version-deploy"
[[ "$(sed 's/  .*//' "$dist/SHA256SUMS" | wc -l)" == 2 ]] && grep -q "  $name.tar.gz\$" "$dist/SHA256SUMS" &&
    grep -q "  $kit.tar.gz\$" "$dist/SHA256SUMS" ||
    fail "SHA256SUMS does not list exactly the tarball and the deploy kit: $(cat "$dist/SHA256SUMS")"
# Listed to a file first: `tar | grep -q` under pipefail fails at random when grep quits early (SIGPIPE).
tar -tzf "$dist/$kit.tar.gz" >"$work/kit-list"
grep -qx "$kit/provision" "$work/kit-list" && grep -qx "$kit/systemd/ai-sandbox-api.service" "$work/kit-list" &&
    grep -qx "$kit/deploy" "$work/kit-list" && grep -qx "$kit/marketplace/ai-sandbox.sh" "$work/kit-list" ||
    fail "the deploy kit lacks its provisioner or units: $(tr '\n' ' ' <"$work/kit-list")"
(cd "$dist" && sha256sum -c --quiet SHA256SUMS) || fail "sha256sum -c SHA256SUMS"
pass "layout, VERSION ($(tr '\n' ' ' <"$u/VERSION")), LICENSES, RUNPATH and SHA256SUMS"

# --- install from a local server ------------------------------------------------------
www="$work/www"
mkdir -p "$www/good" "$www/bad" "$www/unlisted" "$www/cuda"
cp "$tarball" "$dist/SHA256SUMS" "$www/good/"
port="$(free_port)"
python3 -m http.server --bind 127.0.0.1 --directory "$www" "$port" >"$work/http.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port/good/SHA256SUMS" 2>/dev/null && break; sleep 0.1; done
prefix="$work/opt"
t0=$SECONDS
AI_SANDBOX_RELEASE_URL="http://127.0.0.1:$port/good" "$REPO_ROOT/scripts/install" --version "v$version" --prefix "$prefix"
[[ "$(readlink "$prefix/current")" == "$version" ]] || fail "$prefix/current does not point at $version"
pass "scripts/install (target auto -> cpu, URL from AI_SANDBOX_RELEASE_URL) in $((SECONDS - t0)) s"

help="$(env -i "$prefix/current/bin/sandbox-api" --help)" || fail "installed sandbox-api --help with an empty environment"
[[ "$help" == *--listen* ]] || fail "sandbox-api --help does not list --listen"
env -i "$prefix/current/bin/sandbox-ui" --help >/dev/null || fail "installed sandbox-ui --help with an empty environment"
pass "installed binaries run with an empty environment (no LD_LIBRARY_PATH)"

# --- the installed server answers -----------------------------------------------------
api_port="$(free_port)"
t0=$EPOCHREALTIME
env -i "$prefix/current/bin/sandbox-api" --model "$FIXTURES/smollm2-135m-instruct.gguf" \
    --listen "127.0.0.1:$api_port" --api-key release-test-key --ctx 2048 >"$work/api.log" 2>&1 &
api_pid=$!
pids+=("$api_pid")
ready=""
for _ in $(seq 600); do
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api_port/ready")" == 200 ]]; then ready=1; break; fi
    kill -0 "$api_pid" 2>/dev/null || break
    sleep 0.1
done
[[ -n "$ready" ]] || fail "installed sandbox-api never became ready: $(tail -5 "$work/api.log")"
ready_s="$(python3 -c "print(f'{$EPOCHREALTIME - $t0:.1f}')")"
reply="$(curl -fsS "http://127.0.0.1:$api_port/v1/chat/completions" -H 'Authorization: Bearer release-test-key' \
    -H 'Content-Type: application/json' \
    -d '{"model": "any", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "temperature": 0}')" ||
    fail "chat completion request failed: $(tail -5 "$work/api.log")"
content="$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print(r["choices"][0]["message"]["content"], r["usage"]["completion_tokens"])' "$reply")" ||
    fail "unexpected chat completion: $reply"
kill -TERM "$api_pid"
wait "$api_pid" || fail "sandbox-api did not exit 0 on SIGTERM"
pass "installed sandbox-api ready in ${ready_s} s and answered: \"${content% *}\" (${content##* } tokens)"

# --- rerun is idempotent --------------------------------------------------------------
before="$(stat -c %i "$prefix/$version/bin/sandbox-api")"
out="$("$REPO_ROOT/scripts/install" --version "$version" --target cpu --prefix "$prefix" --base-url "http://127.0.0.1:$port/good" 2>&1)" ||
    fail "rerun failed: $out"
[[ "$out" == *"already holds"* && "$(stat -c %i "$prefix/$version/bin/sandbox-api")" == "$before" ]] ||
    fail "rerun did not keep the intact install: $out"
pass "rerun keeps the intact install and only checks it"

# --- refusals leave the install untouched ---------------------------------------------
snapshot() { (cd "$prefix" && find . -mindepth 1 -path ./.install.lock -prune -o -print0 | sort -z | xargs -0 ls -ld --time-style=+%s.%N | md5sum); }
state="$(snapshot)"
# A later release, v = version+1 patch, made from the real tarball.
next="${version%.*}.$((${version##*.} + 1))"
repack() { # TARGET_SUFFIX DEST_DIR [EXTRA VERSION LINES...]: the cpu tarball renamed to version $next
    local suffix="$1" dest="$2" n="ai-sandbox-$next-linux-x86_64-$1"
    shift 2
    rm -rf "$work/repack" && mkdir "$work/repack"
    cp -a "$u" "$work/repack/$n"
    sed -i "s/^version=.*/version=$next/; s/^target=.*/target=linux-x86_64-$suffix/" "$work/repack/$n/VERSION"
    (($#)) && printf '%s\n' "$@" >>"$work/repack/$n/VERSION"
    if [[ "$suffix" == cuda12 ]]; then
        # What the real CUDA build adds: libggml needs the CUDA runtime from the system.
        patchelf --add-needed libcudart.so.12 "$work/repack/$n/lib/libggml.so.0"
    fi
    tar -C "$work/repack" -czf "$dest/$n.tar.gz" "$n"
    (cd "$dest" && sha256sum "$n.tar.gz" >>SHA256SUMS)
}

repack cpu "$www/bad"
printf 'x' >>"$www/bad/ai-sandbox-$next-linux-x86_64-cpu.tar.gz"
if out="$("$REPO_ROOT/scripts/install" --version "$next" --target cpu --prefix "$prefix" --base-url "http://127.0.0.1:$port/bad" 2>&1)"; then
    fail "a tampered tarball was installed"
fi
want_hash="$(awk '{print $1}' "$www/bad/SHA256SUMS")"
got_hash="$(sha256sum "$www/bad/ai-sandbox-$next-linux-x86_64-cpu.tar.gz" | cut -d' ' -f1)"
[[ "$out" == *"sha256 mismatch"*"$want_hash"*"$got_hash"* ]] || fail "no clear message for a tampered tarball: $out"
[[ "$(snapshot)" == "$state" ]] || fail "a refused install changed $prefix"
pass "tampered tarball refused, install untouched: ${out##*install: }"

repack cpu "$www/unlisted"
: >"$www/unlisted/SHA256SUMS"
if out="$("$REPO_ROOT/scripts/install" --version "$next" --target cpu --prefix "$prefix" --base-url "http://127.0.0.1:$port/unlisted" 2>&1)"; then
    fail "a tarball missing from SHA256SUMS was installed"
fi
[[ "$out" == *"not listed"* && "$(snapshot)" == "$state" ]] || fail "tarball missing from SHA256SUMS: $out"
pass "tarball missing from SHA256SUMS refused, install untouched"

fake="$work/fake-gpu"
mkdir "$fake"
cat >"$fake/nvidia-smi" <<'EOF'
#!/bin/sh
# Just enough of nvidia-smi for scripts/install's GPU detection.
case "$*" in
    -L) echo "GPU 0: NVIDIA RTX 4000 Ada Generation (UUID: GPU-00000000-0000-0000-0000-000000000000)" ;;
    *compute_cap*) echo "${FAKE_CC:-8.9}" ;;
    *) exit 1 ;;
esac
EOF
chmod +x "$fake/nvidia-smi"
repack cuda12 "$www/cuda" "cuda=12.4" "cuda_archs=89;90"
repack cpu "$www/cuda"
if out="$(PATH="$fake:$PATH" "$REPO_ROOT/scripts/install" --version "$next" --prefix "$prefix" --no-apt --base-url "http://127.0.0.1:$port/cuda" 2>&1)"; then
    fail "a CUDA tarball was installed without the CUDA runtime"
fi
[[ "$out" == *"target auto: cuda12"* && "$out" == *"missing libcudart.so.12"*"cuda-cudart-12-4"* && "$(snapshot)" == "$state" ]] ||
    fail "CUDA runtime missing: $out"
pass "auto picks cuda12 when nvidia-smi sees a GPU; without the CUDA runtime it stops: ${out##*install: }"

PATH="$fake:$PATH" FAKE_CC=7.5 "$REPO_ROOT/scripts/install" --version "$next" --prefix "$prefix" --no-apt \
    --base-url "http://127.0.0.1:$port/cuda" 2>&1 | tee "$work/fallback.log" >&2
grep -q 'falling back to the CPU build' "$work/fallback.log" && [[ "$(readlink "$prefix/current")" == "$next" ]] &&
    grep -qx "target=linux-x86_64-cpu" "$prefix/current/VERSION" || fail "a GPU older than the build did not fall back to cpu"
[[ -d "$prefix/$version" && -z "$(find "$prefix" -maxdepth 1 -name '.install.*' ! -name .install.lock)" ]] ||
    fail "the upgrade removed $version or left temporary files"
env -i "$prefix/current/bin/sandbox-api" --version >/dev/null || fail "upgraded sandbox-api does not run"
pass "GPU below the build's compute capability: auto falls back to cpu; upgrade to $next switched current, kept $version"
echo "release test passed" >&2
