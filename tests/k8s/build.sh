#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, and kube-controller-manager for
# garbage collection; pinned in go.mod) into a cache
# outside target/, keyed by the pins, and prints the directory holding the binaries.
# A second run finds them and returns at once. Needs Go (go.mod names the version) and
# the Go module proxy; nothing is downloaded from any other site.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/etcd/main.go" | sha256sum | cut -c1-12)"
version="$(awk '$1=="k8s.io/kubernetes" {print $2; exit}' "$here/go.mod")"
cache="${PRISM_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prism/control-plane}/$version-$key"
mkdir -p "$cache"
# One build at a time (test binaries start in parallel); the others wait and reuse it.
exec 9>"$cache/.lock"
flock 9
if [ -x "$cache/kube-apiserver" ] && [ -x "$cache/etcd" ] && [ -x "$cache/kube-controller-manager" ]; then
    echo "$cache"
    exit 0
fi
tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cd "$here"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
start=$(date +%s)
echo "building etcd, kube-apiserver and kube-controller-manager $version into $cache (once per pin; minutes)" >&2
go build -trimpath -ldflags='-s -w' -o "$tmp/etcd" ./etcd >&2
for cmd in kube-apiserver kube-controller-manager; do
    go build -trimpath -ldflags='-s -w' -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd" >&2
done
mv "$tmp/etcd" "$tmp/kube-apiserver" "$tmp/kube-controller-manager" "$cache/"
echo "built in $(( $(date +%s) - start )) s" >&2
echo "$cache"
