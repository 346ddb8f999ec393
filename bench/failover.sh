#!/usr/bin/env bash
# bench/failover.sh: the numbers behind hot backup and failover, ours next
# to an anchor (cp -r, the other environment size, or Berkeley DB 5.3).
#
#   BENCH_SIZE=small|1G  bash bench/failover.sh     (from the repository root)
#
# small: 100 MiB of data (100 000 values of 1000 bytes) in a.db.
# 1G:    1 GiB of data in four databases a.db b.db c.db d.db of 256 MiB,
#        one db_load each (our db_load holds the whole load in memory).
# Every timing is the median of BENCH_RUNS (3) runs with a warm page cache
# (sync before each run, not timed). Peak RSS comes from /usr/bin/time.
# Results go to $BENCH_RESULTS/failover-$BENCH_SIZE.tsv (default
# /tmp/bench-results); the -u row shows the other size's value as its
# anchor when that size was run before. BDB=0 skips the Berkeley DB anchor
# (it needs cc, libdb5.3-dev and db5.3-util). The environments are deleted
# at the end.
set -euo pipefail

SIZE=${BENCH_SIZE:-small}
RUNS=${BENCH_RUNS:-3}
BDB=${BDB:-1}
REL=${REL:-target/release}
RESULTS=${BENCH_RESULTS:-/tmp/bench-results}
case $SIZE in
small) NREC=100000 NDB=1 ;;
1G) NREC=1048576 NDB=4 ;;
*) echo "failover.sh: BENCH_SIZE must be small or 1G" >&2; exit 2 ;;
esac
for t in db_load db_hotbackup db_recover db_checkpoint db_archive examples/writer; do
    [ -x "$REL/$t" ] || { echo "failover.sh: $REL/$t missing: cargo build --release --bins --examples" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "failover.sh: needs /usr/bin/time (GNU time)" >&2; exit 2; }
REL=$(cd "$REL" && pwd)
BENCH=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-failover.XXXXXX")
mkdir -p "$RESULTS"
tsv=$RESULTS/failover-$SIZE.tsv
: >"$tsv"
wpid=
cleanup() {
    [ -n "$wpid" ] && kill -9 "$wpid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
env=$work/env

say() { echo "== $*" >&2; }
# t OUT CMD...: run CMD under GNU time; append "seconds maxrss_kb" to OUT.
t() {
    local out=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/.t" "$@" >/dev/null
    cat "$work/.t" >>"$out"
}
median() { sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
col() { awk -v c="$1" '{print $c}' "$2"; }
all() { col 1 "$1" | paste -sd/ -; }
# row NAME OURS ANCHOR UNIT NOTE
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$tsv"; }
logbytes() { cat "$1"/log.* 2>/dev/null | wc -c; }
mb() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}'; }
# gen FIRST COUNT: a db_load -T dump of keys k%010d with 1000-byte values.
gen() {
    awk -v f="$1" -v n="$2" 'BEGIN{
        s = "abcdefghijklmnopqrstuvwxyz"; while (length(s) < 1000) s = s s
        for (i = f; i < f + n; i++) printf "k%010d\n%s%06d\n", i, substr(s, 1 + i % 26, 994), i % 1000000 }'
}
dbs() { echo a.db b.db c.db d.db | cut -d' ' -f1-"$NDB"; }
# grow HOME BYTES CMD...: run the writer CMD in the background until the
# log of HOME grew by BYTES, then SIGKILL it (a primary that keeps running).
grow() {
    local home=$1 want=$2; shift 2
    local base; base=$(logbytes "$home")
    "$@" >/dev/null 2>&1 &
    wpid=$!
    while [ $(($(logbytes "$home") - base)) -lt "$want" ]; do
        kill -0 "$wpid" 2>/dev/null || { echo "failover.sh: the writer died" >&2; exit 1; }
        sleep 0.02
    done
    kill -9 "$wpid"; wait "$wpid" 2>/dev/null || true; wpid=
}
rate() { awk -v n="$1" -v s="$2" 'BEGIN{printf "%.0f", n/s}'; }

say "machine: $(nproc) cpus, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then dc=yes; else dc=no; fi
say "drop_caches possible: $dc (the timings below are warm-cache anyway)"

# 1. Build the environment: db_load of generated dumps, one transaction each.
say "1. build $SIZE: $NREC values of 1000 bytes in $(dbs)"
mkdir "$env"
per=$((NREC / NDB)) i=0
for db in $(dbs); do
    gen $((i * per)) "$per" >"$work/dump"
    # the writer needs b.db; its "last" key says where it continues (k<NREC+1>)
    [ "$db" = b.db ] && printf 'last\n%d\n' "$NREC" >>"$work/dump"
    t "$work/r_load" "$REL/db_load" -T -h "$env" "$db" <"$work/dump"
    i=$((i + 1))
