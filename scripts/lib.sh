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
