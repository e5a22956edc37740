// Package ipfixgen generates realistic DPI IPFIX data records: the streams a
// DPI exports (fullflow, clickstream, dnsflow, http_reply, ssl_reply, sip,
// ftp, im, mail, raw) with the templates of the DPI reference
// (/work/shared/reference/dpi-ipfix-templates.txt), field for field in the
// reference's order, the vendor's elements under Private Enterprise Number
// 43823 (RFC 7011 §3.2 enterprise bit).
//
// Values model a real installation: many subscribers (each with an address in
// 10.0.0.0/8 or a /64 in 2001:db8::/32 and a login), a Zipf long tail of hosts
// (popular real-looking names, then generated ones), paths, user agents,
// referers, cookies, DNS names, record types, TTLs and rdata, HTTP result
// codes and content types, TLS versions and cipher suites. Output is
// deterministic for a seed and a clock (SetNow).
//
// Encoding a record is cheap: every string comes from pools built once in New
// (shared between generators of the same seed), and Next appends to the
// caller's buffer without allocating. The package builds records only;
// framing them into messages is ipfix.Encoder's job (or ipfix-gen's).
package ipfixgen
