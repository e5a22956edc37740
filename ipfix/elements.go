package ipfix

// DataType is the abstract data type of an information element (RFC 7011 §6.1),
// numbered as in the IANA "IPFIX Information Element Data Types" registry.
type DataType uint8

// Data types.
const (
	OctetArray DataType = iota
	Unsigned8
	Unsigned16
	Unsigned32
	Unsigned64
	Signed8
	Signed16
	Signed32
	Signed64
	Float32
	Float64
	Boolean
	MACAddress
	String
	DateTimeSeconds
	DateTimeMilliseconds
	DateTimeMicroseconds
	DateTimeNanoseconds
	IPv4Address
	IPv6Address
)

var dataTypeNames = [...]string{
	OctetArray:           "octetArray",
	Unsigned8:            "unsigned8",
	Unsigned16:           "unsigned16",
	Unsigned32:           "unsigned32",
	Unsigned64:           "unsigned64",
	Signed8:              "signed8",
	Signed16:             "signed16",
	Signed32:             "signed32",
	Signed64:             "signed64",
	Float32:              "float32",
	Float64:              "float64",
	Boolean:              "boolean",
	MACAddress:           "macAddress",
	String:               "string",
	DateTimeSeconds:      "dateTimeSeconds",
	DateTimeMilliseconds: "dateTimeMilliseconds",
	DateTimeMicroseconds: "dateTimeMicroseconds",
	DateTimeNanoseconds:  "dateTimeNanoseconds",
	IPv4Address:          "ipv4Address",
	IPv6Address:          "ipv6Address",
}

// String returns the IANA name of the type ("unsigned32", "ipv4Address").
func (t DataType) String() string {
	if int(t) < len(dataTypeNames) {
		return dataTypeNames[t]
	}
	return "unknown"
}

// InfoElement is an information element: IANA (EnterpriseNumber 0) or private.
type InfoElement struct {
	EnterpriseNumber uint32
	ID               uint16
	Name             string
	Type             DataType
}

