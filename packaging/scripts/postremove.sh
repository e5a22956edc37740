#!/bin/sh
# Runs after the files are removed (RPM %postun: $1 = 0 erase, 1 upgrade;
# deb postrm: $1 = remove | purge | upgrade | ...). Makes systemd forget the
# removed units. The ipfix-balancer user and /var/lib/ipfix-balancer are kept,
# also on purge: dumps not yet loaded are data, and files the user owns must
# not pass to a later user that reuses its uid.
set -e

if [ -d "${DPKG_ROOT:-}/run/systemd/system" ]; then
	systemctl daemon-reload || true
fi
exit 0
