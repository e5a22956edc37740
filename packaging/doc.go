// Package packaging builds the ipfix-balancer RPM and .deb; it holds no Go code
// but the tests that check the packages.
//
// packaging/build.sh rpm|deb (make rpm, make deb) runs nfpm, pinned and through
// `go run`, on nfpm.yaml. A package installs:
//
//	/usr/bin/ipfix-balancer, ipfix-loader, ipfix-gen
//	/usr/bin/ipfix-balancer-restart, -stop, -reload   scripts/ipfix-balancer-ctl under three names
//	/usr/lib/systemd/system/ipfix-balancer.service    Type=notify, user ipfix-balancer
//	/usr/lib/systemd/system/ipfix-loader.service
//	/usr/lib/sysctl.d/60-ipfix-balancer.conf          socket buffer caps for UDP
//	/etc/ipfix-balancer/balancer.toml                 %config(noreplace) / conffile
//	/var/lib/ipfix-balancer/dump                      owned by ipfix-balancer
//
// The maintainer scripts (scripts/*.sh, the same for both formats) create the
// ipfix-balancer system user before unpacking and, on upgrade, restart the
// balancer through ipfix-balancer-restart: SIGUSR2 makes the daemon start its
// successor from the new binary, which takes the DPI connections over through
// the control socket, so an upgrade loses nothing. `systemctl restart` is a hard
// restart that exporters notice.
//
// The tests build both packages once (go build into a temporary directory, then
// build.sh), list them with dpkg-deb and rpm, run systemd-analyze verify on the
// units, run the maintainer scripts against a scratch root with stubbed system
// commands, and run the installed binary and the wrapper scripts on the
// installed configuration moved to free loopback ports.
package packaging
