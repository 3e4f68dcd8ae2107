# shellcheck shell=bash
# Shared by the bench scripts: `need COMMAND PACKAGE` installs a Debian
# package when COMMAND is missing.
need() {
	if ! command -v "$1" >/dev/null; then
		local sudo=""
		if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
		echo "${0##*/}: installing $2 (apt-get)"
		$sudo apt-get update -qq
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"
	fi
}
