#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600) with cargo fuzz on nightly,
# starting from seeds/<target>. Findings land in artifacts/<target>/; copy each into
# regressions/<target>/ so the normal test suite replays it.
#   fuzz/run.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(gotemplate fasttemplate handlebars spec glob clusters)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -O "${targets[@]/#/}" 2>/dev/null || cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  start=$(date +%s)
  # A crash stops libFuzzer: go on from the same corpus until the time is used.
  while [ $(( $(date +%s) - start )) -lt "$secs" ]; do
    left=$(( secs - ($(date +%s) - start) ))
    cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$left" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 | tail -n 30
  done
  echo "== $t: $(ls "artifacts/$t" | wc -l) findings, $(ls "corpus/$t" | wc -l) corpus entries"
done
