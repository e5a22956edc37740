// Package dpisim generates realistic DPI IPFIX data records: the streams a
// DPI exports (fullflow, clickstream, dnsflow, http_reply, ssl_reply, sip,
// ftp, im, mail, raw) with the templates of the DPI reference
// (dpi-ipfix-templates.txt), field for field in the reference's order, the
// vendor's elements under Private Enterprise Number 43823 (RFC 7011 §3.2
// enterprise bit). It is shared by ipfix-gen, tests and benchmarks.
//
// Templates. Each stream has an IPv4 and an IPv6 template, with ids distinct
// across streams so that streams can share a session or a file:
//
//	clickstream 256/257  http_reply 258/259  ssl_reply 260/261  sip 262/263
//	ftp 264/265  im 266/267  mail 268/269  raw 270/271  dnsflow 272/273
//	fullflow 280/281     exporter statistics (options) 290
//
// IPv6 templates carry the same element ids with 16-byte lengths (1003/1004),
// except DNS, which uses 1103/1104 as the reference says. Fullflow, absent
// from the reference, is made of IANA elements (counters, addresses, ports,
// protocol, TOS, TCP flags, interfaces, AS numbers, flow start/end
// milliseconds, post-NAT address and port, MACs, VLAN) plus the 43823
// elements login, hostname, sessionId, vdpiProto and bridgeChannelNum. Two
// choices follow the reference where it departs from IANA: element 57 (IANA
// postDestinationMacAddress) is the destination MAC, as in every DPI table;
// TCP Sequence (2018), marked "-" in the raw table only, is the 43823 element.
//
// Values. Many subscribers (default 100000), each with an address in
// 10.0.0.0/8, a /64 in 2001:db8::/32, a CPE MAC and a unique login (mobile
// number, name, contract number or pppoe-xxxxxx), active by a power law; a
// Zipf-like long tail of hosts (real-looking popular names first, then
// generated ones) with server addresses, AS numbers and DPI protocol ids;
// paths, referers, user agents, cookies, HTTP result codes and content types,
// host types HTTP/CNAME/SNI/QUIC with TLS Client Hello cipher suites, DNS
// names, record types, remaining TTLs and rdata in wire format, SIP, FTP, IM
// and mail metadata, MPLS labels on some records. Records are deterministic
// for a seed and a clock (Config.Now, SetNow); time stamps fall just before
// the clock.
//
// Cost. Next appends one record to the caller's buffer without allocating.
// Subscribers and hosts are computed from their index (no 100000-entry table
// to miss in the CPU cache); strings come from small pools built once per
// seed and shared by generators (cost per record: bench/RESULTS.md, "The DPI
// simulator").
// The package builds records only: framing them into messages is
// ipfix.Encoder's job (or ipfix-gen's).
package dpisim
