#!/usr/bin/env bash
# make demo: the main job end to end. A writer commits continuously into a
# primary environment; db_hotbackup copies it and keeps the copy current
# with -u while the writer runs; the primary then "fails" (SIGKILL), the
# copy is brought up to date one last time, recovered and opened, and it
# holds exactly what the primary committed.
#
# Then the same with a continuous standby: db_replicate -M ships a second
# writer's log into a directory store while db_replicate keeps a standby
# from it; db_stat -r shows the lag; the primary is killed, the master
# ships what was durable and stops, the client catches up and stops, and
# the standby is recovered and opened as the new primary holding every
# acknowledged commit (the procedure of db_hotfailover(7)).
#
# Needs the debug tools and the writer example on PATH / at WRITER
# (the Makefile's demo target builds them).
set -euo pipefail

WRITER=${WRITER:-target/debug/examples/writer}
work=$(mktemp -d "${TMPDIR:-/tmp}/bdbtools-demo.XXXXXX")
prim=$work/primary
bk=$work/backup
wpid= mpid= cpid=
cleanup() {
    for p in $wpid $mpid $cpid; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

out=$work/writer.out
acked() { tail -n 1 "$out" 2>/dev/null | sed -n 's/^ACK //p'; }
wait_for() { # wait until the writer acknowledged at least $1 commits
    for _ in $(seq 1 600); do
        n=$(acked); [ -n "$n" ] && [ "$n" -ge "$1" ] && return 0
        sleep 0.05
    done
    echo "demo: the writer stalled" >&2; exit 1
}
# The value of one `db_stat -r` line (the text after the tab is its label).
stat_r() { db_stat -r -h "$1" | awk -F'\t' -v l="$2" '$2 == l { print $1 }'; }
now() { date +%s.%N; }
# Records in a.db: the lines between HEADER=END and DATA=END, two a record.
records() { awk '/^HEADER=END/{h=1;next} /^DATA=END/{h=0} h{n++} END{print n/2}' "$@"; }
count() { db_dump -p -h "$1" a.db | records; }
point() { sed -n 's/^end //p' "$bk/__db.manifest"; }

mkdir "$prim"
echo "== 1. A writer commits into the primary ($prim)"
"$WRITER" "$prim" -i 2 -c 250 --lg-max 262144 >"$out" &
wpid=$!
wait_for 300
echo "   $(acked) transactions committed so far; it keeps going"

echo "== 2. db_hotbackup -h primary -b backup   (while the writer runs)"
db_hotbackup -h "$prim" -b "$bk"
echo "   backup holds $(count "$bk") records, consistent at LSN $(point)"

for i in 1 2 3; do
    sleep 0.7
    db_hotbackup -u -h "$prim" -b "$bk"
    echo "== 3.$i db_hotbackup -u: backup holds $(count "$bk") records (LSN $(point)); writer at $(acked)"
done

echo "== 4. The primary fails: SIGKILL to the writer"
kill -9 "$wpid"; wait "$wpid" 2>/dev/null || true; wpid=
last=$(acked)
echo "   the writer had acknowledged $last commits"

echo "== 5. Fail over: a last db_hotbackup -u from the primary's disks, db_recover -c, open"
db_hotbackup -u -h "$prim" -b "$bk"
db_recover -c -h "$bk"
db_dump -p -h "$prim" a.db >"$work/primary.dump"
db_dump -p -h "$bk" a.db >"$work/backup.dump"
if cmp -s "$work/primary.dump" "$work/backup.dump"; then
    echo "   db_dump of primary and backup are identical: $(records "$work/backup.dump") records"
else
    echo "demo: the backup differs from the primary" >&2
    diff "$work/primary.dump" "$work/backup.dump" | head >&2
    exit 1
fi
"$WRITER" "$bk" -n 5 >"$work/writer2.out"
echo "   the backup now serves as primary: 5 more commits, last is $(tail -n1 "$work/writer2.out" | sed 's/ACK //')"
[ "$(tail -n1 "$work/writer2.out" | sed 's/ACK //')" -ge "$last" ]
echo "== Hot backup done: no acknowledged commit was lost."

prim=$work/primary2
sb=$work/standby
store=$work/store
out=$work/writer3.out
mkdir "$prim" "$sb" "$store"
echo "repl_store $store" >"$prim/DB_CONFIG"
echo "repl_store $store" >"$sb/DB_CONFIG"
echo "== 6. A continuous standby: a writer commits into $prim;"
echo "   db_replicate -M ships its log into the store $store, db_replicate keeps $sb"
"$WRITER" "$prim" -i 2 -c 250 --lg-max 262144 >"$out" &
wpid=$!
wait_for 200
db_replicate -M -h "$prim" &
mpid=$!
for _ in $(seq 1 600); do # a client needs the store the master makes
    base=$(stat_r "$store" "Newest base" 2>/dev/null || true)
    [ -n "$base" ] && [ "$base" != - ] && break
    sleep 0.05
done
db_replicate -h "$sb" &
cpid=$!
for i in 1 2 3; do
    sleep 1
    echo "== 6.$i db_stat -r -h standby: writer at $(acked); shipped $(stat_r "$sb" "Shipped LSN (end of the store's log)"), applied $(stat_r "$sb" "Next LSN expected"), lag $(stat_r "$sb" "Lag in seconds") s"
done

echo "== 7. The primary fails: SIGKILL to the writer"
kill -9 "$wpid"; wait "$wpid" 2>/dev/null || true; wpid=
killed=$(now)
last=$(acked)
echo "   the writer had acknowledged $last commits"

echo "== 8. Fail over: stop the master (it ships what the primary made durable), let the client catch up and stop it"
kill -INT "$mpid"; wait "$mpid" 2>/dev/null || true; mpid=
shipped=$(stat_r "$prim" "Shipped LSN (end of the store's log)")
for _ in $(seq 1 600); do
    [ "$(stat_r "$sb" "Next LSN expected")" = "$shipped" ] && break
    sleep 0.05
done
applied=$(stat_r "$sb" "Next LSN expected")
kill -INT "$cpid"; wait "$cpid" 2>/dev/null || true; cpid=
echo "   the master shipped up to $shipped; the standby applied up to $applied"
[ "$applied" = "$shipped" ] || { echo "demo: the standby did not catch up" >&2; exit 1; }
err=$(stat_r "$sb" "Last error")
[ "$err" = "-" ] || { echo "demo: the client reported: $err" >&2; exit 1; }

echo "== 9. db_recover -c the standby and open it as the new primary"
db_recover -c -h "$sb"
"$WRITER" "$sb" -n 1 >"$work/writer4.out"
took=$(echo "$(now) - $killed" | bc)
first=$(sed -n 's/^ACK //p' "$work/writer4.out")
echo "   it accepted commit $first $(printf '%.1f' "$took") s after the primary was killed"
# The dead primary's content (its log replayed read-only) against the
# standby's without the new commit, which sorts last.
db_dump -p -h "$prim" a.db >"$work/primary2.dump"
db_dump -p -h "$sb" a.db >"$work/standby.dump"
had=$(records "$work/primary2.dump")
if [ "$first" -eq "$((had + 1))" ] && [ "$had" -ge "$last" ] &&
    { head -n -3 "$work/standby.dump"; echo DATA=END; } | cmp -s - "$work/primary2.dump"; then
    echo "   before it the standby held exactly the primary's $had records, and the writer had acknowledged $last"
else
    echo "demo: the standby does not hold exactly what the primary committed" >&2
    exit 1
fi
echo "== Done: the standby took over with every acknowledged commit, and nothing else."
