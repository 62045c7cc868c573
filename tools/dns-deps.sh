#!/bin/sh
# Installs the Debian packages the dns package's integration tests need:
# nsd (the real authoritative server the unicast tests drive) and iproute2
# (`ip netns`, veth for the mDNS tests). Safe to run repeatedly; does
# nothing when both are present. Run as root (CI is).
set -eu
need=""
command -v nsd >/dev/null 2>&1 || need="$need nsd"
command -v ip >/dev/null 2>&1 || need="$need iproute2"
[ -z "$need" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $need
# The package enables an nsd service; the tests start their own instances
# and must not share port 53 or state with a system one. Without systemd
# (containers) nothing was started; with it, stop it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nsd 2>/dev/null; then
	systemctl stop nsd || true
fi