done
rm -f "$work/dump"
[ "$NDB" -gt 1 ] || printf 'last\n%d\n' "$NREC" | "$REL/db_load" -T -h "$env" b.db
loadlog=$(logbytes "$env")
"$REL/db_checkpoint" -1 -h "$env"
"$REL/db_archive" -d -h "$env"
datab=$(cat "$env"/*.db | wc -c)
row "env: db_load time (sum over $NDB)" "$(col 1 "$work/r_load" | awk '{s+=$1} END{print s}')" - s "1 run"
row "env: db_load peak RSS (max)" "$(col 2 "$work/r_load" | sort -g | tail -1 | awk '{printf "%.0f", $1/1024}')" \
    "$(mb $((NREC / NDB * 1010)))" "MiB (anchor: dump size per run)" ""
row "env: database files" "$(mb "$datab")" "$(mb $((NREC * 1010)))" "MiB (anchor: key+value bytes)" ""
row "env: log written by db_load" "$(mb "$loadlog")" "$(mb $((NREC * 1010)))" "MiB (anchor: key+value bytes)" ""

# (c) writer commits/s on this environment, sync and --nosync.
say "c. writer commits/s, 3000 txns, sync and --nosync"
for _ in $(seq "$RUNS"); do
    sync; t "$work/r_wsync" "$REL/examples/writer" "$env" -n 3000
    sync; t "$work/r_wnosync" "$REL/examples/writer" "$env" -n 3000 --nosync
done
"$REL/db_checkpoint" -1 -h "$env"; "$REL/db_archive" -d -h "$env"
envb=$(du -sb "$env" | cut -f1)

# (a) full hot backup next to cp -r and cp -r && sync.
say "a. full db_hotbackup vs cp -r of $(mb "$envb") MiB"
for n in $(seq "$RUNS"); do
    rm -rf "$work/bk" "$work/cp"; sync
    t "$work/r_hb" "$REL/db_hotbackup" -h "$env" -b "$work/bk"
    rm -rf "$work/bk"; sync
    t "$work/r_cp" cp -r "$env" "$work/cp"
    rm -rf "$work/cp"; sync
    t "$work/r_cps" sh -c 'cp -r "$1" "$2" && sync' - "$env" "$work/cp"
done
rm -rf "$work/cp"
"$REL/db_hotbackup" -h "$env" -b "$work/bk"

# (b) -u after ~10 MB of new log, (e) its peak RSS.
say "b. db_hotbackup -u after 10 MB of new log (writer --nosync, then SIGKILL)"
for n in $(seq "$RUNS"); do
    grow "$env" $((10 << 20)) "$REL/examples/writer" "$env" --nosync
    sync; t "$work/r_hbu" "$REL/db_hotbackup" -u -h "$env" -b "$work/bk"
done

# (d) catastrophic recovery on a fresh cp -r copy.
say "d. db_recover -c on a cp -r copy"
grow "$env" $((10 << 20)) "$REL/examples/writer" "$env" --nosync
for n in $(seq "$RUNS"); do
    rm -rf "$work/rc"; cp -r "$env" "$work/rc"; sync
    rlog=$(logbytes "$work/rc")
    t "$work/r_rec" "$REL/db_recover" -c -h "$work/rc"
done
rm -rf "$work/rc" "$work/bk"

m() { col 1 "$1" | median; }
rss() { col 2 "$1" | sort -g | tail -1 | awk '{printf "%.1f", $1/1024}'; }
row "a: db_hotbackup full" "$(m "$work/r_hb")" "$(m "$work/r_cp")" "s (anchor: cp -r)" "$(all "$work/r_hb") vs $(all "$work/r_cp")"
row "a: db_hotbackup full vs cp -r && sync" "$(m "$work/r_hb")" "$(m "$work/r_cps")" "s (anchor: cp -r && sync)" "$(all "$work/r_cps")"
row "a: environment copied" "$(mb "$envb")" - MiB ""
row "b: db_hotbackup -u after 10 MB log" "$(m "$work/r_hbu")" "@OTHER@" "s (anchor: other size)" "$(all "$work/r_hbu")"
row "c: writer sync" "$(rate 3000 "$(m "$work/r_wsync")")" "@BDB_SYNC@" "txn/s (anchor: BDB 5.3)" "$(all "$work/r_wsync") s"
row "c: writer --nosync" "$(rate 3000 "$(m "$work/r_wnosync")")" "@BDB_NOSYNC@" "txn/s (anchor: BDB 5.3)" "$(all "$work/r_wnosync") s"
row "d: db_recover -c, $(mb "$rlog") MiB log" "$(m "$work/r_rec")" "@BDB_REC@" "s (anchor: BDB 5.3)" "$(all "$work/r_rec")"
row "d: recovery speed" "$(awk -v b="$rlog" -v s="$(m "$work/r_rec")" 'BEGIN{printf "%.0f", b/1048576/s}')" "@BDB_RECMB@" "MiB log/s" ""
row "e: db_hotbackup full peak RSS" "$(rss "$work/r_hb")" "@BDB_HBRSS@" "MiB (anchor: BDB 5.3)" ""
row "e: db_hotbackup -u peak RSS" "$(rss "$work/r_hbu")" "@BDB_HBURSS@" "MiB (anchor: BDB 5.3)" ""
row "e: db_recover -c peak RSS" "$(rss "$work/r_rec")" - MiB ""
rm -rf "$env"

# 3. The Berkeley DB 5.3 anchor: same data in one a.db, same writer load.
if [ "$BDB" = 1 ] && command -v cc >/dev/null && command -v db5.3_hotbackup >/dev/null &&
    cc -O2 -o "$work/bdb_env" "$BENCH/bdb_env.c" -ldb-5.3 2>/dev/null; then
    say "3. Berkeley DB 5.3: the same $NREC values, db5.3_hotbackup, db5.3_recover"
    be=$work/bdb
    mkdir "$be"
    t "$work/r_bload" "$work/bdb_env" "$be" load "$NREC"
    "$work/bdb_env" "$be" ckp
    for _ in $(seq "$RUNS"); do
        sync; /usr/bin/time -f "%e %M" -o "$work/.t" "$work/bdb_env" "$be" write 3000 2>/dev/null; cat "$work/.t" >>"$work/r_bsync"
        sync; /usr/bin/time -f "%e %M" -o "$work/.t" "$work/bdb_env" "$be" write 3000 nosync 2>/dev/null; cat "$work/.t" >>"$work/r_bnosync"
    done
    "$work/bdb_env" "$be" ckp
    benvb=$(du -sb "$be" | cut -f1)
    for n in $(seq "$RUNS"); do
        rm -rf "$work/bbk"; sync
        t "$work/r_bhb" db5.3_hotbackup -h "$be" -b "$work/bbk"
    done
    for n in $(seq "$RUNS"); do
        grow "$be" $((10 << 20)) "$work/bdb_env" "$be" write 100000000 nosync
        # a SIGKILLed BDB process leaves its regions busy: recover them first
        db5.3_recover -h "$be"
        "$work/bdb_env" "$be" write 1 2>/dev/null
        sync; t "$work/r_bhbu" db5.3_hotbackup -u -h "$be" -b "$work/bbk"
    done
    grow "$be" $((10 << 20)) "$work/bdb_env" "$be" write 100000000 nosync
    for n in $(seq "$RUNS"); do
        rm -rf "$work/brc"; cp -r "$be" "$work/brc"; rm -f "$work/brc"/__db.0*; sync
        brlog=$(logbytes "$work/brc")
        t "$work/r_brec" db5.3_recover -c -h "$work/brc"
    done
    rm -rf "$be" "$work/bbk" "$work/brc"
    row "a: db5.3_hotbackup full (BDB, $(mb "$benvb") MiB env)" "$(m "$work/r_bhb")" "$(m "$work/r_hb")" "s (anchor: ours)" "$(all "$work/r_bhb")"
    row "b: db5.3_hotbackup -u after 10 MB log (BDB)" "$(m "$work/r_bhbu")" "$(m "$work/r_hbu")" "s (anchor: ours)" "$(all "$work/r_bhbu")"
    row "env: BDB build, $NREC puts (1000/txn)" "$(m "$work/r_bload")" - s "1 run"
    sed -i -e "s/@BDB_SYNC@/$(rate 3000 "$(m "$work/r_bsync")")/" \
        -e "s/@BDB_NOSYNC@/$(rate 3000 "$(m "$work/r_bnosync")")/" \
        -e "s/@BDB_REC@/$(m "$work/r_brec") ($(mb "$brlog") MiB)/" \
        -e "s/@BDB_RECMB@/$(awk -v b="$brlog" -v s="$(m "$work/r_brec")" 'BEGIN{printf "%.0f", b/1048576/s}')/" \
        -e "s/@BDB_HBRSS@/$(rss "$work/r_bhb")/" -e "s/@BDB_HBURSS@/$(rss "$work/r_bhbu")/" "$tsv"
else
    say "3. Berkeley DB 5.3 anchor skipped (BDB=0, or no cc / libdb5.3-dev / db5.3-util)"
fi
sed -i 's/@BDB_[A-Z]*@/-/g' "$tsv"
other=$RESULTS/failover-$([ "$SIZE" = small ] && echo 1G || echo small).tsv
if [ -s "$other" ]; then
    o=$(awk -F'\t' '/^b: db_hotbackup -u/{print $2}' "$other")
    sed -i "s/@OTHER@/$o/" "$tsv"
    sed -i "s/^\(b: db_hotbackup -u[^\t]*\t[^\t]*\t\)-\t/\1$(awk -F'\t' '/^b: db_hotbackup -u/{print $2}' "$tsv")\t/" "$other"
else
    sed -i 's/@OTHER@/-/' "$tsv"
fi

echo
echo "failover.sh BENCH_SIZE=$SIZE, median of $RUNS, load average now $(cut -d' ' -f1-3 /proc/loadavg), drop_caches: $dc"
{
    printf 'row\tours\tanchor\tunit\truns\n'
    cat "$tsv"
} | column -t -s $'\t'
