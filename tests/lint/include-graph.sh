#!/bin/bash
# include-graph.sh — daemon/bus/ stays layered: no cycle among its modules' #include "bus/..." lines,
# and no .c file there above 700 lines.
#
# A module is a .c and its own .h (name.c + name.h); a header with no .c (state.h) is a module of its own.
# An edge A -> B is an `#include "bus/B.h"` in A.c or A.h. tsort(1) fails on a cycle and names it.
set -u
cd "$(dirname "$0")/../.."
dir=daemon/bus
max_lines=700
fail=0

edges=$(for f in "$dir"/*.c "$dir"/*.h; do
	m=$(basename "$f"); m=${m%.*}
	echo "$m $m" # every module is a node, even one that includes nothing
	sed -n 's|^#include "bus/\([A-Za-z0-9_]*\)\.h".*|\1|p' "$f" | while read -r dep; do
		[ "$dep" = "$m" ] || echo "$m $dep"
	done
done)
if ! out=$(tsort <<<"$edges" 2>&1 >/dev/null) || [ -n "$out" ]; then
	echo "include-graph: $dir has an include cycle (a module and its own header count as one):" >&2
	sed 's/^tsort: /  /' <<<"$out" >&2
	fail=1
fi

for f in "$dir"/*.c; do
	n=$(wc -l <"$f")
	if [ "$n" -gt "$max_lines" ]; then
		echo "include-graph: $f has $n lines (at most $max_lines: split it by job)" >&2
		fail=1
	fi
done

[ $fail -eq 0 ] && echo "include-graph: $dir: $(ls "$dir"/*.c | wc -l) .c files, no include cycle, none above $max_lines lines"
exit $fail
