#!/usr/bin/env bash
# Time to the first error of `framefleet runs` for each store configuration
# mistake (figures go to docs/BENCHMARKS.md, section "Store configuration
# mistakes"): a refused port, https on a plain-HTTP port, and a virtual-host
# bucket name on a custom endpoint. A plain HTTP server on loopback
# (python3 -m http.server) stands in for the S3-compatible server: every
# mistake fails before an S3 answer would matter.
# Usage: bash bench/storemistakes.sh
#   BIN=path/to/framefleet (default bin/framefleet)  RUNS=10
#   BENCH_OUT=dir for the result files (default bin/bench, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${BIN:-bin/framefleet}
runs=${RUNS:-10}
out=${BENCH_OUT:-bin/bench}

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
need hyperfine hyperfine
need python3 python3

mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
http_port=$(free_port)
python3 -m http.server --bind 127.0.0.1 "$http_port" >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
	if python3 -c "import socket; socket.create_connection(('127.0.0.1', $http_port), 0.2)" 2>/dev/null; then break; fi
	sleep 0.1
done
refused_port=$(free_port)

export FRAMEFLEET_CONFIG=/dev/null FRAMEFLEET_STORE=s3://renders/ff FRAMEFLEET_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true

# Each case: name, endpoint, path style.
cases=(
	"refused-port|http://127.0.0.1:$refused_port|true"
	"https-on-http-port|https://127.0.0.1:$http_port|true"
	"virtual-host-name|http://localhost:$http_port|false"
)
for c in "${cases[@]}"; do
	IFS='|' read -r name endpoint path_style <<<"$c"
	echo "--- $name ($endpoint, path_style $path_style)"
	FRAMEFLEET_S3_ENDPOINT=$endpoint FRAMEFLEET_S3_PATH_STYLE=$path_style "$bin" runs 2>&1 | tail -1 || true
	FRAMEFLEET_S3_ENDPOINT=$endpoint FRAMEFLEET_S3_PATH_STYLE=$path_style \
		hyperfine --shell=none --ignore-failure --warmup 1 --runs "$runs" \
		--export-json "$out/storemistakes-$name.json" "$bin runs"
done
