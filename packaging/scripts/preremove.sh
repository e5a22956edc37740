#!/bin/sh
# Runs before the files are removed (RPM %preun: $1 = 0 erase, 1 upgrade;
# deb prerm: $1 = remove | upgrade | deconfigure | failed-upgrade). Stops the
# services on removal only: an upgrade restarts them in the new postinstall.
set -e

case "$1" in
0 | remove | deconfigure) ;;
*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl --no-reload disable --now ipfix-loader.service ipfix-balancer.service >/dev/null 2>&1 || true
elif command -v ipfix-balancer-stop >/dev/null 2>&1; then
	ipfix-balancer-stop || true
fi
exit 0
