#!/usr/bin/env bash
# Runs shellcheck over every shell script of the repository (by shebang, .sh or .bats), with the
# settings in .shellcheckrc; installs shellcheck when missing.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"

command -v shellcheck >/dev/null || apt_install shellcheck
cd "$REPO_ROOT"
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- scripts .ci | while read -r f; do
    [[ -f "$f" ]] || continue
    if [[ "$f" == *.sh || "$f" == *.bats ]] || head -1 "$f" | grep -qE '^#!.*\b(ba)?sh\b'; then echo "$f"; fi
done)
log "shellcheck $(shellcheck --version | sed -n 's/^version: //p') over ${#files[@]} scripts"
shellcheck -x "${files[@]}"
