#!/usr/bin/env bash
# Instructions per event, appended and replayed: callgrind totals at 20,000 and 40,000 events,
# the difference divided by 20,000 (fixed costs cancel). Run from the repository's root:
#   tools/callgrind/measure.sh
# To compare with an older version, check it out elsewhere, copy tools/callgrind there and run
# it there. valgrind 3.19 cannot read Swift 6.3's debug info, hence the stripped copy.
set -euo pipefail
cd "$(dirname "$0")"
swift build -c release >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
strip --strip-debug .build/release/Harness -o "$work/harness"
count() { SWIFT_BACKTRACE=enable=no valgrind --tool=callgrind --callgrind-out-file="$work/out" "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
for mode in append replay; do
    small=0; large=0
    for n in 20000 40000; do
        [[ $mode == append ]] && rm -rf "$work/store-$n"
        if [[ $mode == append ]]; then total=$(count "$work/harness" append $n "$work/store-$n"); else total=$(count "$work/harness" replay "$work/store-$n"); fi
        if [[ $n == 20000 ]]; then small=$total; else large=$total; fi
    done
    echo "$mode: $(( (large - small) / 20000 )) instructions per event"
done
