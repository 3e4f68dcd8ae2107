#!/usr/bin/env bash
# Whole-process benchmark of dependency tracing (figures go to
# docs/BENCHMARKS.md, section "Dependency tracing"): `framefleet inspect
# --deps --json` on a scene with 1,000 image references and three levels of
# linked libraries, against the time Blender takes just to open the same
# scene (`blender -b -Y scene.blend`, which loads the scene and its three
# libraries and quits). The project is made by Blender first
# (pipeline/blend/testdata/make_trace_bench.py) in a temporary folder.
# The in-process figure (time and allocations) is BenchmarkTrace in
# pipeline/blend, run by `make bench` with the other Go benchmarks.
# Usage: bash bench/trace.sh   (BENCH_OUT=dir for the result files, default bin/bench)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${BENCH_OUT:-bin/bench}
bin=bin/framefleet

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
need hyperfine hyperfine
need blender blender

mkdir -p "$out"
go build -o "$bin" ./cmd/framefleet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== making the project with Blender"
blender -b -Y --factory-startup --python-exit-code 1 \
	--python pipeline/blend/testdata/make_trace_bench.py -- "$tmp" >"$tmp/make.log" 2>&1 || {
	cat "$tmp/make.log" >&2
	exit 1
}
scene=$tmp/scene.blend
printf 'scene.blend %s bytes; libraries: %s\n' "$(stat -c %s "$scene")" \
	"$(find "$tmp/lib" -name '*.blend' -printf '%P (%s bytes) ' | sort)"

echo "== same answer from both"
ours=$("$bin" inspect --deps --json "$scene" | python3 -c '
import collections, json, sys
d = json.load(sys.stdin)
c = collections.Counter(x["kind"] for x in d["dependencies"] if x["exists"])
print(c["image"], c["library"], len(d["dependencies"]) - sum(c.values()))')
theirs=$(blender -b -Y "$scene" --python-expr 'import bpy; print("FRAMEFLEET", len([i for i in bpy.data.images if i.source == "FILE"]), len(bpy.data.libraries), 0)' 2>/dev/null |
	sed -n 's/^FRAMEFLEET //p')
echo "framefleet: images libraries missing = $ours"
echo "blender:    images libraries missing = $theirs"
if [ "$ours" != "1000 3 0" ] || [ "$ours" != "$theirs" ]; then
	echo "bench/trace.sh: framefleet and Blender disagree on the project" >&2
	exit 1
fi

echo "== time: framefleet inspect --deps vs Blender opening the scene"
hyperfine --shell=none --warmup 3 --min-runs 10 \
	--export-markdown "$out/trace-vs-blender.md" --export-json "$out/trace-vs-blender.json" \
	-n "framefleet inspect --deps --json" "$(printf '%q ' "$bin" inspect --deps --json "$scene")" \
	-n "blender -b -Y scene.blend" "$(printf '%q ' blender -b -Y "$scene")"
python3 - "$out/trace-vs-blender.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ff, bl = r[0]["median"], r[1]["median"]
print("median: framefleet %.1f ms, blender %.0f ms: framefleet takes 1/%.0f of Blender's time (goal: under 1/20)"
      % (ff * 1e3, bl * 1e3, bl / ff))
PY
