#!/usr/bin/env bash
# Whole-command benchmark of `framefleet render` (figures go to
# docs/BENCHMARKS.md, section "framefleet render"):
#  1. makespan: framefleet render (local engine, frames -> chunks -> video)
#     vs one plain `blender -b -Y FILE ... -a` over the same frames at the same
#     resolution and samples (frames only, no video), with hyperfine;
#  2. time to a cached result: the same render again, answered from the store.
# Usage: bash bench/render.sh
#   SCENE=path/to.blend  FRAMES=1-12  PCT=10  SAMPLES=4  RUNS=3
#   BENCH_OUT=dir for the result files (default bin/bench, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."

scene=${SCENE:-../shared/scenes/pottery.blend}
frames=${FRAMES:-1-12}
pct=${PCT:-10}
samples=${SAMPLES:-4}
runs=${RUNS:-3}
out=${BENCH_OUT:-bin/bench}
bin=bin/framefleet

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
need hyperfine hyperfine
need blender blender
need ffmpeg ffmpeg

if [ ! -f "$scene" ]; then
	echo "bench/render.sh: $scene not found: set SCENE=path/to/file.blend" >&2
	exit 1
fi
case "$frames" in
*[!0-9-]* | -* | *- | *-*-*)
	echo "bench/render.sh: FRAMES=$frames: give a plain range such as 1-12" >&2
	exit 1
	;;
esac
first=${frames%-*}
last=${frames#*-}

mkdir -p "$out"
go build -o "$bin" ./cmd/framefleet
store="$out/render-store"
frames_dir="$out/render-blender-frames"
rm -rf "$store" "$frames_dir"

# The same preview overrides the worker applies, for plain Blender.
pyexpr="import bpy; s = bpy.context.scene; s.render.resolution_percentage = $pct; s.cycles.samples = $samples"

echo "== makespan: framefleet render vs one blender -a ($scene, frames $frames, $pct%, $samples samples, $(nproc) cores)"
hyperfine --shell=none --runs "$runs" \
	--export-markdown "$out/render-makespan.md" --export-json "$out/render-makespan.json" \
	-n "blender -a" \
	"blender -b -Y $scene --python-expr '$pyexpr' -o $frames_dir/frame_#### -F PNG -x 1 -s $first -e $last -a" \
	-n "framefleet render --workers 1" \
	"$bin render $scene --out $store --frames $frames --resolution $pct --samples $samples --workers 1 --force" \
	-n "framefleet render --workers 2" \
	"$bin render $scene --out $store --frames $frames --resolution $pct --samples $samples --workers 2 --force"

echo "== time to a cached result (same inputs again)"
hyperfine --shell=none --warmup 1 --runs 10 \
	--export-markdown "$out/render-cached.md" \
	-n "framefleet render (cached)" \
	"$bin render $scene --out $store --frames $frames --resolution $pct --samples $samples"

echo "== results: $out/render-makespan.md, $out/render-cached.md"
cat "$out/render-makespan.md" "$out/render-cached.md"
