#!/usr/bin/env bash
# Instructions per event under callgrind. Run from the repository's root:
#   tools/callgrind/measure.sh           append, replay, stream reads, one-event commits
#   tools/callgrind/measure.sh follow    following a writer
# append/replay: callgrind totals at 20,000 and 40,000 events, the difference divided by
# 20,000 (fixed costs cancel); the same for the ideal log (Benchmarks/Sources/CIdealLog), the
# bound: each event's fields packed (ideal_log.h) in frames, Zstandard level −1, CRC-32C, pwrite, fdatasync.
# follow: a read-only reader's instructions and allocations (malloc calls) per new one-event
# commit, collected only inside Harness.follow (refresh and the read of the new events), beside a
# 1,000-event and a 1,000,000-event store: totals at 100 and 200 commits, difference / 100; and
# the instructions of the head record the writer writes after each group commit's sync.
# HARNESS_EVENTS=synthetic tools/callgrind/measure.sh: the same counts with the Benchmarks
# package's events (SyntheticEvents) instead of the harness's more repetitive payloads.
# To compare with an older version, check it out elsewhere, copy tools/callgrind there and run
# it there. valgrind 3.19 cannot read Swift 6.3's debug info, hence the stripped copy.
set -euo pipefail
cd "$(dirname "$0")"
swift build -c release >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
strip --strip-debug .build/release/Harness -o "$work/harness"
count() { SWIFT_BACKTRACE=enable=no valgrind --tool=callgrind --callgrind-out-file="$work/out" "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
# Calls to malloc in a callgrind output file (its names are compressed: "(id) name" once, then "(id)").
mallocs() {
    awk '/^c?fn=/ { name = $0; sub(/^c?fn=\([0-9]+\) ?/, "", name); id = $0; sub(/^c?fn=/, "", id); sub(/\).*/, ")", id);
                    if (name != "") names[id] = name; if ($0 ~ /^cfn=/) current = names[id]; else current = "" }
         /^calls=/ { if (current == "malloc") { split($0, parts, /[= ]/); total += parts[2] } }
         END { print total + 0 }' "$1"
}
if [[ ${1:-} == follow ]]; then
    for size in 1000 1000000; do
        rm -rf "$work/store"
        "$work/harness" append "$size" "$work/store" > /dev/null
        cp -r "$work/store" "$work/pristine"
        declare -A instructions allocations
        for commits in 100 200; do
            rm -rf "$work/store" && cp -r "$work/pristine" "$work/store"
            instructions[$commits]=$(count --toggle-collect='*6follow_4next*' "$work/harness" follow $commits "$work/store")
            allocations[$commits]=$(mallocs "$work/out")
        done
        rm -rf "$work/pristine"
        echo "follow beside $size events: $(( (instructions[200] - instructions[100]) / 100 )) instructions, $(( (allocations[200] - allocations[100]) / 100 )) allocations per commit"
    done
    # The durable-end mark: the head record written after every group commit's sync (200 commits).
    rm -rf "$work/store"
    head=$(count --toggle-collect='*8HeadFileC5write_7durably*' "$work/harness" append 20000 "$work/store")
    echo "head record: $(( head / 200 )) instructions per group commit (and one 64-byte pwrite)"
    exit 0
fi
declare -A per
for mode in append replay replay-copies ideal-append ideal-replay; do
    small=0; large=0
    for n in 20000 40000; do
        case $mode in
            append) rm -rf "$work/store-$n"; total=$(count "$work/harness" append $n "$work/store-$n") ;;
            replay | replay-copies) total=$(count "$work/harness" $mode "$work/store-$n") ;;
            ideal-append) rm -f "$work/ideal-$n"; total=$(count "$work/harness" ideal-append $n "$work/ideal-$n") ;;
            ideal-replay) total=$(count "$work/harness" ideal-replay "$work/ideal-$n") ;;
        esac
        if [[ $n == 20000 ]]; then small=$total; else large=$total; fi
    done
    per[$mode]=$(( (large - small) / 20000 ))
    echo "$mode: ${per[$mode]} instructions per event"
done
# stream reads (lending), per event read: 4,000 and 8,000 events in 2-event commits over 100
# streams, every stream read, only the reads counted (--toggle-collect); the same with 100-event
# commits (40,000 and 80,000 events: 4 and 8 frames per stream), with this harness's events and
# with the Benchmarks package's.
for size in 2 100; do
    small=0; large=0
    for n in $(( 2000 * size )) $(( 4000 * size )); do
        [[ $size == 100 ]] && n=$(( n / 5 ))
        rm -rf "$work/interleaved-$n"
        total=$(count --toggle-collect='*10readStream*' "$work/harness" interleaved $n "$work/interleaved-$n" $size)
        if [[ $small == 0 ]]; then small=$total; first=$n; else large=$total; fi
    done
    echo "stream read from $size-event frames: $(( (large - small) / (n - first) )) instructions per event"
done
# The same with the Benchmarks package's events (its stream-replay scenarios' data), 100-event frames.
small=$(count --toggle-collect='*10readStream*' "$work/harness" interleaved 40000 "$work/synthetic-small" 100 synthetic)
large=$(count --toggle-collect='*10readStream*' "$work/harness" interleaved 80000 "$work/synthetic-large" 100 synthetic)
echo "stream read from 100-event frames, the benchmark's events: $(( (large - small) / 40000 )) instructions per event"
# one-event commits, 64 in flight (the group commits 64 concurrent writers make): 5,000 and
# 10,000 commits, the difference per commit.
small=$(count "$work/harness" singles 5000 "$work/singles-small")
large=$(count "$work/harness" singles 10000 "$work/singles-large")
echo "one-event commits, 64 in flight: $(( (large - small) / 5000 )) instructions per commit"
# 2-event commits sent one at a time, each awaited (most applications' commands): each is a
# frame of its own, compressed with the segment's dictionary. Per commit: the whole run less
# its reads (counted alone on the same store, HARNESS_REUSE=1), at 4,000 and 8,000 events, the
# difference over 2,000 commits.
events=$([[ ${HARNESS_EVENTS:-} == synthetic ]] && echo synthetic || echo harness)
for n in 4000 8000; do
    rm -rf "$work/small-commits-$n"
    all=$(count "$work/harness" interleaved $n "$work/small-commits-$n" 2 $events)
    reads=$(HARNESS_REUSE=1 count "$work/harness" interleaved $n "$work/small-commits-$n" 2 $events)
    if [[ $n == 4000 ]]; then small=$(( all - reads )); else large=$(( all - reads )); fi
done
echo "2-event commits, one at a time: $(( (large - small) / 2000 )) instructions per commit"
echo "append ÷ ideal log: $(( per[append] * 100 / per[ideal-append] )) %; replay ÷ ideal log: $(( per[replay] * 100 / per[ideal-replay] )) %"
