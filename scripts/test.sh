#!/usr/bin/env bash
# Runs every check and test of coffer: installs the linters it needs (from
# the Go module proxy), then go vet, staticcheck, gosec and go test. This is
# the command the README names and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$(go env GOPATH)/bin:$PATH"
export CGO_ENABLED="${CGO_ENABLED:-0}"

install_tool() { # name module@version
	if ! command -v "$1" >/dev/null 2>&1; then
		echo "installing $1"
		go install "$2"
	fi
}
install_tool staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
install_tool gosec github.com/securego/gosec/v2/cmd/gosec@v2.30.0

# Optional system tools some tests use when present (ACL round trips).
if ! command -v setfacl >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	(apt-get install -y -qq acl >/dev/null 2>&1 || true)
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
staticcheck ./...
echo "== gosec"
gosec -quiet -exclude-generated -exclude-dir=bench ./...
echo "== go build"
go build -o /dev/null ./cmd/coffer
echo "== go test"
go test -count=1 -timeout 20m ./...
