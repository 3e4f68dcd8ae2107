#!/usr/bin/env bash
# make image-test: builds both images (the worker, container/Dockerfile, and the action, the root
# Dockerfile) and runs them as AWS Batch and GitHub would, against the project's test servers
# (cmd/framefleet/image_test.go, build tag imagetest):
#   - the worker image runs every Batch attempt of `framefleet render --engine batch` on
#     examples/demo.blend (the Batch test server's container executor, the S3 test server), and the
#     video it stitched is checked with ffprobe;
#   - the action image renders a push (engine local) and reports to the GitHub fake.
# Docker (docker buildx bake, docker-bake.json) when a daemon answers, podman otherwise; see
# README.md, "Building the images with podman", for a machine with no registry.
#
# Usage: .ci/image-test.sh [build|run|all]   (default all)
# Environment:
#   IMAGE_TAG              tag of both images (default test): framefleet:TAG, framefleet-action:TAG
#   CONTAINER_RUNTIME      docker or podman (default: docker when `docker info` answers, else podman)
#   FRAMEFLEET_OCI_RUNTIME podman only: the OCI runtime to use (e.g. .ci/runc-no-rlimits.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
tag=${IMAGE_TAG:-test}

runtime=${CONTAINER_RUNTIME:-}
if [ -z "$runtime" ]; then
	if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
		runtime=docker
	elif command -v podman >/dev/null; then
		runtime=podman
	else
		echo "image-test: neither a Docker daemon nor podman: start Docker or install podman (apt-get install podman buildah)" >&2
		exit 1
	fi
fi
cli=("$runtime")
case $runtime in
docker)
	worker=framefleet:$tag
	action=framefleet-action:$tag
	;;
podman)
	worker=localhost/framefleet:$tag
	action=localhost/framefleet-action:$tag
	[ -z "${FRAMEFLEET_OCI_RUNTIME:-}" ] || cli+=(--runtime "$(realpath "$FRAMEFLEET_OCI_RUNTIME")")
	;;
*)
	echo "image-test: CONTAINER_RUNTIME is $runtime: set docker or podman" >&2
	exit 1
	;;
esac

build_docker() {
	# docker-bake.json tags framefleet:${VERSION} and framefleet-action:${VERSION}, and passes the
	# worker's tools stage to the action.
	VERSION=$tag docker buildx bake worker action --load
}

build_podman() {
	local common=(--format docker --build-arg "VERSION=$tag" -f container/Dockerfile)
	# buildah cannot resolve `FROM blender-${BLENDER_SOURCE}` to the stage of that name: build the
	# stage first, under its own name, which the tools stage then finds as an image.
	"${cli[@]}" build "${common[@]}" --build-arg BLENDER_SOURCE=debian --target blender-debian -t localhost/blender-debian .
	"${cli[@]}" build "${common[@]}" --target tools -t "localhost/framefleet-tools:$tag" .
	"${cli[@]}" build "${common[@]}" --target runtime -t "$worker" .
	# The action image's `tools` is the worker's stage (docker-bake.json's contexts.tools).
	"${cli[@]}" build --format docker --build-arg "VERSION=$tag" -f Dockerfile \
		--build-context "tools=container-image://localhost/framefleet-tools:$tag" -t "$action" .
}

run_tests() {
	command -v ffprobe >/dev/null || { echo "image-test: ffprobe is missing: make deps (apt-get install ffmpeg)" >&2; exit 1; }
	FRAMEFLEET_TEST_CONTAINER_RUNTIME="${cli[*]}" \
		FRAMEFLEET_TEST_WORKER_IMAGE=$worker \
		FRAMEFLEET_TEST_ACTION_IMAGE=$action \
		go test -tags imagetest -count=1 -timeout 40m -run '^TestImage' -v ./cmd/framefleet
}

case $what in
build | all)
	echo "image-test: building $worker and $action with $runtime"
	"build_$runtime"
	;;&
run | all)
	run_tests
	;;
build) ;;
*)
	echo "usage: .ci/image-test.sh [build|run|all]" >&2
	exit 1
	;;
esac
