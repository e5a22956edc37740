#!/usr/bin/env bash
# Installs what `make test` needs beyond Go: tshark (decodes our IPFIX files as an
# independent oracle), clickhouse-server (the loader tests start a private one), and
# for packaging/packaging_test.go rpm (rpm -qlp on Debian too), dpkg-deb (dpkg on
# RHEL-likes, from EPEL), systemd-analyze (systemd) and chromium (the console's
# browser tests; on RHEL-likes from EPEL).
# Debian/Ubuntu use apt-get, RHEL-likes dnf/yum. Does nothing when all are present.
set -euo pipefail

need=()
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v clickhouse-server >/dev/null 2>&1 || need+=(clickhouse-server)
command -v clickhouse-client >/dev/null 2>&1 || need+=(clickhouse-client)
command -v rpm >/dev/null 2>&1 || need+=(rpm)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The console's browser tests drive a headless Chromium (console/browser_test.go).
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing test dependencies: ${need[*]}" >&2
if command -v apt-get >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
elif command -v dnf >/dev/null 2>&1; then
	# On RHEL tshark comes in the wireshark-cli package; ClickHouse from its own repo.
	pkgs=("${need[@]/tshark/wireshark-cli}")
	$sudo dnf install -y -q "${pkgs[@]}"
elif command -v yum >/dev/null 2>&1; then
	pkgs=("${need[@]/tshark/wireshark}")
	$sudo yum install -y -q "${pkgs[@]}"
else
	echo "no apt-get, dnf or yum: install ${need[*]} by hand" >&2
	exit 1
fi
