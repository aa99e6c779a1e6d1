#!/usr/bin/env bash
# Alternating first-backup runs of coffer and restic on the same data: the
# backup alone, each into a fresh copy of a repository initialized once.
#
#   bash bench/first-backup.sh SRC [RUNS] [WORKDIR]
#
# compare.sh initializes a new repository for every run, and restic
# calibrates its KDF at init against the machine's speed at that moment, so
# its later commands vary with the load during init. Here each tool's
# repository is initialized once and copied before every run (the copy is
# not timed), and the runs alternate coffer, restic, coffer, ... so a drift
# in the machine's speed hits both alike. It prints every pair and the
# medians: wall seconds, peak RSS in MiB and the ratio coffer/restic.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src=${1:?usage: first-backup.sh SRC [RUNS] [WORKDIR]}
runs=${2:-5}
work=${3:-$(mktemp -d /tmp/coffer-first.XXXXXX)}
mkdir -p "$work"
export COFFER_PASSWORD=bench-passphrase RESTIC_PASSWORD=bench-passphrase
(cd "$here" && CGO_ENABLED=0 go build -o "$work/coffer" ./cmd/coffer) # the static binary that ships

rm -rf "$work/tmpl-coffer" "$work/tmpl-restic" "$work/state-init"
COFFER_STATE_DIR="$work/state-init" "$work/coffer" init -q --repo "$work/tmpl-coffer"
restic init -q --repo "$work/tmpl-restic"
find "$src" -type f -print0 | xargs -0 -r cat >/dev/null # into the page cache

# one TOOL RUN: prints "wall rss_mib" of one backup into a fresh copy.
one() {
	local tool=$1 run=$2 repo="$work/repo-$1-$2" out="$work/time.out"
	rm -rf "$repo" "$work/state-$run" "$work/cache-$run"
	cp -a "$work/tmpl-$tool" "$repo"
	sync
	case $tool in
	coffer) COFFER_STATE_DIR="$work/state-$run" /usr/bin/time -f "%e %M" -o "$out" \
		"$work/coffer" backup -q --repo "$repo" "$src" >/dev/null ;;
	restic) RESTIC_CACHE_DIR="$work/cache-$run" /usr/bin/time -f "%e %M" -o "$out" \
		restic backup -q --repo "$repo" "$src" >/dev/null ;;
	esac
	read -r wall rss <"$out"
	rm -rf "$repo" "$work/state-$run" "$work/cache-$run"
	echo "$wall $((rss / 1024))"
}

one coffer 0 >/dev/null # warm-up, not counted
one restic 0 >/dev/null
: >"$work/pairs.tsv"
for run in $(seq "$runs"); do
	read -r cw cr < <(one coffer "$run")
	read -r rw rr < <(one restic "$run")
	echo -e "$cw\t$cr\t$rw\t$rr" | tee -a "$work/pairs.tsv"
done
python3 - "$work/pairs.tsv" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = lambda i: statistics.median(r[i] for r in rows)
ratio = statistics.median(r[0] / r[2] for r in rows)
print(f"median: coffer {med(0):.2f} s {med(1):.0f} MiB, restic {med(2):.2f} s {med(3):.0f} MiB, "
      f"coffer/restic wall {ratio:.2f} (median of {len(rows)} pairs)")
PY
