#!/bin/sh
# The device binary must not link the lab server or test helpers, and the
# leaf packages (dhcp, tpm, image, scripts) must not import the agent.
set -eu
bad=$(go list -deps ./cmd/sztp-agent | grep -E '^github.com/sztp-agent/sztp-agent/(lab|cmd/sztp-lab)' || true)
if [ -n "$bad" ]; then echo "cmd/sztp-agent links: $bad"; exit 1; fi
for leaf in dhcp tpm image scripts; do
  [ -d "$leaf" ] || continue
  if go list -deps "./$leaf" | grep -q '^github.com/sztp-agent/sztp-agent/agent$'; then
    echo "$leaf imports agent"; exit 1
  fi
done
if go list -deps ./agent/... | grep -q '^github.com/sztp-agent/sztp-agent/internal/cli$'; then
  echo "agent imports the command line"; exit 1
fi
echo "dependencies of cmd/sztp-agent outside the standard library:"
go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./cmd/sztp-agent | grep -v '^github.com/sztp-agent/' | sed 's/^/  /'