// ianaElements are the IANA elements (IANA "IPFIX Information Elements"
// registry) a flow exporter uses, with their registry names and types.
var ianaElements = []InfoElement{
	{0, 1, "octetDeltaCount", Unsigned64},
	{0, 2, "packetDeltaCount", Unsigned64},
	{0, 3, "deltaFlowCount", Unsigned64},
	{0, 4, "protocolIdentifier", Unsigned8},
	{0, 5, "ipClassOfService", Unsigned8},
	{0, 6, "tcpControlBits", Unsigned16},
	{0, 7, "sourceTransportPort", Unsigned16},
	{0, 8, "sourceIPv4Address", IPv4Address},
	{0, 9, "sourceIPv4PrefixLength", Unsigned8},
	{0, 10, "ingressInterface", Unsigned32},
	{0, 11, "destinationTransportPort", Unsigned16},
	{0, 12, "destinationIPv4Address", IPv4Address},
	{0, 13, "destinationIPv4PrefixLength", Unsigned8},
	{0, 14, "egressInterface", Unsigned32},
	{0, 15, "ipNextHopIPv4Address", IPv4Address},
	{0, 16, "bgpSourceAsNumber", Unsigned32},
	{0, 17, "bgpDestinationAsNumber", Unsigned32},
	{0, 18, "bgpNextHopIPv4Address", IPv4Address},
	{0, 19, "postMCastPacketDeltaCount", Unsigned64},
	{0, 20, "postMCastOctetDeltaCount", Unsigned64},
	{0, 21, "flowEndSysUpTime", Unsigned32},
	{0, 22, "flowStartSysUpTime", Unsigned32},
	{0, 23, "postOctetDeltaCount", Unsigned64},
	{0, 24, "postPacketDeltaCount", Unsigned64},
	{0, 25, "minimumIpTotalLength", Unsigned64},
	{0, 26, "maximumIpTotalLength", Unsigned64},
	{0, 27, "sourceIPv6Address", IPv6Address},
	{0, 28, "destinationIPv6Address", IPv6Address},
	{0, 29, "sourceIPv6PrefixLength", Unsigned8},
	{0, 30, "destinationIPv6PrefixLength", Unsigned8},
	{0, 31, "flowLabelIPv6", Unsigned32},
	{0, 32, "icmpTypeCodeIPv4", Unsigned16},
	{0, 33, "igmpType", Unsigned8},
	{0, 34, "samplingInterval", Unsigned32},
	{0, 35, "samplingAlgorithm", Unsigned8},
	{0, 36, "flowActiveTimeout", Unsigned16},
	{0, 37, "flowIdleTimeout", Unsigned16},
	{0, 38, "engineType", Unsigned8},
	{0, 39, "engineId", Unsigned8},
	{0, 40, "exportedOctetTotalCount", Unsigned64},
	{0, 41, "exportedMessageTotalCount", Unsigned64},
	{0, 42, "exportedFlowRecordTotalCount", Unsigned64},
	{0, 44, "sourceIPv4Prefix", IPv4Address},
	{0, 45, "destinationIPv4Prefix", IPv4Address},
	{0, 46, "mplsTopLabelType", Unsigned8},
	{0, 47, "mplsTopLabelIPv4Address", IPv4Address},
	{0, 48, "samplerId", Unsigned8},
	{0, 49, "samplerMode", Unsigned8},
	{0, 50, "samplerRandomInterval", Unsigned32},
	{0, 51, "classId", Unsigned8},
	{0, 52, "minimumTTL", Unsigned8},
	{0, 53, "maximumTTL", Unsigned8},
	{0, 54, "fragmentIdentification", Unsigned32},
	{0, 55, "postIpClassOfService", Unsigned8},
	{0, 56, "sourceMacAddress", MACAddress},
	{0, 57, "postDestinationMacAddress", MACAddress},
	{0, 58, "vlanId", Unsigned16},
	{0, 59, "postVlanId", Unsigned16},
	{0, 60, "ipVersion", Unsigned8},
	{0, 61, "flowDirection", Unsigned8},
	{0, 62, "ipNextHopIPv6Address", IPv6Address},
	{0, 63, "bgpNextHopIPv6Address", IPv6Address},
	{0, 64, "ipv6ExtensionHeaders", Unsigned32},
	{0, 70, "mplsTopLabelStackSection", OctetArray},
	{0, 71, "mplsLabelStackSection2", OctetArray},
	{0, 72, "mplsLabelStackSection3", OctetArray},
	{0, 80, "destinationMacAddress", MACAddress},
	{0, 81, "postSourceMacAddress", MACAddress},
	{0, 82, "interfaceName", String},
	{0, 83, "interfaceDescription", String},
	{0, 85, "octetTotalCount", Unsigned64},
	{0, 86, "packetTotalCount", Unsigned64},
	{0, 88, "fragmentOffset", Unsigned16},
	{0, 89, "forwardingStatus", Unsigned32},
	{0, 90, "mplsVpnRouteDistinguisher", OctetArray},
	{0, 94, "applicationDescription", String},
	{0, 95, "applicationId", OctetArray},
	{0, 96, "applicationName", String},
	{0, 98, "postIpDiffServCodePoint", Unsigned8},
	{0, 99, "multicastReplicationFactor", Unsigned32},
	{0, 128, "bgpNextAdjacentAsNumber", Unsigned32},
	{0, 129, "bgpPrevAdjacentAsNumber", Unsigned32},
	{0, 130, "exporterIPv4Address", IPv4Address},
	{0, 131, "exporterIPv6Address", IPv6Address},
	{0, 132, "droppedOctetDeltaCount", Unsigned64},
	{0, 133, "droppedPacketDeltaCount", Unsigned64},
	{0, 134, "droppedOctetTotalCount", Unsigned64},
	{0, 135, "droppedPacketTotalCount", Unsigned64},
	{0, 136, "flowEndReason", Unsigned8},
	{0, 137, "commonPropertiesId", Unsigned64},
	{0, 138, "observationPointId", Unsigned64},
	{0, 139, "icmpTypeCodeIPv6", Unsigned16},
	{0, 140, "mplsTopLabelIPv6Address", IPv6Address},
	{0, 141, "lineCardId", Unsigned32},
	{0, 142, "portId", Unsigned32},
	{0, 143, "meteringProcessId", Unsigned32},
	{0, 144, "exportingProcessId", Unsigned32},
	{0, 145, "templateId", Unsigned16},
	{0, 148, "flowId", Unsigned64},
	{0, 149, "observationDomainId", Unsigned32},
	{0, 150, "flowStartSeconds", DateTimeSeconds},
	{0, 151, "flowEndSeconds", DateTimeSeconds},
	{0, 152, "flowStartMilliseconds", DateTimeMilliseconds},
	{0, 153, "flowEndMilliseconds", DateTimeMilliseconds},
	{0, 154, "flowStartMicroseconds", DateTimeMicroseconds},
	{0, 155, "flowEndMicroseconds", DateTimeMicroseconds},
	{0, 156, "flowStartNanoseconds", DateTimeNanoseconds},
	{0, 157, "flowEndNanoseconds", DateTimeNanoseconds},
	{0, 158, "flowStartDeltaMicroseconds", Unsigned32},
	{0, 159, "flowEndDeltaMicroseconds", Unsigned32},
	{0, 160, "systemInitTimeMilliseconds", DateTimeMilliseconds},
	{0, 161, "flowDurationMilliseconds", Unsigned32},
	{0, 162, "flowDurationMicroseconds", Unsigned32},
	{0, 163, "observedFlowTotalCount", Unsigned64},
	{0, 164, "ignoredPacketTotalCount", Unsigned64},
	{0, 165, "ignoredOctetTotalCount", Unsigned64},
	{0, 166, "notSentFlowTotalCount", Unsigned64},
	{0, 167, "notSentPacketTotalCount", Unsigned64},
	{0, 168, "notSentOctetTotalCount", Unsigned64},
	{0, 169, "destinationIPv6Prefix", IPv6Address},
	{0, 170, "sourceIPv6Prefix", IPv6Address},
	{0, 171, "postOctetTotalCount", Unsigned64},
	{0, 172, "postPacketTotalCount", Unsigned64},
	{0, 173, "flowKeyIndicator", Unsigned64},
	{0, 176, "icmpTypeIPv4", Unsigned8},
	{0, 177, "icmpCodeIPv4", Unsigned8},
	{0, 178, "icmpTypeIPv6", Unsigned8},
	{0, 179, "icmpCodeIPv6", Unsigned8},
	{0, 180, "udpSourcePort", Unsigned16},
	{0, 181, "udpDestinationPort", Unsigned16},
	{0, 182, "tcpSourcePort", Unsigned16},
	{0, 183, "tcpDestinationPort", Unsigned16},
	{0, 184, "tcpSequenceNumber", Unsigned32},
	{0, 185, "tcpAcknowledgementNumber", Unsigned32},
	{0, 186, "tcpWindowSize", Unsigned16},
	{0, 189, "ipHeaderLength", Unsigned8},
	{0, 190, "totalLengthIPv4", Unsigned16},
	{0, 192, "ipTTL", Unsigned8},
	{0, 193, "nextHeaderIPv6", Unsigned8},
	{0, 195, "ipDiffServCodePoint", Unsigned8},
	{0, 196, "ipPrecedence", Unsigned8},
	{0, 197, "fragmentFlags", Unsigned8},
	{0, 204, "ipPayloadLength", Unsigned32},
	{0, 205, "udpMessageLength", Unsigned16},
	{0, 206, "isMulticast", Unsigned8},
	{0, 210, "paddingOctets", OctetArray},
	{0, 211, "collectorIPv4Address", IPv4Address},
	{0, 212, "collectorIPv6Address", IPv6Address},
	{0, 213, "exportInterface", Unsigned32},
	{0, 214, "exportProtocolVersion", Unsigned8},
	{0, 215, "exportTransportProtocol", Unsigned8},
	{0, 216, "collectorTransportPort", Unsigned16},
	{0, 217, "exporterTransportPort", Unsigned16},
	{0, 218, "tcpSynTotalCount", Unsigned64},
	{0, 219, "tcpFinTotalCount", Unsigned64},
	{0, 220, "tcpRstTotalCount", Unsigned64},
	{0, 221, "tcpPshTotalCount", Unsigned64},
	{0, 222, "tcpAckTotalCount", Unsigned64},
	{0, 223, "tcpUrgTotalCount", Unsigned64},
	{0, 224, "ipTotalLength", Unsigned64},
	{0, 225, "postNATSourceIPv4Address", IPv4Address},
	{0, 226, "postNATDestinationIPv4Address", IPv4Address},
	{0, 227, "postNAPTSourceTransportPort", Unsigned16},
	{0, 228, "postNAPTDestinationTransportPort", Unsigned16},
	{0, 229, "natOriginatingAddressRealm", Unsigned8},
	{0, 230, "natEvent", Unsigned8},
	{0, 231, "initiatorOctets", Unsigned64},
	{0, 232, "responderOctets", Unsigned64},
	{0, 233, "firewallEvent", Unsigned8},
	{0, 234, "ingressVRFID", Unsigned32},
	{0, 235, "egressVRFID", Unsigned32},
	{0, 236, "VRFname", String},
	{0, 238, "tcpWindowScale", Unsigned16},
	{0, 239, "biflowDirection", Unsigned8},
	{0, 243, "dot1qVlanId", Unsigned16},
	{0, 244, "dot1qPriority", Unsigned8},
	{0, 245, "dot1qCustomerVlanId", Unsigned16},
	{0, 246, "dot1qCustomerPriority", Unsigned8},
	{0, 252, "ingressPhysicalInterface", Unsigned32},
	{0, 253, "egressPhysicalInterface", Unsigned32},
	{0, 254, "postDot1qVlanId", Unsigned16},
	{0, 255, "postDot1qCustomerVlanId", Unsigned16},
	{0, 256, "ethernetType", Unsigned16},
	{0, 258, "collectionTimeMilliseconds", DateTimeMilliseconds},
	{0, 281, "postNATSourceIPv6Address", IPv6Address},
	{0, 282, "postNATDestinationIPv6Address", IPv6Address},
	{0, 298, "initiatorPackets", Unsigned64},
	{0, 299, "responderPackets", Unsigned64},
	{0, 300, "observationDomainName", String},
	{0, 322, "observationTimeSeconds", DateTimeSeconds},
	{0, 323, "observationTimeMilliseconds", DateTimeMilliseconds},
	{0, 324, "observationTimeMicroseconds", DateTimeMicroseconds},
	{0, 325, "observationTimeNanoseconds", DateTimeNanoseconds},
	{0, 346, "privateEnterpriseNumber", Unsigned32},
	{0, 455, "mobileIMSI", String},
	{0, 456, "mobileMSISDN", String},
}

