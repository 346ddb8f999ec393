#!/usr/bin/env bash
# make demo: the main job end to end. A writer commits continuously into a
# primary environment; db_hotbackup copies it and keeps the copy current
# with -u while the writer runs; the primary then "fails" (SIGKILL), the
# copy is brought up to date one last time, recovered and opened, and it
# holds exactly what the primary committed.
#
# Needs the debug tools and the writer example on PATH / at WRITER
# (the Makefile's demo target builds them).
set -euo pipefail

WRITER=${WRITER:-target/debug/examples/writer}
work=$(mktemp -d "${TMPDIR:-/tmp}/bdbtools-demo.XXXXXX")
prim=$work/primary
bk=$work/backup
wpid=
cleanup() {
    [ -n "$wpid" ] && kill -9 "$wpid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

acked() { tail -n 1 "$work/writer.out" 2>/dev/null | sed -n 's/^ACK //p'; }
wait_for() { # wait until the writer acknowledged at least $1 commits
    for _ in $(seq 1 600); do
        n=$(acked); [ -n "$n" ] && [ "$n" -ge "$1" ] && return 0
        sleep 0.05
    done
    echo "demo: the writer stalled" >&2; exit 1
}
# Records in a.db: the lines between HEADER=END and DATA=END, two a record.
records() { awk '/^HEADER=END/{h=1;next} /^DATA=END/{h=0} h{n++} END{print n/2}' "$@"; }
count() { db_dump -p -h "$1" a.db | records; }
point() { sed -n 's/^end //p' "$bk/__db.manifest"; }

mkdir "$prim"
echo "== 1. A writer commits into the primary ($prim)"
"$WRITER" "$prim" -i 2 -c 250 --lg-max 262144 >"$work/writer.out" &
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
echo "== Done: no acknowledged commit was lost."
