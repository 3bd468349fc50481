#!/bin/bash
# splice.sh OUT RESULTS: replaces the relief section of RESULTS (between
# its begin and end markers, appended when missing) with the tables the
# relief harness wrote to OUT. Other sections of the file are left alone.
set -euo pipefail
out=$1 results=$2
begin='<!-- relief:begin (make relief writes this section) -->'
end='<!-- relief:end -->'
section=$(mktemp)
trap 'rm -f "$section"' EXIT
{
  echo "$begin"
  echo "## Relief: what removal gives back ($(uname -r), $(date -u +%Y-%m-%d))"
  echo
  echo "Written by \`make relief\` (harness bench/relief, on $(nproc) CPUs; load average when written: $(cut -d' ' -f1-3 /proc/loadavg)). What each row measures: docs/benchmarks.md, \"Relief\"."
  echo
  for part in cadvisor:"cAdvisor (kubelet's stats engine), whole-pod leaks, one \`cgroupcleand clean\`" \
      forms:"cAdvisor, the other leak forms (1 run)" \
      memstat:"memory.stat over dying memcgs: the remedies on identical fresh setups" \
      peers:"Peers on the same trees"; do
    f=$out/relief-${part%%:*}.md
    [ -s "$f" ] || continue
    echo "### ${part#*:}"
    echo
    cat "$f"
    echo
  done
  echo "$end"
} > "$section"
if grep -qF "$begin" "$results"; then
  awk -v b="$begin" -v e="$end" -v f="$section" '
    $0 == b { while ((getline l < f) > 0) print l; skip = 1; next }
    $0 == e { skip = 0; next }
    !skip' "$results" > "$results.tmp"
  mv "$results.tmp" "$results"
else
  { echo; cat "$section"; } >> "$results"
fi
