#!/usr/bin/env bash
# Soak: convert and hunt a generated dataset while the process is killed (SIGKILL) every few
# seconds and restarted, until done; then compare with an uninterrupted run.
#
#   bash benches/soak.sh [SIZE] [WORK] [FILES]     (defaults: 10GB target/soak 40)
#
# The input is SIZE of Winlogbeat NDJSON from `quarry gen`, split into FILES files, converted
# one file per `quarry convert` (a nightly job's shape: each run commits whole); the hunt is
# `quarry hunt --state`, which resumes. Each command is restarted until it exits by itself.
# Prints the restarts survived, the hits compared and the peak memory of any one process.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-10GB}
WORK=${2:-target/soak}
FILES=${3:-40}
Q=target/release/quarry
cargo build --release --quiet
rm -rf "$WORK"
mkdir -p "$WORK/in"
echo "generating $SIZE of NDJSON in $FILES files..."
$Q gen --size "$SIZE" --days 30 --hosts 500 --out "$WORK/gen" --ndjson "$WORK/all.ndjson" >/dev/null
rm -rf "$WORK/gen"
split -n "l/$FILES" -d -a 4 --additional-suffix=.ndjson "$WORK/all.ndjson" "$WORK/in/part-"
rm "$WORK/all.ndjson"

PEAK=0
RESTARTS=0
# Runs "$@" under GNU time until it exits by itself, killing it after a random 0.5-3 s each try
# (half a second longer after each kill of the same command, so that every step can end).
survive() {
    local extra=0
    while true; do
        /usr/bin/time -f "%M" -o "$WORK/rss" "$@" >/dev/null 2>"$WORK/err" &
        local pid=$!
        local limit=$((500 + RANDOM % 2500 + extra))
        local waited=0
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$limit" ]; do
            sleep 0.05
            waited=$((waited + 50))
        done
        if kill -0 "$pid" 2>/dev/null; then
            # Kill quarry itself, the child of time.
            pkill -KILL -P "$pid" || true
            wait "$pid" 2>/dev/null || true
            RESTARTS=$((RESTARTS + 1))
            extra=$((extra + 500))
            continue
        fi
        local status=0
        wait "$pid" || status=$?
        local rss
        rss=$(tail -n 1 "$WORK/rss" | tr -dc 0-9)
        [ -n "$rss" ] && [ "$rss" -gt "$PEAK" ] && PEAK=$rss
        if [ "$status" -ne 0 ]; then
            echo "failed ($status): $*"; cat "$WORK/err"; exit 1
        fi
        return 0
    done
}

started=$(date +%s)
for f in "$WORK"/in/*.ndjson; do
    survive $Q convert --quiet "$f" --out "$WORK/soaked"
done
echo "converted under kills: $RESTARTS restarts so far"
survive $Q hunt --quiet --rules datasets/rules --data "$WORK/soaked" --state "$WORK/state" \
    --format jsonl --out "$WORK/soaked.jsonl"
soaked=$(( $(date +%s) - started ))
echo "hunted under kills: $RESTARTS restarts in all, ${soaked}s"

# The uninterrupted run.
started=$(date +%s)
$Q convert --quiet "$WORK"/in/*.ndjson --out "$WORK/plain" >/dev/null
/usr/bin/time -f "%M" -o "$WORK/rss" $Q hunt --quiet --rules datasets/rules --data "$WORK/plain" \
    --format jsonl --out "$WORK/plain.jsonl"
plain=$(( $(date +%s) - started ))
# Hits name their dataset and part; compare what they say of the events.
python3 - "$WORK/soaked.jsonl" "$WORK/plain.jsonl" <<'EOF'
import json, sys
def hits(path):
    out = []
    with open(path) as f:
        for line in f:
            h = json.loads(line)
            for k in ("dataset", "file", "row"):
                h.pop(k)
            out.append(json.dumps(h, sort_keys=True))
    return sorted(out)
a, b = hits(sys.argv[1]), hits(sys.argv[2])
print(f"hits: {len(a)} under kills, {len(b)} uninterrupted, equal: {a == b}")
sys.exit(0 if a == b else 1)
EOF
echo "peak memory of any one process: $((PEAK / 1024)) MiB; uninterrupted run ${plain}s, soaked ${soaked}s"
