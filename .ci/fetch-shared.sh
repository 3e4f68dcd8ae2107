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
#
# FRAMEFLEET_SHARED_MIRROR fetches from a local mirror instead of GitHub (offline,
# and how the script itself is tested):
#   - a directory of git mirrors, DIR/OWNER/REPO.git (git clone --mirror
#     https://github.com/OWNER/REPO DIR/OWNER/REPO.git) or DIR/OWNER/REPO: each
#     file is read from its pinned commit, which must be on the mirror's
#     default branch (HEAD); a wrong pin is answered with the commit to pin;
#   - a base URL (http://, https://, file://) laid out like
#     raw.githubusercontent.com: BASE/OWNER/REPO/COMMIT/PATH.
# FRAMEFLEET_SHARED_SOURCES reads another sources file (default: the one beside
# this script).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: .ci/fetch-shared.sh DIR (then export FRAMEFLEET_SHARED=DIR)}
sources=${FRAMEFLEET_SHARED_SOURCES:-$here/shared-sources.txt}
mirror=${FRAMEFLEET_SHARED_MIRROR:-}
raw=https://raw.githubusercontent.com
mkdir -p "$dest"

fail() {
	printf 'fetch-shared: %s\n' "$@" >&2
	exit 1
}

sha256_of() { sha256sum "$1" | cut -c1-64; }

# mirror_repo OWNER REPO: the mirror's git directory for OWNER/REPO.
mirror_repo() {
	local d
	for d in "$mirror/$1/$2.git" "$mirror/$1/$2"; do
		if [ -d "$d" ] && git -C "$d" rev-parse --git-dir >/dev/null 2>&1; then
			echo "$d"
			return
		fi
	done
	fail "no git mirror of $1/$2 in $mirror:" \
		"make one with: git clone --mirror https://github.com/$1/$2 $mirror/$1/$2.git"
}

# commits_with_bytes GITDIR FILE SHA256: the commits of every ref whose FILE
# has those bytes, those on the default branch first, newest first.
commits_with_bytes() {
	local gitdir=$1 file=$2 want=$3 c on_default=() elsewhere=()
	for c in $(git -C "$gitdir" rev-list --all -n 500 -- "$file"); do
		if [ "$(git -C "$gitdir" cat-file blob "$c:$file" 2>/dev/null | sha256sum | cut -c1-64)" = "$want" ]; then
			if git -C "$gitdir" merge-base --is-ancestor "$c" HEAD 2>/dev/null; then
				on_default+=("$c")
			else
				elsewhere+=("$c")
			fi
		fi
	done
	printf '%s\n' "${on_default[@]}" "${elsewhere[@]}" | sed '/^$/d'
}

# from_mirror OWNER REPO COMMIT FILE SHA256 OUT: FILE at COMMIT into OUT, or a
# failure that says which commit to pin (or that the checksum is wrong).
from_mirror() {
	local owner=$1 repo=$2 commit=$3 file=$4 want=$5 out=$6 gitdir good got
	gitdir=$(mirror_repo "$owner" "$repo")
	if ! git -C "$gitdir" cat-file -e "$commit^{commit}" 2>/dev/null; then
		good=$(commits_with_bytes "$gitdir" "$file" "$want" | sed -n 1p)
		fail "$owner/$repo has no commit $commit (pinned for $file; is the mirror up to date? git -C $gitdir remote update)." \
			"${good:+pin $raw/$owner/$repo/$good/$file in $sources: it has the expected bytes}"
	fi
	if ! git -C "$gitdir" cat-file blob "$commit:$file" >"$out" 2>/dev/null; then
		rm -f "$out"
		good=$(commits_with_bytes "$gitdir" "$file" "$want" | sed -n 1p)
		fail "$owner/$repo has no $file at commit $commit." \
			"${good:+pin $raw/$owner/$repo/$good/$file in $sources: it has the expected bytes}"
	fi
	got=$(sha256_of "$out")
	if [ "$got" != "$want" ]; then
		rm -f "$out"
		good=$(commits_with_bytes "$gitdir" "$file" "$want" | sed -n 1p)
		if [ -n "$good" ]; then
			fail "$owner/$repo:$file at commit $commit is not the file the tests expect (SHA-256 $got, want $want)." \
				"pin $raw/$owner/$repo/$good/$file in $sources: that commit has the expected bytes."
		fi
		fail "$owner/$repo:$file at commit $commit has SHA-256 $got, and no commit of $file has $want." \
			"correct the SHA-256 in $sources to the bytes the tests were written against (sha256sum of the file in the shared directory)."
	fi
	if ! git -C "$gitdir" merge-base --is-ancestor "$commit" HEAD 2>/dev/null; then
		rm -f "$out"
		good=$(commits_with_bytes "$gitdir" "$file" "$want" | sed -n 1p)
		if [ -n "$good" ] && git -C "$gitdir" merge-base --is-ancestor "$good" HEAD; then
			fail "commit $commit of $owner/$repo is not on its default branch (only on $(git -C "$gitdir" for-each-ref --contains "$commit" --format='%(refname)' | sed -n 1p)), so GitHub may drop it." \
				"pin $raw/$owner/$repo/$good/$file in $sources: it is on the default branch and has the same bytes."
		fi
		fail "commit $commit of $owner/$repo is not on its default branch, so GitHub may drop it, and no commit there has these bytes of $file." \
			"pin a commit of the default branch and update the SHA-256 (and the tests that depend on the file) to match."
	fi
}

while read -r path sum url; do
	case $path in '' | '#'*) continue ;; esac
	file=$dest/$path
	if [ -f "$file" ] && echo "$sum  $file" | sha256sum --check --status; then
		continue
	fi
	mkdir -p "$(dirname "$file")"
	case $url in
	"$raw"/*/*/*/*) ;;
	*) fail "$sources: $path: $url is not $raw/OWNER/REPO/COMMIT/PATH: pin the file by its raw GitHub URL at a commit" ;;
	esac
	rest=${url#"$raw"/}
	owner=${rest%%/*} rest=${rest#*/}
	repo=${rest%%/*} rest=${rest#*/}
	commit=${rest%%/*} upath=${rest#*/}
	case $mirror in
	'')
		curl --fail --silent --show-error --location --retry 3 --output "$file.part" "$url"
		;;
	http://* | https://* | file://*)
		from=${mirror%/}/$owner/$repo/$commit/$upath
		curl --fail --silent --show-error --location --retry 3 --output "$file.part" "$from" ||
			fail "$from could not be fetched: does the mirror $mirror serve $owner/$repo at commit $commit?"
		url=$from
		;;
	*)
		from_mirror "$owner" "$repo" "$commit" "$upath" "$sum" "$file.part"
		;;
	esac
	if ! echo "$sum  $file.part" | sha256sum --check --status; then
		got=$(sha256_of "$file.part")
		rm -f "$file.part"
		fail "$url is not the file the tests expect (SHA-256 $got, want $sum)." \
			"pin a commit that has the expected bytes in $sources (git log --format=%H -- $upath in a clone of $owner/$repo lists the candidates)."
	fi
	mv "$file.part" "$file"
done <"$sources"
echo "fetch-shared: shared test data ready in $dest"
