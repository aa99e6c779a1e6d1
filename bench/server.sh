#!/usr/bin/env bash
# Benchmarks coffer against its own storage server on loopback.
#
#   bash bench/server.sh [WORKDIR]
#
# 1. Backup and restore of a data set (default: the Go toolchain tree) into a
#    repository on `coffer server` over mutual TLS on 127.0.0.1, side by side
#    with the same into a local repository; the target is remote >= 0.9x the
#    local speed (remote time <= local time / 0.9). With STORAGE=s3, the
#    server keeps its objects in a versitygw bucket on 127.0.0.1 (server init
#    --storage s3:http://...) instead of its state directory: run once with
#    and once without to compare the two servers.
# 2. CLIENTS (default 50) enrolled clients each back up a small change at
#    the same moment: errors are counted, the server's peak RSS is read from
#    /proc, and the per-request latency percentiles come from the server's
#    request log (COFFER_SERVER_REQUEST_LOG).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/coffer-server-bench.XXXXXX)}
data=${DATA:-$(go env GOROOT)}
clients=${CLIENTS:-50}
runs=${RUNS:-3}
storage=${STORAGE:-dir}
mkdir -p "$work"
(cd "$here" && CGO_ENABLED=0 go build -o "$work/coffer" ./cmd/coffer) # the static binary that ships
c="$work/coffer"
export COFFER_PASSWORD=bench-passphrase COFFER_STATE_DIR="$work/state"
kdf=(--kdf-time 1 --kdf-memory 8192 --kdf-threads 1)

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() {
	for _ in $(seq 50); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return
		sleep 0.1
	done
}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
init_flags=()
if [ "$storage" = s3 ]; then
	vgw=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
	[ -x "$vgw" ] || { echo "versitygw not found: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"; exit 1; }
	vport=$(freeport)
	export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=$(head -c 18 /dev/urandom | base64) AWS_DEFAULT_REGION=us-east-1
	rm -rf "$work/s3"
	mkdir -p "$work/s3"
	ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
		"$vgw" --port "127.0.0.1:$vport" --quiet posix "$work/s3" >"$work/versitygw.log" 2>&1 &
	pids+=($!)
	waitport "$vport"
	init_flags=(--storage "s3:http://127.0.0.1:$vport/bench/srv")
fi
echo "== server objects in: $storage"
port=$(freeport)
rm -rf "$work/srv"
"$c" server init --dir "$work/srv" "${init_flags[@]}" >/dev/null
export COFFER_SERVER_REQUEST_LOG="$work/requests.log"
: >"$COFFER_SERVER_REQUEST_LOG"
"$c" server run --dir "$work/srv" --listen "127.0.0.1:$port" 2>"$work/server.err" &
srv=$!
pids+=($srv)
waitport "$port"

enroll() { # name -> identity dir
	local id="$work/id-$1"
	rm -rf "$id"
	"$c" server token --dir "$work/srv" --client "$1" >"$work/token-$1" 2>/dev/null
	"$c" enroll --server "127.0.0.1:$port" --token-file "$work/token-$1" --identity "$id" >/dev/null
	echo "$id"
}

timed() { # with $label set: time cmd... and print "label<TAB>seconds"
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	echo -e "$label\t$(python3 -c "print(round($t1-$t0,3))")"
}

echo "== backup and restore of $data: local vs coffer server on loopback (runs: $runs)"
id=$(enroll bench)
for r in $(seq "$runs"); do
	rm -rf "$work/local" "$work/dst-local" "$work/dst-remote"
	"$c" init --repo "$work/local" -q "${kdf[@]}"
	COFFER_IDENTITY=$id "$c" init --repo "coffer://127.0.0.1:$port/run$r" -q "${kdf[@]}"
	label=local/backup timed "$c" backup --repo "$work/local" -q "$data"
	label=remote/backup timed env COFFER_IDENTITY="$id" "$c" backup --repo "coffer://127.0.0.1:$port/run$r" -q "$data"
	label=local/restore timed "$c" restore latest --repo "$work/local" -q --target "$work/dst-local"
	label=remote/restore timed env COFFER_IDENTITY="$id" "$c" restore latest --repo "coffer://127.0.0.1:$port/run$r" -q --target "$work/dst-remote"
done | tee "$work/loopback.tsv"
python3 - "$work/loopback.tsv" <<'PY'
import sys, statistics, collections
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    k, t = line.split("\t"); v[k].append(float(t))
m = {k: statistics.median(x) for k, x in v.items()}
for op in ("backup", "restore"):
    l, r = m[f"local/{op}"], m[f"remote/{op}"]
    print(f"{op}: local {l:.2f} s, remote {r:.2f} s, remote speed = {l/r:.2f}x local (target >= 0.9)")
PY

[ "$clients" -gt 0 ] || exit 0
echo "== $clients clients backing up a small change at once"
src="$work/small"
mkdir -p "$src"
for i in $(seq 200); do head -c 2048 /dev/urandom >"$src/f$i"; done
for i in $(seq "$clients"); do
	idd=$(enroll "c$i")
	COFFER_IDENTITY=$idd "$c" init --repo "coffer://127.0.0.1:$port/r" -q "${kdf[@]}"
	COFFER_IDENTITY=$idd "$c" backup --repo "coffer://127.0.0.1:$port/r" -q "$src"
done
: >"$COFFER_SERVER_REQUEST_LOG"
date +%s.%N >"$work/changed"
for i in $(seq "$clients"); do
	(
		echo "change $i" >"$src/change-$i"
		COFFER_IDENTITY="$work/id-c$i" "$c" backup --repo "coffer://127.0.0.1:$port/r" -q "$src" 2>"$work/client-$i.err" || echo "client $i failed: $(cat "$work/client-$i.err")"
	) &
done | tee "$work/failures" # tee returns once every client has closed its output
failed=$(grep -c failed "$work/failures" || true)
rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$srv/status")
echo "clients: $clients, failed: $failed, server peak RSS: ${rss} MiB"
python3 - "$COFFER_SERVER_REQUEST_LOG" <<'PY'
import sys, json
d = []
for line in open(sys.argv[1]):
    try:
        d.append(float(json.loads(line)["duration_ms"]))
    except Exception:
        pass
if not d:
    print("no request log entries"); sys.exit(0)
d.sort()
q = lambda p: d[min(len(d)-1, int(p*len(d)))]
print(f"requests: {len(d)}, latency ms p50 {q(0.5):.1f}, p90 {q(0.9):.1f}, p99 {q(0.99):.1f}, max {d[-1]:.1f}")
PY
