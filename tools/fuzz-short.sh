#!/bin/sh
# Runs every Go fuzz target of the module for a short time each.
set -eu
dur=${1:-20s}
for pkg in $(go list ./...); do
  for t in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "== $pkg $t ($dur)"
    go test -run '^$' -fuzz "^$t\$" -fuzztime "$dur" "$pkg"
  done
done
