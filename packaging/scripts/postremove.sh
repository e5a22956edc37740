#!/bin/sh
# Runs after the files are removed (RPM %postun: $1 = 0 erase, 1 upgrade;
# deb postrm: $1 = remove | purge | upgrade | ...). Forgets the removed units.
# The ipfix-balancer user and /var/lib/ipfix-balancer (the dumps) are kept,
# also on purge: dumps not yet loaded are data, and files the user still owns
# must not fall to a future user with its uid.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
