#!/usr/bin/env bash
# Benchmarks the fleet's control plane (issue 12, "Scale"):
#
#   AGENTS=N bash bench/fleet.sh [WORKDIR]        (default N=1000)
#
# One real `coffer server run` on 127.0.0.1 and N simulated agents in one
# process (bench/fleetsim), each with its own enrolled identity, its own
# loopback source address (127.1.X.Y: real agents come from distinct hosts,
# and the server limits pending handshakes and enrollment attempts per
# source address) and its own TLS connection holding the control stream.
#
# 1. Enrollment: N one-time tokens minted with admin.IssueToken, the code of
#    `coffer server token`, in one process (a loop of `coffer server token`
#    costs a process and a database open per token, about 200 ms each on
#    the 2-core test machine), then redeemed against the server's enrollment
#    endpoint 16 at a time. The server's global enrollment limit (10 a
#    second after a burst of 50) sets the pace: about 95 s for 1,000 hosts.
# 2. `coffer fleet group add/assign` puts every host in one group and
#    `coffer fleet policy set --group` gives it a backup schedule that fires
#    at one minute (cron `M H * * *`, UTC, --jitter 0) far enough ahead for
#    every host to connect.
# 3. Every host connects its stream, verifies the signed policy with the
#    pinned key (internal/fleet/policy), computes its next backup with
#    internal/schedule as the agent does, and at that time posts a
#    `running` report and then a `succeeded` one (no backup is made).
#
# The last line is the result:
#   agents=N connected=N jobs=N p50_start_delay_ms=X p99_start_delay_ms=Y server_rss_mib=Z
# connected: hosts whose stream the server answered; jobs: succeeded
# scheduled backups the server lists for them (GET /v1/fleet/jobs as the
# admin); start delay: when the server's answer to a host's running report
# arrived (it answers once the report is committed) minus the scheduled
# time (the server's own stamp, taken when the report arrives, is printed
# on standard error beside); server_rss_mib: the server process's peak
# resident set (VmHWM in /proc) at the end.
# Targets at 1,000 agents: all connected, p99 under 2 s, RSS under 512 MiB.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${AGENTS:-1000}
work=${1:-$(mktemp -d /tmp/coffer-fleet-bench.XXXXXX)}
mkdir -p "$work"
# One descriptor per agent connection on both ends, plus the database's.
ulimit -n "$(ulimit -Hn)"
export TZ=UTC # the schedule's minute is written in UTC; the agents' wall clock is too

(cd "$here" && CGO_ENABLED=0 go build -o "$work/coffer" ./cmd/coffer && go build -o "$work/fleetsim" ./bench/fleetsim)
c="$work/coffer"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
rm -rf "$work/srv" "$work/ids"
"$c" server init --dir "$work/srv" --listen "$addr" >/dev/null
"$c" server run --dir "$work/srv" 2>"$work/server.err" &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
for _ in $(seq 100); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
	sleep 0.1
done

"$work/fleetsim" enroll -dir "$work/srv" -addr "$addr" -n "$n" -out "$work/ids" >"$work/names"

fleet=("$c" fleet --identity "$work/srv/admin" --server "$addr" -q)
"${fleet[@]}" group add sim
xargs "${fleet[@]}" group assign sim <"$work/names"
# The first whole minute at least 20 s + 40 ms a host from now.
at=$(python3 -c "import time; t=time.time()+20+0.04*$n; print(int((t+59)//60*60))")
minute=$(date -u -d "@$at" +'%M %H')
"${fleet[@]}" policy set --group sim --paths /srv --schedule "${minute#0} * * *" --jitter 0
echo "fleet.sh: $n hosts enrolled; backups scheduled at $(date -u -d "@$at" +%H:%M:%SZ)" >&2

line=$("$work/fleetsim" run -ids "$work/ids" -addr "$addr" -admin "$work/srv/admin")
rss_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$srv/status")
echo "$line server_rss_mib=$((rss_kib / 1024))"
