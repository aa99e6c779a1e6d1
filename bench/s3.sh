#!/usr/bin/env bash
# Benchmarks coffer on S3 (versitygw on loopback) against a local path.
#
#   bash bench/s3.sh [WORKDIR]
#
# Backup and restore of a data set (DATA, default: the Go toolchain tree)
# into a repository in a versitygw bucket on 127.0.0.1 over plain http, side
# by side with the same into a local repository; RUNS (default 3) runs, the
# medians printed. versitygw comes from PATH or GOPATH/bin
# (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/coffer-s3-bench.XXXXXX)}
data=${DATA:-$(go env GOROOT)}
runs=${RUNS:-3}
mkdir -p "$work"
vgw=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
[ -x "$vgw" ] || { echo "versitygw not found: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"; exit 1; }
(cd "$here" && CGO_ENABLED=0 go build -o "$work/coffer" ./cmd/coffer) # the static binary that ships
c="$work/coffer"
export COFFER_PASSWORD=bench-passphrase COFFER_STATE_DIR="$work/state"
kdf=(--kdf-time 1 --kdf-memory 8192 --kdf-threads 1)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=$(head -c 18 /dev/urandom | base64) AWS_DEFAULT_REGION=us-east-1
rm -rf "$work/s3"
mkdir -p "$work/s3"
ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
	"$vgw" --port "127.0.0.1:$port" --quiet posix "$work/s3" >"$work/versitygw.log" 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
for _ in $(seq 50); do
	python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
	sleep 0.1
done

timed() { # with $label set: time cmd... and print "label<TAB>seconds"
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	echo -e "$label\t$(python3 -c "print(round($t1-$t0,3))")"
}

echo "== backup and restore of $data ($(du -sh "$data" | cut -f1)): local vs S3 (versitygw on loopback) (runs: $runs)"
for r in $(seq "$runs"); do
	rm -rf "$work/local" "$work/dst-local" "$work/dst-s3"
	s3="s3:http://127.0.0.1:$port/bench/run$r"
	"$c" init --repo "$work/local" -q "${kdf[@]}"
	"$c" init --repo "$s3" -q "${kdf[@]}"
	label=local/backup timed "$c" backup --repo "$work/local" -q "$data"
	label=s3/backup timed "$c" backup --repo "$s3" -q "$data"
	label=local/restore timed "$c" restore latest --repo "$work/local" -q --target "$work/dst-local"
	label=s3/restore timed "$c" restore latest --repo "$s3" -q --target "$work/dst-s3"
done | tee "$work/s3.tsv"
python3 - "$work/s3.tsv" <<'PY'
import sys, statistics, collections
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    k, t = line.split("\t"); v[k].append(float(t))
m = {k: statistics.median(x) for k, x in v.items()}
for op in ("backup", "restore"):
    l, r = m[f"local/{op}"], m[f"s3/{op}"]
    print(f"{op}: local {l:.2f} s, s3 {r:.2f} s, s3 speed = {l/r:.2f}x local")
PY
diff -r "$work/dst-local" "$work/dst-s3" >/dev/null && echo "restores identical" || { echo "restores differ"; exit 1; }
