#!/usr/bin/env bash
# Side-by-side benchmark of coffer against restic and borg on the same data:
# first backup, unchanged re-backup, restore, repository size and peak RSS.
#
#   bash bench/compare.sh [WORKDIR]
#
# Data sets: (a) the Go toolchain tree $(go env GOROOT), (b) a ~1 GiB
# tarball (the Go tree as a tar plus generated mixed data), (c) 100,000 small
# files. Peers: restic and borg from the distribution (apt-get install restic
# borgbackup). Results go to WORKDIR/results.tsv; every figure is the median
# of RUNS runs (default 3). Times are wall-clock seconds, RSS in MiB.
#
# Every run restores into a new directory, and the restored trees are deleted
# only when a data set is done, after its last restore: on ext4 without a
# journal (common on VMs), the kernel avoids reusing inodes deleted in the
# last 60 to 300 seconds and scans past them on every file it creates, so a
# restore that follows the deletion of a 100k-file tree pays a cost that
# depends on where the kernel happens to place the new tree, not on the tool.
# Each phase starts after a sync, so no tool pays for another's writeback,
# and each backup after the source was read once, so that every tool finds
# it in the page cache (the first tool of a round would otherwise read it
# cold after the restores of the round before pushed it out).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/coffer-bench.XXXXXX)}
runs=${RUNS:-3}
sets=${SETS:-"goroot tarball smallfiles"}
tools=${TOOLS:-"coffer restic borg"}
mkdir -p "$work"
export COFFER_PASSWORD=bench-passphrase RESTIC_PASSWORD=bench-passphrase BORG_PASSPHRASE=bench-passphrase
export COFFER_STATE_DIR="$work/state" BORG_BASE_DIR="$work/borgbase" RESTIC_CACHE_DIR="$work/restic-cache"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
(cd "$here" && CGO_ENABLED=0 go build -o "$work/coffer" ./cmd/coffer) # the static binary that ships
coffer="$work/coffer"

