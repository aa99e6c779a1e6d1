#!/usr/bin/env bash
# Installs the servers the tests start, with `go install` into
# $(go env GOPATH)/bin, each only when the pinned version is not there
# already (so running it again costs nothing):
#   versitygw v1.8.0  the S3 server of the s3 backend's tests (about
#                     6 CPU-minutes to build the first time)
#   mailpit v1.27.11  the SMTP server of the alert tests
# and PostgreSQL (initdb, pg_ctl) for the server database's tests: the
# Debian package postgresql, with apt-get, when run as root and neither
# PATH nor /usr/lib/postgresql/*/bin has them.
# .ci/run calls it before scripts/test.sh; scripts/test.sh calls it too,
# in the background, so the README's single test command still works on
# a fresh machine. `scripts/deps.sh NAME...` installs only those.
set -euo pipefail
cd "$(dirname "$0")/.."

# installed BINARY MODULE VERSION: is GOPATH/bin/BINARY built from MODULE
# at VERSION?
installed() {
	local bin
	bin="$(go env GOPATH)/bin/$1"
	go version -m "$bin" 2>/dev/null | grep -q "^[[:space:]]*mod[[:space:]]*$2[[:space:]]*$3[[:space:]]"
}

# dep NAME MODULE PACKAGE VERSION installs one tool unless it is there.
dep() {
	if installed "$1" "$2" "$4"; then
		return 0
	fi
	echo "== installing $1 $4"
	go install "$3@$4"
}

# postgres installs the PostgreSQL server binaries unless they are there.
postgres() {
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		return 0
	fi
	for d in /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			return 0
		fi
	done
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "PostgreSQL (initdb, pg_ctl) not found: install it (Debian: apt-get install postgresql) for the server database's tests" >&2
		return 1
	fi
	echo "== installing postgresql (apt-get)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null ||
		{ apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
}

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(versitygw mailpit postgres)
for name in "${want[@]}"; do
	case $name in
	versitygw) dep versitygw github.com/versity/versitygw github.com/versity/versitygw/cmd/versitygw v1.8.0 ;;
	mailpit) dep mailpit github.com/axllent/mailpit github.com/axllent/mailpit v1.27.11 ;;
	postgres) postgres ;;
	*) echo "scripts/deps.sh: unknown dependency $name" >&2; exit 2 ;;
	esac
done
