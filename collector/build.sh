#!/usr/bin/env bash
# Build the fleet Collector from collector/builder-config.yaml with the OpenTelemetry Collector Builder,
# into a cache folder outside the source tree, keyed by the manifest's hash; print the binary's path.
# A cached binary is reused as is (the build takes minutes on 2 cores; the cached run, milliseconds).
#
#   collector/build.sh            # prints e.g. ~/.cache/sqreen_otel/otelcol-<hash>/otelcol-sqreen
#   SQREEN_OTEL_COLLECTOR_CACHE=/some/dir collector/build.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
manifest="$here/builder-config.yaml"
builder_version="v0.161.0"   # the release train of the manifest
cache="${SQREEN_OTEL_COLLECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sqreen_otel}"
hash="$( (cat "$manifest"; echo "$builder_version") | sha256sum | cut -c1-16)"
work="$cache/otelcol-$hash"
binary="$work/otelcol-sqreen"

if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"   # the official Go install, often left off PATH
fi
if ! command -v go >/dev/null 2>&1; then
  echo "collector/build.sh: the Go toolchain (go) is needed to build the Collector" >&2
  exit 1
fi

mkdir -p "$cache"
exec 9>"$cache/build.lock"          # one build at a time (CI and a test fixture may race)
flock 9
if [ -x "$binary" ]; then           # built by whoever held the lock
  echo "$binary"
  exit 0
fi

start=$(date +%s)
builder="$cache/builder-$builder_version/builder"
if [ ! -x "$builder" ]; then
  GOBIN="$cache/builder-$builder_version" go install "go.opentelemetry.io/collector/cmd/builder@$builder_version" >&2
fi
tmp="$work.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$manifest" "$tmp/builder-config.yaml"
(cd "$tmp" && "$builder" --config builder-config.yaml >&2)
mv "$tmp/dist/otelcol-sqreen" "$tmp/otelcol-sqreen.bin"
rm -rf "$work"
mkdir -p "$work"
mv "$tmp/otelcol-sqreen.bin" "$binary"
cp "$manifest" "$work/builder-config.yaml"
rm -rf "$tmp"
echo "collector/build.sh: built $binary in $(( $(date +%s) - start ))s" >&2
echo "$binary"
