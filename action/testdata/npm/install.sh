#!/usr/bin/env bash
# Installs the npm packages pinned in <src>/package-lock.json into <dest>, unless
# <dest>/node_modules already holds exactly those versions (the OpenAPI package
# is ~385 MB, so it is installed once per machine, not per checkout).
set -euo pipefail
src=$1 dest=$2
command -v npm >/dev/null || { echo "npm is missing: apt-get install -y npm (Node.js 18 or newer)" >&2; exit 1; }
want() { node -e 'const l=JSON.parse(require("fs").readFileSync(process.argv[1]));for(const[k,v]of Object.entries(l.packages))if(k)console.log(k+" "+v.version)' "$1"; }
have() {
  while read -r path version; do
    got=$(node -e 'try{console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).version)}catch(e){}' "$dest/$path/package.json")
    [ "$got" = "$version" ] || return 1
  done < <(want "$src/package-lock.json")
}
if [ -d "$dest/node_modules" ] && have; then exit 0; fi
echo "installing GitHub test fixtures (npm ci) into $dest"
mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
(cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
have || { echo "npm ci did not install the pinned versions into $dest" >&2; exit 1; }
