#!/usr/bin/env bash
# Interleaved A/B of two compiled variants of the same networks, in one run, by one
# runtime: for every A_DIR/NAME.bin and B_DIR/NAME.bin, ROUNDS rounds of A then B at each
# thread count, each `secc run --bench 30 --warmup 5` (the median of 30 runs); prints the
# median of the round medians, B/A, and in how many rounds B was faster.
#   benches/ab.sh A_DIR B_DIR [ROUNDS] [THREADS...]
# Make the variants with `secc NET.onnx -o A_DIR/NET.bin` from two compilers, or one
# compiler and `--passes` (e.g. the default list without one lowering pass).
set -euo pipefail
a=$1 b=$2 rounds=${3:-5}
shift $(( $# < 3 ? $# : 3 ))
threads=${*:-1 2}
secc=${SECC:-target/release/secc}
log=$(mktemp)
for t in $threads; do
  for f in "$a"/*.bin; do
    n=$(basename "$f" .bin)
    for _ in $(seq "$rounds"); do
      for v in A B; do
        dir=$a; [ "$v" = B ] && dir=$b
        m=$("$secc" run "$dir/$n.bin" --random-inputs --threads "$t" --bench 30 --warmup 5 2>&1 \
          | tail -1 | awk '{print $5}')
        echo "$t $n $v $m" >> "$log"
      done
    done
  done
done
python3 - "$log" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    t, n, v, m = line.split()
    d[(t, n, v)].append(float(m))
print("| network | threads | A ms | B ms | B / A | B faster in |")
print("|---|---|---|---|---|---|")
for (t, n, v) in sorted(k for k in d if k[2] == "A"):
    a, b = d[(t, n, "A")], d[(t, n, "B")]
    ma, mb = statistics.median(a), statistics.median(b)
    wins = sum(y < x for x, y in zip(a, b))
    print(f"| {n} | {t} | {ma / 1000:.2f} | {mb / 1000:.2f} | {mb / ma:.3f} | {wins}/{len(a)} |")
PY
rm -f "$log"
