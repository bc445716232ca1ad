#!/usr/bin/env bash
# Builds the tenant-tiers plugin, records its sha256 in a copy of plugins.yaml, and
# renders the example. Usage: examples/plugin-tenants/run.sh [prism generate flags...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
cargo build --quiet --release --manifest-path "$root/plugins/Cargo.toml" -p tenant-tiers --target wasm32-wasip1
wasm="$root/plugins/target/wasm32-wasip1/release/tenant-tiers.wasm"
sum="$(sha256sum "$wasm" | cut -d' ' -f1)"
defs="$(mktemp -d)/plugins.yaml"
sed -e "s|SHA256_OF_YOUR_BUILD|$sum|" -e "s|path: .*|path: $wasm|" "$here/plugins.yaml" > "$defs"
exec cargo run --quiet --manifest-path "$root/Cargo.toml" -- generate "$here/applicationset.yaml" --plugins "$defs" "$@"
