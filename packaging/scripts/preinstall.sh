#!/bin/sh
# Runs before the files are unpacked (RPM %pre: $1 = 1 install, 2 upgrade;
# deb preinst: $1 = install | upgrade). Creates the system user and group the
# services run as, so that the packaged files can be owned by them.
set -e

user=ipfix-balancer

if ! getent group "$user" >/dev/null; then
	groupadd --system "$user"
fi
if ! getent passwd "$user" >/dev/null; then
	# No login shell; home is the service's working directory.
	shell=/usr/sbin/nologin
	[ -x "$shell" ] || shell=/sbin/nologin
	useradd --system --gid "$user" --home-dir /var/lib/ipfix-balancer --no-create-home \
		--shell "$shell" --comment "IPFIX balancer" "$user"
fi
exit 0
