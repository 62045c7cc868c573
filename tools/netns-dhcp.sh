#!/bin/sh
# Sets up and tears down an isolated pair of network namespaces for DHCP
# tests: a server namespace and a client namespace joined by one veth pair.
#
#   tools/netns-dhcp.sh setup ID      create <ID>-srv and <ID>-cli, print shell variables
#   tools/netns-dhcp.sh teardown ID   kill what runs in them and delete them (idempotent)
#
# ID must be unique per test run (the Go tests use pid + counter) so that
# parallel runs never share a namespace. The veth ends are created directly
# inside the namespaces, so their names (veth-srv, veth-cli) never meet in
# the host namespace and cannot collide either.
#
# Only documentation prefixes are used (192.0.2.0/24, 2001:db8:1::/64), no
# route leaves the pair, and nothing is attached to the host's namespace:
# test traffic stays between the two namespaces.
#
# The client end gets no address besides its IPv6 link-local one; the tests
# decide whether to add one. DAD is off on both ends: otherwise the
# link-local address stays tentative for ~2 s and DHCPv6 cannot bind.
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
		# Servers started by the tests live only in these namespaces;
		# kill them by pid so that deleting the namespace frees everything.
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
	ip netns exec "$srv" sysctl -qw net.ipv6.conf.veth-srv.accept_dad=0
	ip netns exec "$cli" sysctl -qw net.ipv6.conf.veth-cli.accept_dad=0
	# No Router Advertisements exist here; don't wait for any.
	ip netns exec "$cli" sysctl -qw net.ipv6.conf.veth-cli.router_solicitations=0
	ip -n "$srv" addr add 192.0.2.1/24 dev veth-srv
	ip -n "$srv" addr add 2001:db8:1::1/64 dev veth-srv nodad
	ip -n "$srv" link set lo up
	ip -n "$cli" link set lo up
	ip -n "$srv" link set veth-srv up
	ip -n "$cli" link set veth-cli up
	# Until the link has carrier, the kernel keeps the link-local addresses
	# tentative: packets from them are dropped and the first DHCPv6
	# exchange would cost a retransmission. Wait (at most ~5 s) for both.
	i=0
	while ip -n "$srv" -6 addr show dev veth-srv | grep -q tentative ||
		! ip -n "$cli" -6 addr show dev veth-cli scope link | grep -q inet6 ||
		ip -n "$cli" -6 addr show dev veth-cli | grep -q tentative; do
		i=$((i + 1))
		if [ "$i" -gt 100 ]; then
			echo "$0: link-local addresses still tentative after 5 s" >&2
			exit 1
		fi
		sleep 0.05
	done
	trap - EXIT
	echo "SRV_NS=$srv"
	echo "CLI_NS=$cli"
	echo "SRV_IF=veth-srv"
	echo "CLI_IF=veth-cli"
	echo "SRV_IP4=192.0.2.1"
	echo "SRV_IP6=2001:db8:1::1"
	;;
teardown)
	teardown
	;;
*)
	usage
	;;
esac