// dpiElements are the enterprise 43823 elements of the DPI reference templates
// (shared/reference/dpi-ipfix-templates.txt). The DPI sends integers unsigned
// in network byte order; TIME_STAMP is Unix seconds. IP_SOURCE/IP_DESTINATION
// (1003/1004) carry IPv4 in 4 bytes or IPv6 in 16 (Value.Addr handles both).
var dpiElements = []InfoElement{
	{EnterpriseDPI, 1001, "timeStamp", DateTimeSeconds},
	{EnterpriseDPI, 1002, "login", String},
	{EnterpriseDPI, 1003, "ipSource", IPv4Address},
	{EnterpriseDPI, 1004, "ipDestination", IPv4Address},
	{EnterpriseDPI, 1005, "hostname", String},
	{EnterpriseDPI, 1006, "path", String},
	{EnterpriseDPI, 1007, "referer", String},
	{EnterpriseDPI, 1008, "userAgent", String},
	{EnterpriseDPI, 1009, "cookie", String},
	{EnterpriseDPI, 1010, "locked", Unsigned64},
	{EnterpriseDPI, 1011, "hostType", Unsigned8},
	{EnterpriseDPI, 1012, "method", Unsigned8},
	{EnterpriseDPI, 1013, "portSource", Unsigned16},
	{EnterpriseDPI, 1014, "portDestination", Unsigned16},
	{EnterpriseDPI, 1020, "resultCode", Unsigned32},
	{EnterpriseDPI, 1021, "contentLength", Unsigned64},
	{EnterpriseDPI, 1022, "contentType", String},
	{EnterpriseDPI, 1023, "location", String},
	{EnterpriseDPI, 1024, "cipherSuitesLen", Unsigned16},
	{EnterpriseDPI, 1025, "cipherSuites", OctetArray},
	{EnterpriseDPI, 1030, "sslVersion", Unsigned16},
	{EnterpriseDPI, 1031, "cipherSuite", Unsigned16},
	{EnterpriseDPI, 1032, "compressionMethod", Unsigned8},
	{EnterpriseDPI, 1103, "dnsIpSource", IPv6Address},
	{EnterpriseDPI, 1104, "dnsIpDestination", IPv6Address},
	{EnterpriseDPI, 2000, "sessionId", Unsigned64},
	{EnterpriseDPI, 2013, "flwDir", Unsigned8},
	{EnterpriseDPI, 2014, "dirData", Unsigned8},
	{EnterpriseDPI, 2015, "vdpiProto", Unsigned16},
	{EnterpriseDPI, 2016, "bridgeChannelNum", Unsigned16},
	{EnterpriseDPI, 2017, "mplsLabels", OctetArray},
	{EnterpriseDPI, 2018, "tcpSequence", Unsigned32},
	{EnterpriseDPI, 2900, "metaProto", Unsigned16},
	{EnterpriseDPI, 2901, "rawData", String},
	{EnterpriseDPI, 3000, "msgCode", String},
	{EnterpriseDPI, 3001, "statusCode", Unsigned16},
	{EnterpriseDPI, 3002, "uri", String},
	{EnterpriseDPI, 3003, "from", String},
	{EnterpriseDPI, 3004, "to", String},
	{EnterpriseDPI, 3005, "callId", String},
	{EnterpriseDPI, 3006, "uagent", String},
	{EnterpriseDPI, 3007, "ctype", String},
	{EnterpriseDPI, 3008, "gateways", String},
	{EnterpriseDPI, 3050, "serverName", String},
	{EnterpriseDPI, 3051, "user", String},
	{EnterpriseDPI, 3052, "password", String},
	{EnterpriseDPI, 3053, "mode", Unsigned8},
	{EnterpriseDPI, 3100, "imLogin", String},
	{EnterpriseDPI, 3101, "imPassw", String},
	{EnterpriseDPI, 3102, "imScreenName", String},
	{EnterpriseDPI, 3103, "imUin", String},
	{EnterpriseDPI, 3104, "imProtocol", Unsigned8},
	{EnterpriseDPI, 3105, "imReceivers", String},
	{EnterpriseDPI, 3150, "mailSender", String},
	{EnterpriseDPI, 3151, "mailReceiver", String},
	{EnterpriseDPI, 3152, "mailCc", String},
	{EnterpriseDPI, 3153, "mailSubject", String},
	{EnterpriseDPI, 3154, "mailServers", String},
	{EnterpriseDPI, 3155, "mailReply", String},
	{EnterpriseDPI, 3156, "event", Unsigned8},
	{EnterpriseDPI, 3157, "attachment", Unsigned8},
	{EnterpriseDPI, 3158, "mailProtocol", Unsigned8},
	{EnterpriseDPI, 3200, "transport", Unsigned8},
	{EnterpriseDPI, 3201, "domain", String},
	{EnterpriseDPI, 3202, "rrClass", Unsigned16},
	{EnterpriseDPI, 3203, "rrType", Unsigned16},
	{EnterpriseDPI, 3204, "ttl", Unsigned32},
	{EnterpriseDPI, 3205, "rdata", OctetArray},
}

