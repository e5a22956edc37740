package dpisim

import (
	"fmt"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// Stream is the name of a DPI export stream, as operators and the config use it.
type Stream string

// The streams of the DPI reference. Fullflow is not listed there; it is built
// from IANA flow elements plus a few 43823 elements (reference README).
const (
	Fullflow    Stream = "fullflow"
	Clickstream Stream = "clickstream"
	DNSFlow     Stream = "dnsflow"
	HTTPReply   Stream = "http_reply"
	SSLReply    Stream = "ssl_reply"
	SIP         Stream = "sip"
	FTP         Stream = "ftp"
	IM          Stream = "im"
	Mail        Stream = "mail"
	Raw         Stream = "raw"
	// NATFlow and GTPFlow are the legacy collector's NAT and GTP logs
	// (ports 1503, 1502). The reference gives no template for them: NAT
	// events use the IANA NAT logging elements (RFC 8158: natEvent,
	// post-NAT address and port, observationTimeMilliseconds), GTP records
	// the IANA mobile elements (mobileIMSI, mobileMSISDN) with the DPI's
	// time stamp, login and session.
	NATFlow Stream = "natflow"
	GTPFlow Stream = "gtpflow"
)

// Streams lists every stream the generator knows, in a fixed order.
func Streams() []Stream {
	return []Stream{Fullflow, Clickstream, DNSFlow, HTTPReply, SSLReply, SIP, FTP, IM, Mail, Raw, NATFlow, GTPFlow}
}

// Template IDs: one pair (IPv4, IPv6) per stream, distinct across streams so
// that records of several streams can share one session or file.
const (
	ClickstreamV4TemplateID uint16 = 256
	ClickstreamV6TemplateID uint16 = 257
	HTTPReplyV4TemplateID   uint16 = 258
	HTTPReplyV6TemplateID   uint16 = 259
	SSLReplyV4TemplateID    uint16 = 260
	SSLReplyV6TemplateID    uint16 = 261
	SIPV4TemplateID         uint16 = 262
	SIPV6TemplateID         uint16 = 263
	FTPV4TemplateID         uint16 = 264
	FTPV6TemplateID         uint16 = 265
	IMV4TemplateID          uint16 = 266
	IMV6TemplateID          uint16 = 267
	MailV4TemplateID        uint16 = 268
	MailV6TemplateID        uint16 = 269
	RawV4TemplateID         uint16 = 270
	RawV6TemplateID         uint16 = 271
	DNSFlowV4TemplateID     uint16 = 272
	DNSFlowV6TemplateID     uint16 = 273
	NATFlowV4TemplateID     uint16 = 274
	NATFlowV6TemplateID     uint16 = 275
	GTPFlowV4TemplateID     uint16 = 276
	GTPFlowV6TemplateID     uint16 = 277
	FullflowV4TemplateID    uint16 = 280
	FullflowV6TemplateID    uint16 = 281
	// ExporterStatsTemplateID is the options template of ExporterStatsTemplate.
	ExporterStatsTemplateID uint16 = 290
)

// Elements of enterprise 43823 (the DPI vendor), as numbered in the reference.
const (
	elTimeStamp        = 1001
	elLogin            = 1002
	elIPSource         = 1003
	elIPDestination    = 1004
	elHostname         = 1005
	elPath             = 1006
	elReferer          = 1007
	elUserAgent        = 1008
	elCookie           = 1009
	elLocked           = 1010
	elHostType         = 1011
	elMethod           = 1012
	elPortSource       = 1013
	elPortDestination  = 1014
	elResultCode       = 1020
	elContentLength    = 1021
	elContentType      = 1022
	elLocation         = 1023
	elCipherSuitesLen  = 1024
	elCipherSuites     = 1025
	elSSLVersion       = 1030
	elCipherSuite      = 1031
	elCompression      = 1032
	elDNSIPSource      = 1103
	elDNSIPDestination = 1104
	elSessionID        = 2000
	elFlwDir           = 2013
	elDirData          = 2014
	elVDPIProto        = 2015
	elBridgeChannelNum = 2016
	elMPLSLabels       = 2017
	elTCPSequence      = 2018
	elMetaProto        = 2900
	elRawData          = 2901
	elMsgCode          = 3000
	elStatusCode       = 3001
	elURI              = 3002
	elFrom             = 3003
	elTo               = 3004
	elCallID           = 3005
	elUAgent           = 3006
	elCType            = 3007
	elGateways         = 3008
	elServerName       = 3050
	elUser             = 3051
	elPassword         = 3052
	elMode             = 3053
	elIMLogin          = 3100
	elIMPassw          = 3101
	elIMScreenName     = 3102
	elIMUIN            = 3103
	elIMProtocol       = 3104
	elIMReceivers      = 3105
	elMailSender       = 3150
	elMailReceiver     = 3151
	elMailCC           = 3152
	elMailSubject      = 3153
	elMailServers      = 3154
	elMailReply        = 3155
	elEvent            = 3156
	elAttachment       = 3157
	elMailProtocol     = 3158
	elTransport        = 3200
	elDomain           = 3201
	elRRClass          = 3202
	elRRType           = 3203
	elTTL              = 3204
	elRData            = 3205
)

// IANA elements (RFC 7012 registry).
const (
	ianaOctetDeltaCount             = 1
	ianaPacketDeltaCount            = 2
	ianaProtocolIdentifier          = 4
	ianaIPClassOfService            = 5
	ianaTCPControlBits              = 6
	ianaSourceTransportPort         = 7
	ianaSourceIPv4Address           = 8
	ianaIngressInterface            = 10
	ianaDestinationTransportPort    = 11
	ianaDestinationIPv4Address      = 12
	ianaEgressInterface             = 14
	ianaBGPSourceAsNumber           = 16
	ianaBGPDestinationAsNumber      = 17
	ianaSourceIPv6Address           = 27
	ianaDestinationIPv6Address      = 28
	ianaExportedMessageTotalCount   = 41
	ianaExportedFlowRecordTotal     = 42
	ianaSourceMacAddress            = 56
	ianaDestinationMacAddressDPI    = 57 // IANA postDestinationMacAddress; the DPI uses it as destination MAC
	ianaVlanID                      = 58
	ianaPostVlanID                  = 59
	ianaExportingProcessID          = 144
	ianaObservationDomainID         = 149
	ianaFlowStartMilliseconds       = 152
	ianaFlowEndMilliseconds         = 153
	ianaSystemInitTimeMilliseconds  = 160
	ianaExportedOctetTotalCount     = 40
	ianaPostNATSourceIPv4Address    = 225
	ianaPostNAPTSourceTransportPort = 227
	ianaPostNATSourceIPv6Address    = 281
	ianaNATEvent                    = 230
	ianaObservationTimeMilliseconds = 323
	ianaMobileIMSI                  = 455
	ianaMobileMSISDN                = 456
)

const varLen = ipfix.VariableLength

// e is a field of enterprise 43823; length varLen is variable length.
func e(id, length uint16) ipfix.FieldSpecifier {
	return ipfix.FieldSpecifier{ID: id, Length: length, EnterpriseNumber: ipfix.EnterpriseDPI}
}

// iana is a field of an IANA element.
func iana(id, length uint16) ipfix.FieldSpecifier {
	return ipfix.FieldSpecifier{ID: id, Length: length}
}

// tail are the fields that end most metadata templates of the reference:
// VLAN, post VLAN, source and destination MAC, MPLS labels.
func tail() []ipfix.FieldSpecifier {
	return []ipfix.FieldSpecifier{
		iana(ianaVlanID, 2), iana(ianaPostVlanID, 2),
		iana(ianaSourceMacAddress, 6), iana(ianaDestinationMacAddressDPI, 6),
		e(elMPLSLabels, varLen),
	}
}

// head are the fields that start every metadata template: time stamp, login,
// addresses (4 or 16 bytes, same element ids), session id.
func head(addrLen uint16, session bool) []ipfix.FieldSpecifier {
	f := []ipfix.FieldSpecifier{
		e(elTimeStamp, 4), e(elLogin, varLen), e(elIPSource, addrLen), e(elIPDestination, addrLen),
	}
	if session {
		f = append(f, e(elSessionID, 8))
	}
	return f
}

func cat(parts ...[]ipfix.FieldSpecifier) []ipfix.FieldSpecifier {
	var f []ipfix.FieldSpecifier
	for _, p := range parts {
		f = append(f, p...)
	}
	return f
}

// Fields returns the field specifiers of a stream's template in the order of
// the reference, for IPv4 or IPv6 addresses.
func Fields(stream Stream, ipv6 bool) ([]ipfix.FieldSpecifier, error) {
	var al uint16 = 4
	if ipv6 {
		al = 16
	}
	switch stream {
	case Clickstream:
		return cat(head(al, false), []ipfix.FieldSpecifier{
			e(elHostname, varLen), e(elPath, varLen), e(elReferer, varLen),
			e(elUserAgent, varLen), e(elCookie, varLen), e(elSessionID, 8),
			e(elLocked, 8), e(elHostType, 1), e(elMethod, 1),
			e(elPortSource, 2), e(elPortDestination, 2), e(elBridgeChannelNum, 2),
			e(elCipherSuitesLen, 2), e(elCipherSuites, varLen),
			iana(ianaVlanID, 2), iana(ianaPostVlanID, 2),
			iana(ianaSourceMacAddress, 6), iana(ianaDestinationMacAddressDPI, 6),
			e(elMPLSLabels, varLen), e(elTCPSequence, 4),
		}), nil
	case HTTPReply:
		return cat(head(al, false), []ipfix.FieldSpecifier{
			e(elResultCode, 4), e(elContentLength, 8), e(elContentType, varLen),
			e(elSessionID, 8), e(elLocation, varLen), e(elBridgeChannelNum, 2),
		}, tail()), nil
	case SSLReply:
		return cat(head(al, true), []ipfix.FieldSpecifier{
			e(elSSLVersion, 2), e(elCipherSuite, 2), e(elCompression, 1),
			e(elBridgeChannelNum, 2),
		}, tail(), []ipfix.FieldSpecifier{
			e(elHostType, 1), e(elHostname, varLen),
		}), nil
	case SIP:
		return cat(head(al, true), []ipfix.FieldSpecifier{
			e(elMsgCode, varLen), e(elStatusCode, 2), e(elURI, varLen),
			e(elFrom, varLen), e(elTo, varLen), e(elCallID, varLen),
			e(elUAgent, varLen), e(elCType, varLen), e(elGateways, varLen),
		}, tail()), nil
	case FTP:
		return cat(head(al, true), []ipfix.FieldSpecifier{
			e(elServerName, varLen), e(elUser, varLen), e(elPassword, varLen),
			e(elMode, 1), e(elResultCode, 4),
		}, tail()), nil
	case IM:
		return cat(head(al, true), []ipfix.FieldSpecifier{
			e(elIMLogin, varLen), e(elIMPassw, varLen), e(elIMScreenName, varLen),
			e(elIMUIN, varLen), e(elIMProtocol, 1), e(elIMReceivers, varLen),
			e(elResultCode, 4),
		}, tail()), nil
	case Mail:
		return cat(head(al, true), []ipfix.FieldSpecifier{
			e(elMailSender, varLen), e(elMailReceiver, varLen), e(elMailCC, varLen),
			e(elMailSubject, varLen), e(elMailServers, varLen), e(elMailReply, varLen),
			e(elEvent, 1), e(elAttachment, 1), e(elMailProtocol, 1), e(elResultCode, 4),
		}, tail()), nil
	case Raw:
		// The reference marks TCP Sequence (2018) with "-" in this table
		// only; 2018 is no IANA element, so it is the 43823 one as in
		// clickstream.
		return cat(head(al, true), []ipfix.FieldSpecifier{
			e(elFlwDir, 1), e(elDirData, 1), e(elVDPIProto, 2), e(elMetaProto, 2),
			e(elRawData, varLen), iana(ianaProtocolIdentifier, 1),
			iana(ianaSourceTransportPort, 2), iana(ianaDestinationTransportPort, 2),
			iana(ianaTCPControlBits, 2), e(elTCPSequence, 4),
		}, tail()), nil
	case DNSFlow:
		// IPv6 DNS records use their own element ids 1103/1104.
		src, dst := e(elIPSource, 4), e(elIPDestination, 4)
		if ipv6 {
			src, dst = e(elDNSIPSource, 16), e(elDNSIPDestination, 16)
		}
		return cat([]ipfix.FieldSpecifier{
			e(elTimeStamp, 4), e(elLogin, varLen), src, dst,
			e(elPortSource, 2), e(elPortDestination, 2), e(elSessionID, 8),
			e(elTransport, 1), e(elDomain, varLen), e(elRRClass, 2), e(elRRType, 2),
			e(elTTL, 4), e(elRData, varLen),
		}, tail(), []ipfix.FieldSpecifier{
			e(elBridgeChannelNum, 2),
		}), nil
	case Fullflow:
		src, dst, nat := iana(ianaSourceIPv4Address, 4), iana(ianaDestinationIPv4Address, 4), iana(ianaPostNATSourceIPv4Address, 4)
		if ipv6 {
			src, dst, nat = iana(ianaSourceIPv6Address, 16), iana(ianaDestinationIPv6Address, 16), iana(ianaPostNATSourceIPv6Address, 16)
		}
		return []ipfix.FieldSpecifier{
			iana(ianaOctetDeltaCount, 8), iana(ianaPacketDeltaCount, 8),
			iana(ianaProtocolIdentifier, 1), iana(ianaIPClassOfService, 1),
			iana(ianaTCPControlBits, 2), iana(ianaSourceTransportPort, 2), src,
			iana(ianaIngressInterface, 4), iana(ianaDestinationTransportPort, 2), dst,
			iana(ianaEgressInterface, 4), iana(ianaBGPSourceAsNumber, 4),
			iana(ianaBGPDestinationAsNumber, 4), iana(ianaFlowStartMilliseconds, 8),
			iana(ianaFlowEndMilliseconds, 8), nat, iana(ianaPostNAPTSourceTransportPort, 2),
			iana(ianaSourceMacAddress, 6), iana(ianaDestinationMacAddressDPI, 6),
			iana(ianaVlanID, 2),
			e(elLogin, varLen), e(elHostname, varLen), e(elSessionID, 8),
			e(elVDPIProto, 2), e(elBridgeChannelNum, 2),
		}, nil
	case NATFlow:
		// NAT44, or NAT64 for IPv6 subscribers: the post-NAT source is IPv4.
		src, dst := iana(ianaSourceIPv4Address, 4), iana(ianaDestinationIPv4Address, 4)
		if ipv6 {
			src, dst = iana(ianaSourceIPv6Address, 16), iana(ianaDestinationIPv6Address, 16)
		}
		return []ipfix.FieldSpecifier{
			iana(ianaObservationTimeMilliseconds, 8), iana(ianaNATEvent, 1), iana(ianaProtocolIdentifier, 1),
			src, iana(ianaSourceTransportPort, 2), dst, iana(ianaDestinationTransportPort, 2),
			iana(ianaPostNATSourceIPv4Address, 4), iana(ianaPostNAPTSourceTransportPort, 2),
			e(elSessionID, 8), e(elLogin, varLen),
		}, nil
	case GTPFlow:
		src := iana(ianaSourceIPv4Address, 4)
		if ipv6 {
			src = iana(ianaSourceIPv6Address, 16)
		}
		return []ipfix.FieldSpecifier{
			e(elTimeStamp, 4), e(elLogin, varLen), src,
			iana(ianaMobileIMSI, varLen), iana(ianaMobileMSISDN, varLen), e(elSessionID, 8),
		}, nil
	}
	return nil, fmt.Errorf("unknown stream %q", stream)
}

// TemplateID returns the template id of a stream for IPv4 or IPv6 records.
func TemplateID(stream Stream, ipv6 bool) (uint16, error) {
	var id uint16
	switch stream {
	case Clickstream:
		id = ClickstreamV4TemplateID
	case HTTPReply:
		id = HTTPReplyV4TemplateID
	case SSLReply:
		id = SSLReplyV4TemplateID
	case SIP:
		id = SIPV4TemplateID
	case FTP:
		id = FTPV4TemplateID
	case IM:
		id = IMV4TemplateID
	case Mail:
		id = MailV4TemplateID
	case Raw:
		id = RawV4TemplateID
	case DNSFlow:
		id = DNSFlowV4TemplateID
	case Fullflow:
		id = FullflowV4TemplateID
	case NATFlow:
		id = NATFlowV4TemplateID
	case GTPFlow:
		id = GTPFlowV4TemplateID
	default:
		return 0, fmt.Errorf("unknown stream %q", stream)
	}
	if ipv6 {
		id++
	}
	return id, nil
}

// Templates returns the template of stream for IPv4 (ipv6 false) or IPv6
// records, as a one-element slice; nil for an unknown stream. Each call
// builds new templates.
func Templates(stream Stream, ipv6 bool) []*ipfix.Template {
	t, err := template(stream, ipv6)
	if err != nil {
		return nil
	}
	return []*ipfix.Template{t}
}

func template(stream Stream, ipv6 bool) (*ipfix.Template, error) {
	fields, err := Fields(stream, ipv6)
	if err != nil {
		return nil, err
	}
	id, err := TemplateID(stream, ipv6)
	if err != nil {
		return nil, err
	}
	return ipfix.NewTemplate(id, fields), nil
}

// ExporterStatsTemplate returns an options template (RFC 7011 §4.3, "The
// Exporting Process Reliability Statistics Options Template") scoped by the
// observation domain: exportingProcessId, exportedMessageTotalCount,
// exportedFlowRecordTotalCount, exportedOctetTotalCount,
// systemInitTimeMilliseconds. AppendExporterStats encodes its records.
func ExporterStatsTemplate() *ipfix.Template {
	return ipfix.NewOptionsTemplate(ExporterStatsTemplateID, 1, []ipfix.FieldSpecifier{
		iana(ianaObservationDomainID, 4),
		iana(ianaExportingProcessID, 4),
		iana(ianaExportedMessageTotalCount, 8),
		iana(ianaExportedFlowRecordTotal, 8),
		iana(ianaExportedOctetTotalCount, 8),
		iana(ianaSystemInitTimeMilliseconds, 8),
	})
}

// AppendExporterStats appends one data record of ExporterStatsTemplate.
func AppendExporterStats(dst []byte, odid, processID uint32, messages, records, octets uint64, initMillis int64) []byte {
	dst = be32(dst, odid)
	dst = be32(dst, processID)
	dst = be64(dst, messages)
	dst = be64(dst, records)
	dst = be64(dst, octets)
	return be64(dst, uint64(initMillis))
}
