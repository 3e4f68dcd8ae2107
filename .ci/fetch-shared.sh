#!/usr/bin/env bash
# Builds the shared test data directory (the layout of ../shared that
# internal/testenv reads through FRAMEFLEET_SHARED) where ../shared is not
# beside the checkout, as on GitHub's runners:
# the public .blend files, downloaded from their upstream repositories at the
# pinned commits in .ci/shared-sources.txt and checked by SHA-256. The shared
# data's expected.json (the values a reader must produce) has no public
# upstream and no copy in the repository: without it the tests that compare
# values skip, saying why (internal/testenv.CorpusExpected), and the files are
# still read by every other test. Licences: assimp (BSD 3-Clause),
# glTF-Blender-IO (Apache-2.0), "Pottery" by Prokster (CC0).
# Files already present with the right checksum are not downloaded again.
#
# Usage: .ci/fetch-shared.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: .ci/fetch-shared.sh DIR (then export FRAMEFLEET_SHARED=DIR)}
mkdir -p "$dest"

while read -r path sum url; do
	case $path in '' | '#'*) continue ;; esac
	file=$dest/$path
	if [ -f "$file" ] && echo "$sum  $file" | sha256sum --check --status; then
		continue
	fi
	mkdir -p "$(dirname "$file")"
	curl --fail --silent --show-error --location --retry 3 --output "$file.part" "$url"
	if ! echo "$sum  $file.part" | sha256sum --check --status; then
		echo "fetch-shared: $url is not the file the tests expect (SHA-256 $(sha256sum "$file.part" | cut -c1-64), want $sum)." >&2
		echo "fetch-shared: pin a commit that has the expected bytes in .ci/shared-sources.txt." >&2
		rm -f "$file.part"
		exit 1
	fi
	mv "$file.part" "$file"
done <"$here/shared-sources.txt"
echo "fetch-shared: shared test data ready in $dest"