make_data() {
	local d="$work/data"
	mkdir -p "$d"
	if [ ! -e "$d/goroot" ]; then
		cp -a "$(go env GOROOT)" "$d/goroot"
	fi
	if [ ! -e "$d/tarball/big.tar" ]; then
		mkdir -p "$d/tarball"
		tar -C "$d" -cf "$d/tarball/big.tar" goroot
		# Mixed filler up to ~1 GiB: half random, half repetitive text.
		python3 - "$d/tarball/big.tar" <<'PY'
import os, sys, random
f = open(sys.argv[1], "ab")
rnd = random.Random(42)
target = 1 << 30
while f.tell() < target:
    if rnd.random() < 0.5:
        f.write(os.urandom(1 << 20))
    else:
        line = ("%08d lorem ipsum dolor sit amet consectetur %f\n" % (rnd.randrange(10**8), rnd.random())).encode()
        f.write(line * ((1 << 20) // len(line)))
f.close()
PY
	fi
	if [ ! -e "$d/smallfiles/done" ]; then
		python3 - "$d/smallfiles" <<'PY'
import os, sys, random
root = sys.argv[1]
rnd = random.Random(7)
for i in range(100000):
    sub = os.path.join(root, "d%03d" % (i // 1000), "e%02d" % ((i // 100) % 10))
    os.makedirs(sub, exist_ok=True)
    n = rnd.randrange(0, 4096)
    data = (rnd.choice([b"a", b"bc", b"xyz"]) * n)[:n] if rnd.random() < 0.5 else os.urandom(n)
    with open(os.path.join(sub, "f%05d" % i), "wb") as f:
        f.write(data)
open(os.path.join(root, "done"), "w").close()
PY
	fi
}

# measure LABEL CMD...: appends "label wall rss_mib" to $work/raw.tsv
measure() {
	local label=$1; shift
	local out="$work/time.out"
	sync
	/usr/bin/time -f "%e %M" -o "$out" "$@" >/dev/null 2>"$work/last.err" || { echo "FAILED: $label" >&2; cat "$work/last.err" >&2; return 1; }
	read -r wall rss <"$out"
	echo -e "$label\t$wall\t$((rss / 1024))" >>"$work/raw.tsv"
}

warm() { find "$1" -type f -print0 | xargs -0 -r cat >/dev/null; }

repo_size() { du -sb "$1" | cut -f1; }

run_tool() { # tool set run
	local tool=$1 set=$2 run=$3 src="$work/data/$2"
	local repo="$work/repo-$tool-$set" dst="$work/restore-$set/$tool-$run"
	rm -rf "$repo" "$dst" "$work/state" "$work/borgbase" "$work/restic-cache"
	mkdir -p "$work/restore-$set"
	case $tool in
	coffer)
		"$coffer" init --repo "$repo" -q
		warm "$src"
		measure "$tool/$set/backup" "$coffer" backup --repo "$repo" -q "$src"
		measure "$tool/$set/rebackup" "$coffer" backup --repo "$repo" -q "$src"
		measure "$tool/$set/restore" "$coffer" restore latest --repo "$repo" -q --target "$dst"
		;;
	restic)
		restic init --repo "$repo" -q
		warm "$src"
		measure "$tool/$set/backup" restic backup --repo "$repo" -q "$src"
		measure "$tool/$set/rebackup" restic backup --repo "$repo" -q "$src"
		measure "$tool/$set/restore" restic restore latest --repo "$repo" -q --target "$dst"
		;;
	borg)
		borg init -e repokey-blake2 "$repo"
		warm "$src"
		measure "$tool/$set/backup" borg create --compression zstd,3 "$repo::a1" "$src"
		measure "$tool/$set/rebackup" borg create --compression zstd,3 "$repo::a2" "$src"
		mkdir -p "$dst"
		measure "$tool/$set/restore" sh -c "cd '$dst' && borg extract '$repo::a2'"
		;;
	esac
	echo -e "$tool/$set/size\t$(repo_size "$repo")\t0" >>"$work/raw.tsv"
}

make_data
: >"$work/raw.tsv"
for set in $sets; do
	for run in $(seq "$runs"); do
		for tool in $tools; do
			echo "run $run: $tool on $set" >&2
			run_tool "$tool" "$set" "$run"
		done
	done
	rm -rf "$work/restore-$set"
done

# Medians per label, then ratios coffer/peer.
python3 - "$work/raw.tsv" "$work/results.tsv" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, a, b = line.rstrip("\n").split("\t")
    rows[label].append((float(a), float(b)))
med = {k: (statistics.median(x for x, _ in v), statistics.median(y for _, y in v)) for k, v in rows.items()}
out = open(sys.argv[2], "w")
print("set\tphase\tcoffer\trestic\tborg\tcoffer/restic\tcoffer/borg\trss coffer/restic/borg (MiB)", file=out)
sets = sorted({k.split("/")[1] for k in med})
for s in sets:
    for ph in ["backup", "rebackup", "restore", "size"]:
        v = {t: med.get(f"{t}/{s}/{ph}") for t in ["coffer", "restic", "borg"]}
        fmt = lambda x: "-" if x is None else ("%.0f" % x[0] if ph == "size" else "%.2f" % x[0])
        ratio = lambda a, b: "-" if not a or not b or b[0] == 0 else "%.2f" % (a[0] / b[0])
        rss = "/".join("-" if v[t] is None else "%d" % v[t][1] for t in ["coffer", "restic", "borg"])
        print(f"{s}\t{ph}\t{fmt(v['coffer'])}\t{fmt(v['restic'])}\t{fmt(v['borg'])}\t{ratio(v['coffer'], v['restic'])}\t{ratio(v['coffer'], v['borg'])}\t{rss if ph != 'size' else ''}", file=out)
out.close()
print(open(sys.argv[2]).read())
PY
