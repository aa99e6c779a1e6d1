#!/usr/bin/env bash
# Runs every check and test of coffer: gofmt, go vet, staticcheck, gosec,
# gocyclo, a static build, and go test with the race detector. This is the
# command the README names and .ci/run calls.
#
# What it installs: the linters pinned in tools/*/go.mod, which `go tool`
# fetches from the Go module proxy and builds on first use (cached after);
# through scripts/deps.sh, versitygw v1.8.0 and mailpit v1.27.11, the S3
# and SMTP servers the tests start, with `go install` into
# $(go env GOPATH)/bin, and PostgreSQL (the Debian package postgresql,
# with apt-get when run as root) for the server database's tests; and,
# when run as root on a
# Debian-like system without setfacl, the `acl` package (apt-get), which the
# ACL round-trip tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

# lint NAME ARGS... runs a pinned linter from its own tools module.
lint() {
	local name=$1
	shift
	go tool -modfile="tools/$name/go.mod" "$name" "$@"
}

if ! command -v setfacl >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "== installing acl (apt-get) for the ACL round-trip tests"
	apt-get install -y -qq acl >/dev/null 2>&1 || echo "   acl not installed; ACL tests will skip"
fi

# The linters run in the background, beside the checks and go test
# (`go tool` fetches and builds each on first use and caches the binary).
# Their output is shown, and their failure fails the run, once go test is
# done; go test waits on its servers and processes much of the time, so
# this costs the suite little wall time.
lints_log=$(mktemp)
(
	set -e
	echo "== staticcheck"
	lint staticcheck ./...
	echo "== gosec"
	lint gosec -quiet -exclude-generated -exclude-dir=bench -exclude-dir=tools ./...
	echo "== gocyclo (functions above 25)"
	# No non-test function may exceed 25; gocyclo lists any that do and exits 1.
	if ! lint gocyclo -over 25 -ignore '_test\.go$' cmd internal; then
		echo "functions above cyclomatic complexity 25: split them"; exit 1
	fi
) >"$lints_log" 2>&1 &
lints=$!

# The servers the tests start (versitygw for S3, mailpit for SMTP) are
# installed by scripts/deps.sh in the background too, and waited for before
# go test; with COFFER_REQUIRE_S3=1, COFFER_REQUIRE_MAILPIT=1 and
# COFFER_REQUIRE_PG=1 their tests fail rather than skip without them.
# Installed pinned versions are kept.
deps_log=$(mktemp)
bash scripts/deps.sh >"$deps_log" 2>&1 &
deps=$!

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './tools/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
# go vet compiles every package it checks; with CGO_ENABLED=0, as the
# static build below, the build reuses those compilations (coffer has no
# cgo) and costs a link instead of a second compile of the whole tree.
echo "== go vet"
CGO_ENABLED=0 go vet ./...
echo "== go build (static)"
CGO_ENABLED=0 go build -o /dev/null ./cmd/coffer

if ! wait "$deps"; then
	cat "$deps_log"; echo "could not install versitygw, mailpit and PostgreSQL for the S3, mail and database tests"; exit 1
fi
cat "$deps_log"
rm -f "$deps_log"
export COFFER_REQUIRE_S3=1 COFFER_REQUIRE_MAILPIT=1 COFFER_REQUIRE_PG=1

echo "== go test -race"
# The race detector needs cgo; the binary the end-to-end tests build is
# still an ordinary one.
CGO_ENABLED=1 go test -race -count=1 -timeout 30m ./...

lints_ok=0
wait "$lints" || lints_ok=$?
cat "$lints_log"
rm -f "$lints_log"
if [ "$lints_ok" != 0 ]; then
	echo "the linters failed (above)"; exit 1
fi
