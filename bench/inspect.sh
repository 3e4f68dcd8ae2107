#!/usr/bin/env bash
# Whole-process benchmark of `framefleet inspect` (figures go to
# docs/BENCHMARKS.md, section "framefleet inspect"):
#  1. time: framefleet inspect --json vs asking Blender for the same fields
#     (blender -b -Y FILE --python-expr ...), with hyperfine;
#  2. memory and bytes read: peak RSS, wall time and pread64 bytes of
#     framefleet inspect on two sparse 1 GiB uncompressed .blend files made by
#     bench/mkbigblend: one huge DATA block (-mode insert, the best case) and
#     the scene's own blocks with their DATA payloads scaled up (-mode scale,
#     the realistic case), with /usr/bin/time -v and strace.
# Usage: bash bench/inspect.sh   (SCENE=path/to.blend to use another file;
# BENCH_OUT=dir for the result files, default bin/bench, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."

scene=${SCENE:-../shared/scenes/pottery.blend}
out=${BENCH_OUT:-bin/bench}
bin=bin/framefleet

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
need hyperfine hyperfine
need blender blender
if [ ! -x /usr/bin/time ]; then need /usr/bin/time time; fi

if [ ! -f "$scene" ]; then
	echo "bench/inspect.sh: $scene not found: set SCENE=path/to/file.blend" >&2
	exit 1
fi
mkdir -p "$out"
go build -o "$bin" ./cmd/framefleet

# Blender's own answer, with the JSON names framefleet uses.
read -r -d '' pyexpr <<'EOF' || true
import bpy, json
s = bpy.context.scene
r = s.render
print("FRAMEFLEET-JSON " + json.dumps(dict(
    scene=s.name, scenes=[x.name for x in bpy.data.scenes],
    frame_start=s.frame_start, frame_end=s.frame_end, frame_step=s.frame_step,
    fps=r.fps, fps_base=r.fps_base, resolution_x=r.resolution_x, resolution_y=r.resolution_y,
    resolution_percentage=r.resolution_percentage, engine=r.engine,
    file_format=r.image_settings.file_format)))
EOF

echo "== same answer from both (fields Blender reports)"
ours=$("$bin" inspect --json "$scene")
theirs=$(blender -b -Y "$scene" --python-expr "$pyexpr" 2>/dev/null | sed -n 's/^FRAMEFLEET-JSON //p')
echo "framefleet: $ours"
echo "blender:    $theirs"
python3 - "$ours" "$theirs" <<'EOF'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
diff = {k: (ours.get(k), v) for k, v in theirs.items()
        if (abs(ours.get(k, 0) - v) > 1e-6 if isinstance(v, float) else ours.get(k) != v)}
if diff:
    sys.exit("bench/inspect.sh: framefleet and Blender disagree (framefleet, blender): %s" % diff)
print("agree on", len(theirs), "fields")
EOF

echo "== time: framefleet inspect vs Blender"
# --shell=none: no shell start-up in either figure; commands are quoted for hyperfine's own word splitting.
hyperfine --shell=none --warmup 3 --min-runs 10 \
	--export-markdown "$out/inspect-vs-blender.md" --export-json "$out/inspect-vs-blender.json" \
	-n "framefleet inspect --json" "$(printf '%q ' "$bin" inspect --json "$scene")" \
	-n "blender -b -Y --python-expr" "$(printf '%q ' blender -b -Y "$scene" --python-expr "$pyexpr")"
python3 - "$out/inspect-vs-blender.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
# Medians: the machine is shared, and a few slow outliers swing the means.
ff, bl = r[0]["median"], r[1]["median"]
print("median: framefleet %.1f ms, blender %.0f ms: %.0fx faster (goal: at least 100x)" % (ff * 1e3, bl * 1e3, bl / ff))
EOF

echo "== memory and bytes read: framefleet inspect on sparse 1 GiB .blend files"
need strace strace
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go run ./bench/mkbigblend -mode insert -in "$scene" -out "$tmp/big.blend" -size $((1 << 30))
go run ./bench/mkbigblend -mode scale -in "$scene" -out "$tmp/scaled.blend" -size $((1 << 30))
for f in "$tmp/big.blend" "$tmp/scaled.blend"; do
	printf '%s: file size %s bytes, on disk %s\n' "$(basename "$f")" "$(stat -c %s "$f")" "$(du -h "$f" | cut -f1)"
done
for f in "$scene" "$tmp/big.blend" "$tmp/scaled.blend"; do
	/usr/bin/time -v "$bin" inspect --json "$f" >"$tmp/out.json" 2>"$tmp/time.txt"
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/time.txt")
	strace -f -e trace=pread64 -o "$tmp/trace.txt" "$bin" inspect --json "$f" >/dev/null
	preads=$(grep -c 'pread64(' "$tmp/trace.txt" || true)
	bytes=$(sed -n 's/^.*pread64(.*= \([0-9]*\)$/\1/p' "$tmp/trace.txt" | awk '{s += $1} END {print s + 0}')
	printf '%-16s %13d bytes  peak RSS %6d KiB  %5d pread64 reading %9d bytes (%.3f%%)  frames %s\n' \
		"$(basename "$f")" "$(stat -c %s "$f")" "$rss" "$preads" "$bytes" \
		"$(python3 -c 'import sys; print(100 * int(sys.argv[1]) / int(sys.argv[2]))' "$bytes" "$(stat -c %s "$f")")" \
		"$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["frame_start"], "-", d["frame_end"])' "$tmp/out.json")"
done | tee "$out/inspect-memory.txt"
# /usr/bin/time shows wall time in 10 ms steps; hyperfine resolves it.
hyperfine --shell=none --warmup 3 --min-runs 20 --export-markdown "$out/inspect-big.md" --export-json "$out/inspect-big.json" \
	-n "inspect $(basename "$scene")" "$(printf '%q ' "$bin" inspect --json "$scene")" \
	-n "inspect 1 GiB big.blend" "$(printf '%q ' "$bin" inspect --json "$tmp/big.blend")" \
	-n "inspect 1 GiB scaled.blend" "$(printf '%q ' "$bin" inspect --json "$tmp/scaled.blend")"