var (
	ianaByID      [512]*InfoElement // IANA ids are small: a direct table
	elementByKey  = make(map[uint64]*InfoElement)
	elementByName = make(map[string]*InfoElement)
)

func init() {
	for _, list := range [][]InfoElement{ianaElements, dpiElements} {
		for i := range list {
			e := &list[i]
			if e.EnterpriseNumber == 0 && int(e.ID) < len(ianaByID) {
				ianaByID[e.ID] = e
			}
			k := uint64(e.EnterpriseNumber)<<16 | uint64(e.ID)
			if elementByKey[k] != nil || elementByName[e.Name] != nil {
				panic("BUG: duplicate information element " + e.Name)
			}
			elementByKey[k] = e
			elementByName[e.Name] = e
		}
	}
}

// LookupElement returns the information element with the given enterprise
// number (0 for IANA) and id (without the enterprise bit), or nil if unknown.
// The result is shared and must not be modified.
func LookupElement(enterprise uint32, id uint16) *InfoElement {
	if enterprise == 0 && int(id) < len(ianaByID) {
		return ianaByID[id]
	}
	return elementByKey[uint64(enterprise)<<16|uint64(id)]
}

// ElementByName returns the element with the given name (IANA camelCase names,
// lowerCamel names for enterprise 43823 elements), or nil if unknown.
func ElementByName(name string) *InfoElement {
	return elementByName[name]
}

// Elements returns every known element: IANA first, then enterprise 43823,
// each in id order of the registry. The elements are shared and must not be
// modified.
func Elements() []*InfoElement {
	out := make([]*InfoElement, 0, len(ianaElements)+len(dpiElements))
	for _, list := range [][]InfoElement{ianaElements, dpiElements} {
		for i := range list {
			out = append(out, &list[i])
		}
	}
	return out
}
