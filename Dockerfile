# syntax=docker/dockerfile:1
#
# The GitHub Action's image (action.yml runs it prebuilt; see .github/workflows/action-image.yml). It is
# the worker image's `tools` stage (container/Dockerfile: the framefleet binary, Blender and FFmpeg, built
# once and shared, never copied here) plus git and git-lfs, so `engine: local` renders on the runner and
# blends stored in Git LFS can be fetched one by one. Build from the repository root with
#
#   docker buildx bake action                  # docker-bake.json passes the `tools` stage as context "tools"
#   docker buildx bake action --set '*.args.BLENDER_SOURCE=official' ...   # the worker's build args apply
#
# A plain `docker build .` has no stage named tools: give one with --build-context tools=docker-image://<a
# tools image>, or use bake as above.
#
# GitHub's rules for Docker actions: no USER (the action runs as root to write GITHUB_WORKSPACE) and no
# WORKDIR of our own (the runner mounts the workspace at /github/workspace and makes it the working
# directory).

# hadolint ignore=DL3006
FROM tools AS action
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The workspace is mounted from the runner and owned by another uid: without safe.directory git refuses it
# ("dubious ownership").
RUN apt-get update \
    && apt-get install -y --no-install-recommends git git-lfs \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*' \
    && git lfs version >/dev/null
ARG VERSION=dev
LABEL org.opencontainers.image.title=framefleet-action \
      org.opencontainers.image.description="framefleet GitHub Action: renders the .blend files a push or pull request changes" \
      org.opencontainers.image.source=https://github.com/framefleet/framefleet \
      org.opencontainers.image.version=${VERSION}
ENTRYPOINT ["/usr/local/bin/framefleet", "action"]
