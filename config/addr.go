package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// parseSubreceiver parses a subreceiver or export address: "host:port"
// ("[v6]:port"), "host:port/proto", or the legacy "ip/port" and
// "ip/port/proto" (an empty proto, "10.0.0.3/3440/", means proto). The host is an IP address or a host name.
// Errors quote the whole entry: `"10.0.0.3/34x0": bad port`.
func parseSubreceiver(s string, proto Proto) (Subreceiver, error) {
	in := s
	s = strings.TrimSpace(s)
	var host, port, p string
	h, pr, slash := strings.Cut(s, "/")
	if hh, pp, err := net.SplitHostPort(strings.TrimSpace(h)); slash && err == nil {
		// "host:port/proto" ("[v6]:port/proto"). The legacy "ip/port" has
		// no port before its slash: SplitHostPort fails on it, IPv6 too.
		host, port, p = hh, pp, strings.TrimSpace(pr)
		if p == "" || strings.Contains(p, "/") {
			return Subreceiver{}, fmt.Errorf("%q: bad proto (want tcp or udp)", in)
		}
	} else if strings.Contains(s, "/") {
		parts := strings.Split(s, "/")
		if len(parts) > 3 {
			return Subreceiver{}, fmt.Errorf("%q: want host:port, ip/port or ip/port/proto", in)
		}
		host, port = strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])
		if len(parts) == 3 {
			p = strings.TrimSpace(parts[2])
		}
		if h, ok := strings.CutPrefix(host, "["); ok {
			host, ok = strings.CutSuffix(h, "]")
			if !ok {
				return Subreceiver{}, fmt.Errorf("%q: bad host", in)
			}
		}
	} else {
		var err error
		host, port, err = net.SplitHostPort(s)
		if err != nil {
			return Subreceiver{}, fmt.Errorf("%q: want host:port, ip/port or ip/port/proto", in)
		}
	}
	if host == "" {
		return Subreceiver{}, fmt.Errorf("%q: missing host", in)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() {
			return Subreceiver{}, fmt.Errorf("%q: unspecified address", in)
		}
		if !validZone(a.Zone()) {
			return Subreceiver{}, fmt.Errorf("%q: bad zone", in)
		}
		host = a.String()
	} else if !validHostname(host) {
		return Subreceiver{}, fmt.Errorf("%q: bad host", in)
	}
	n, ok := parsePort(port)
	if !ok || n == 0 {
		return Subreceiver{}, fmt.Errorf("%q: bad port", in)
	}
	if p != "" {
		if err := proto.UnmarshalText([]byte(p)); err != nil {
			return Subreceiver{}, fmt.Errorf("%q: bad proto (want tcp or udp)", in)
		}
	}
	return Subreceiver{Addr: net.JoinHostPort(host, strconv.Itoa(int(n))), Proto: proto}, nil
}

// formatSubreceivers is the inverse of parseSubreceiver: "host:port" for
// subreceivers of the default proto, "host/port/proto" for the others.
func formatSubreceivers(subs []Subreceiver, proto Proto) []string {
	var list []string
	for _, s := range subs {
		if s.Proto == proto {
			list = append(list, s.Addr)
			continue
		}
		host, port, err := net.SplitHostPort(s.Addr)
		if err != nil {
			list = append(list, s.Addr) // Validate rejected it already
			continue
		}
		list = append(list, host+"/"+port+"/"+s.Proto.String())
	}
	return list
}

// parsePort parses a decimal port number 0..65535.
func parsePort(s string) (uint16, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// validHostname accepts DNS names: labels of letters, digits, '-' and '_',
// 1..63 bytes each, 253 in all. A name whose last label is numeric is
// rejected, as URL parsers do: "10.0.0.300" is a bad IPv4 address, not a host.
func validHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	_, err := strconv.ParseUint(labels[len(labels)-1], 0, 64)
	return err != nil && !errors.Is(err, strconv.ErrRange)
}

// validZone accepts no zone, or an interface name or index: fe80::1%eth0.
func validZone(z string) bool {
	for _, r := range z {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return len(z) < 16 // IFNAMSIZ
}

// parseListen parses a receiver's listen address: "ip:port", "[v6]:port",
// ":port" (0.0.0.0), or a bare IP address, which takes defaultPort.
func parseListen(s string, defaultPort uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		if defaultPort == 0 {
			return netip.AddrPort{}, fmt.Errorf("%q: missing port", s)
		}
		return netip.AddrPortFrom(a, defaultPort), nil
	}
	if p, ok := strings.CutPrefix(s, ":"); ok {
		if n, ok := parsePort(p); ok {
			return netip.AddrPortFrom(netip.IPv4Unspecified(), n), nil
		}
		return netip.AddrPort{}, fmt.Errorf("%q: bad port", s)
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		if _, err := netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%q: want an IP address, not a host name", s)
		}
		return netip.AddrPort{}, fmt.Errorf("%q: bad port %q", s, port)
	}
	return netip.AddrPort{}, fmt.Errorf("%q: want ip:port", s)
}

// parseDuration parses a non-negative Go duration: "90s", "10m", "1h30m".
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: bad duration (want e.g. \"90s\", \"10m\", \"1h30m\")", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q: negative duration", s)
	}
	return d, nil
}

// formatDuration formats d for the config file: time.Duration.String without
// zero trailing units ("10m", "1h", "1h30m", "1m30s", "0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
