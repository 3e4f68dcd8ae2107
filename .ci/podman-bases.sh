#!/usr/bin/env bash
# Makes the two base images container/Dockerfile starts from, for podman on a
# machine with no container registry (only a Debian mirror and this machine's
# Go): debian:bookworm-slim from `debootstrap --variant=minbase bookworm`, and
# golang:<go.mod's Go minor>-bookworm from it plus this machine's Go
# installation. Images already present are kept. See README.md, "Building the
# images with podman".
#
# Usage: .ci/podman-bases.sh [WORKDIR]   (root; WORKDIR default /tmp/framefleet-bases)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-/tmp/framefleet-bases}
podman=(podman)
[ -z "${FRAMEFLEET_OCI_RUNTIME:-}" ] || podman+=(--runtime "$(realpath "$FRAMEFLEET_OCI_RUNTIME")")
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
go_minor=$(sed -n 's/^go \([0-9]*\.[0-9]*\).*/\1/p' "$here/../go.mod")
debian=docker.io/library/debian:bookworm-slim
golang=docker.io/library/golang:$go_minor-bookworm
mkdir -p "$work"

if ! podman image exists "$debian"; then
	command -v debootstrap >/dev/null || { echo "podman-bases: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
	rm -rf "$work/rootfs"
	debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror"
	rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
	tar -C "$work/rootfs" -c . | podman import --change 'CMD ["bash"]' - "$debian"
	rm -rf "$work/rootfs"
fi

if ! podman image exists "$golang"; then
	goroot=$(go env GOROOT)
	have=$(go env GOVERSION)
	case $have in
	go"$go_minor" | go"$go_minor".*) ;;
	*) echo "podman-bases: go.mod wants Go $go_minor, this machine's Go is $have: install Go $go_minor" >&2; exit 1 ;;
	esac
	rm -rf "$work/go"
	mkdir -p "$work/go"
	cp -a "$goroot" "$work/go/go"
	# This machine's own CAs (e.g. of a TLS-intercepting proxy) go into the Go base, so the build stage
	# reaches the Go module proxy as this machine does; the images built on it do not carry them.
	mkdir -p "$work/go/local-ca"
	cp /usr/local/share/ca-certificates/*.crt "$work/go/local-ca/" 2>/dev/null || true
	cat >"$work/go/Containerfile" <<CONTAINERFILE
FROM $debian
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates git && rm -rf /var/lib/apt/lists/*
COPY local-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY go /usr/local/go
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GOTOOLCHAIN=local
WORKDIR /go
CONTAINERFILE
	"${podman[@]}" build --format docker -t "$golang" "$work/go"
	rm -rf "$work/go"
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.ID}}' | grep -E "^($debian|$golang) "
