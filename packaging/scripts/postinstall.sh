#!/bin/sh
# Runs after the files are unpacked (RPM %post: $1 = 1 install, 2 upgrade;
# deb postinst: $1 = configure, $2 = the version replaced, empty on a first
# install). Sets the ownership of the service's directories, applies the
# sysctl drop-in, and on an upgrade restarts the running services on the new
# binaries, keeping the config (the balancer without losing a message). A first
# install starts nothing: the operator enables the services once the config is
# right (systemctl enable --now ipfix-balancer).
#
# DPKG_ROOT (set by dpkg --root, and by packaging_test.go) prefixes every path
# this script touches; services are only restarted when that root has a live
# systemd (<root>/run/systemd/system).
set -e

root=${DPKG_ROOT:-}
user=ipfix-balancer
config=/etc/ipfix-balancer/balancer.toml

upgrade=no
case "${1:-}" in
[0-9]*) # rpm: $1 versions installed once this one is (1 install, 2 upgrade)
	if [ "$1" -ge 2 ]; then upgrade=yes; fi ;;
configure) # deb: $2 is the version replaced
	if [ -n "${2:-}" ]; then upgrade=yes; fi ;;
abort-upgrade | abort-remove | abort-deconfigure) # deb: the old files are back
	exit 0 ;;
esac

# The package ships these owned by the user; dpkg falls back to root when it
# cannot map the name, and an operator may have changed them.
mkdir -p "$root/var/lib/ipfix-balancer/dump"
chown "$user:$user" "$root/var/lib/ipfix-balancer" "$root/var/lib/ipfix-balancer/dump"
chmod 0750 "$root/var/lib/ipfix-balancer" "$root/var/lib/ipfix-balancer/dump"
if [ "$upgrade" = no ] && [ -f "$root$config" ]; then
	# The config may hold the ClickHouse password: root writes, the service
	# reads. On upgrade the operator's choice stands.
	chown "root:$user" "$root$config"
	chmod 0640 "$root$config"
fi

# Raise net.core.rmem_max/wmem_max to what udp_read_buffer_bytes asks for.
# Best effort: a container may not allow it.
if [ -z "$root" ] && command -v sysctl >/dev/null 2>&1; then
	sysctl -q -p /usr/lib/sysctl.d/60-ipfix-balancer.conf >/dev/null 2>&1 || true
fi

# Which service manager runs the services of this root: systemd, or none
# (containers, SysV hosts; only for the real root).
manager=none
if [ -d "$root/run/systemd/system" ]; then
	manager=systemd
	systemctl daemon-reload || true
elif [ -n "$root" ]; then
	exit 0
fi
if [ "$upgrade" = yes ]; then
	# Loss-free: a running balancer hands its DPI connections over to a
	# process of the new binary (SIGUSR2). The wrapper first checks that the
	# kept config suits the new version; if not, the old process keeps running.
	if ! ipfix-balancer-restart --if-running; then
		echo "ipfix-balancer: not restarted, the previous version keeps running; fix the problem above, then run ipfix-balancer-restart" >&2
	fi
	if [ "$manager" = systemd ]; then
		systemctl try-restart ipfix-loader.service || true
	fi
fi
exit 0
