#!/usr/bin/env bash
# Installs the servers the tests start, with `go install` into
# $(go env GOPATH)/bin, each only when the pinned version is not there
# already (so running it again costs nothing):
#   versitygw v1.8.0  the S3 server of the s3 backend's tests (about
#                     6 CPU-minutes to build the first time)
#   mailpit v1.27.11  the SMTP server of the alert tests
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

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(versitygw mailpit)
for name in "${want[@]}"; do
	case $name in
	versitygw) dep versitygw github.com/versity/versitygw github.com/versity/versitygw/cmd/versitygw v1.8.0 ;;
	mailpit) dep mailpit github.com/axllent/mailpit github.com/axllent/mailpit v1.27.11 ;;
	*) echo "scripts/deps.sh: unknown dependency $name" >&2; exit 2 ;;
	esac
done
