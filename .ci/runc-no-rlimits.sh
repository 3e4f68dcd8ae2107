#!/usr/bin/env bash
# An OCI runtime for podman and buildah (--runtime) on machines where the
# container runtime may not set resource limits: without CAP_SYS_RESOURCE,
# runc fails every container with "error setting rlimits ... operation not
# permitted". It removes process.rlimits from the bundle's config.json, so
# containers inherit the caller's limits, then runs runc (crun refuses hybrid
# cgroups, which such machines also have). Not for CI: GitHub's runners set
# rlimits fine.
#
# Usage: podman --runtime "$PWD/.ci/runc-no-rlimits.sh" run ...
#        buildah build --runtime "$PWD/.ci/runc-no-rlimits.sh" ...
set -euo pipefail
runc=${FRAMEFLEET_RUNC:-runc}
args=("$@")
bundle=""
command=""
for ((i = 0; i < ${#args[@]}; i++)); do
	case ${args[i]} in
	--bundle | -b) bundle=${args[i + 1]:-} ;;
	--bundle=*) bundle=${args[i]#--bundle=} ;;
	create | run) [ -n "$command" ] || command=${args[i]} ;;
	esac
done
if [ -n "$command" ]; then
	config=${bundle:-.}/config.json
	if [ -f "$config" ] && jq -e '.process.rlimits' "$config" >/dev/null 2>&1; then
		jq 'del(.process.rlimits)' "$config" >"$config.norlimits"
		mv "$config.norlimits" "$config"
	fi
fi
exec "$runc" "$@"
