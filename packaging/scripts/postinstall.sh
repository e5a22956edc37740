#!/bin/sh
# Runs after the files are unpacked (RPM %post: $1 = 1 install, 2 upgrade;
# deb postinst: $1 = configure, $2 = the version replaced, empty on a first
# install). Fixes ownership the archive formats cannot be trusted with,
# applies the sysctl drop-in, and on an upgrade restarts running services on
# the new binaries. A first install starts nothing: the operator enables the
# services once the config is right (systemctl enable --now ipfix-balancer).
set -e

user=ipfix-balancer
config=/etc/ipfix-balancer/balancer.toml

upgrade=no
case "$1" in
[0-9]*) [ "$1" -ge 2 ] && upgrade=yes ;;                  # rpm
configure) [ -n "$2" ] && upgrade=yes ;;                  # deb
abort-upgrade | abort-remove | abort-deconfigure) exit 0 ;; # deb: nothing was changed
esac

install -d -m 0750 -o "$user" -g "$user" /var/lib/ipfix-balancer /var/lib/ipfix-balancer/dump
if [ "$upgrade" = no ] && [ -f "$config" ]; then
	# The config may hold the ClickHouse password: root writes, the service reads.
	chown "root:$user" "$config"
	chmod 0640 "$config"
fi

# Raise net.core.rmem_max/wmem_max to what udp_read_buffer_bytes asks for.
# Best effort: a container may not allow it.
if [ -x /usr/lib/systemd/systemd-sysctl ]; then
	/usr/lib/systemd/systemd-sysctl 60-ipfix-balancer.conf >/dev/null 2>&1 || true
elif command -v sysctl >/dev/null 2>&1; then
	sysctl -q -p /usr/lib/sysctl.d/60-ipfix-balancer.conf >/dev/null 2>&1 || true
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if [ "$upgrade" = yes ]; then
		# The kept config must still be valid for the new binary; if it is
		# not, leave the old process running rather than restart into a failure.
		if ipfix-balancer -check-config -config "$config" >/dev/null; then
			# ipfix-balancer hands its DPI connections over to the new
			# process on restart (see ipfix-balancer-restart).
			systemctl try-restart ipfix-balancer.service || true
		else
			echo "ipfix-balancer: $config is not valid for the new version; not restarting. Fix it, then run ipfix-balancer-restart." >&2
		fi
		systemctl try-restart ipfix-loader.service || true
	fi
fi
exit 0
