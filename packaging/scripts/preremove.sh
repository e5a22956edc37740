#!/bin/sh
# Runs before the files are removed (RPM %preun: $1 = 0 erase, 1 upgrade;
# deb prerm: $1 = remove | upgrade | deconfigure | failed-upgrade). Stops and
# disables the services on removal only: on an upgrade the new package's
# postinstall restarts them.
set -e

case "${1:-}" in
0 | remove | deconfigure) ;;
*) exit 0 ;;
esac
if [ -d "${DPKG_ROOT:-}/run/systemd/system" ]; then
	systemctl --no-reload disable --now ipfix-loader.service ipfix-balancer.service || true
elif [ -z "${DPKG_ROOT:-}" ]; then
	ipfix-balancer-stop || true
fi
exit 0
