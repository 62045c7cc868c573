#!/bin/sh
# Sets up and tears down a pair of network namespaces for the dns package's
# mDNS tests: a server namespace (mDNS responder + NSD) and a client
# namespace (the discovery code), joined by one veth pair.
#
#   tools/dns-netns.sh setup ID      create <ID>-srv and <ID>-cli
#   tools/dns-netns.sh teardown ID   kill what runs in them, delete them (idempotent)
#
# ID must be unique per test run (the Go tests use pid + counter). The veth
# ends are created directly inside the namespaces, so their names never
# meet in the host namespace. Only the documentation prefixes 198.51.100.0/24
# and (link-local) IPv6 are used, and nothing is attached to the host
# namespace: multicast and unicast test traffic stays inside the pair.
set -eu

usage() {
	echo "usage: $0 setup|teardown ID" >&2
	exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
id=$2
case $id in
*[!A-Za-z0-9_-]* | "") echo "$0: ID must match [A-Za-z0-9_-]+" >&2; exit 2 ;;
esac
srv="$id-srv"
cli="$id-cli"

teardown() {
	for ns in "$cli" "$srv"; do
		[ -e "/run/netns/$ns" ] || continue
		# Only processes the tests started live in these namespaces;
		# kill them by pid so that deleting the namespace frees all.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill "$pid" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
	done
}

case $cmd in
setup)
	# A half-built pair must not outlive a failed setup.
	trap 'teardown' EXIT
	ip netns add "$srv"
	ip netns add "$cli"
	ip link add veth-srv netns "$srv" type veth peer name veth-cli netns "$cli"
	for pair in "$srv:veth-srv:198.51.100.1" "$cli:veth-cli:198.51.100.2"; do
		ns=${pair%%:*}
		rest=${pair#*:}
		dev=${rest%%:*}
		addr=${rest#*:}
		# Link-local IPv6 must be usable at once for ff02::fb; no DAD.
		ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.accept_dad=0"
		ip -n "$ns" link set lo up
		ip -n "$ns" link set "$dev" multicast on
		ip -n "$ns" addr add "$addr/24" dev "$dev"
		ip -n "$ns" link set "$dev" up
		# Lets an mDNS query without an explicit interface find one.
		ip -n "$ns" route add 224.0.0.0/4 dev "$dev"
	done
	trap - EXIT
	echo "SRV_NS=$srv CLI_NS=$cli SRV_IF=veth-srv CLI_IF=veth-cli SRV_ADDR=198.51.100.1 CLI_ADDR=198.51.100.2"
	;;
teardown)
	teardown
	;;
*)
	usage
	;;
esac
