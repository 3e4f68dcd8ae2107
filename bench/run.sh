#!/usr/bin/env bash
# Runs every whole-command benchmark bench/*.sh (except this file), keeps
# going when one fails, and fails at the end if any did. `make bench` calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=()
for script in bench/*.sh; do
	case $script in bench/run.sh | bench/lib.sh) continue ;; esac
	echo "=== $script"
	if ! bash "$script"; then
		failed+=("$script")
	fi
done
if [ "${#failed[@]}" -gt 0 ]; then
	echo "bench/run.sh: failed: ${failed[*]}" >&2
	exit 1
fi
