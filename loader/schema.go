package loader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// kind is how a column is stored and encoded in RowBinary. The bytes of the
// 18.16 and the modern type of one kind are the same (UInt32 = IPv4,
// FixedString(16) = IPv6, String = LowCardinality(String), UInt64
// milliseconds = DateTime64(3)), so one encoder serves both schema variants.
type kind uint8

const (
	kUint8 kind = iota
	kUint16
	kUint32
	kUint64
	kInt8
	kInt16
	kInt32
	kInt64
	kFloat32
	kFloat64
	kBool     // UInt8: 1 true, 0 false (IPFIX sends 1 true, 2 false)
	kMAC      // UInt64: the 48-bit address (MACNumToString prints it)
	kString   // String: UTF-8 text or raw octets
	kDateTime // DateTime: Unix seconds
	kTimeMs   // UInt64 / DateTime64(3): Unix milliseconds
	kTimeUs   // UInt64 / DateTime64(6): Unix microseconds
	kTimeNs   // UInt64 / DateTime64(9): Unix nanoseconds
	kIPv4     // UInt32 / IPv4
	kIPv6     // FixedString(16) / IPv6
	kDate     // Date
)

// role says where a column's value comes from.
type role uint8

const (
	roleElement role = iota // a template field (by information-element name)
	roleDPI                 // the DPI index from the dump's name
	roleDate                // the record's day (partition key)
	roleTime                // the record's time in seconds (DateTime)
	roleBatch               // the batch id (exactly-once bookkeeping)
	roleZero                // 0 from the loader (a view writes other values)
)

// Column is one column of a raw table.
type Column struct {
	Name    string
	Kind    kind
	Role    role
	Element *ipfix.InfoElement // roleElement only
	LowCard bool               // LowCardinality(String) where supported
}

// Capabilities are what the server supports, read from system tables.
type Capabilities struct {
	Version        string
	IPTypes        bool // IPv4, IPv6
	LowCardinality bool // without an experimental setting
	DateTime64     bool
	Codecs         bool
	TTL            bool
	TTLOnlyDrop    bool // merge tree setting ttl_only_drop_parts
}

// Modern reports whether the modern schema variant is used.
func (c Capabilities) Modern() bool { return c.IPTypes && c.DateTime64 }

func (c Capabilities) String() string {
	v := "18.16 (UInt32/FixedString addresses, retention by dropping partitions)"
	if c.Modern() {
		v = "modern (IPv4/IPv6, LowCardinality, CODEC, TTL)"
	}
	return c.Version + ", schema " + v
}

// DetectCapabilities reads version(), system.data_type_families,
// system.settings and system.merge_tree_settings (all present in 18.16).
func DetectCapabilities(ctx context.Context, c *Client) (Capabilities, error) {
	var caps Capabilities
	v, err := c.QueryValue(ctx, "SELECT version()")
	if err != nil {
		return caps, err
	}
	caps.Version = v
	rows, err := c.Query(ctx, "SELECT name FROM system.data_type_families WHERE name IN ('IPv4', 'IPv6', 'LowCardinality', 'DateTime64')")
	if err != nil {
		return caps, err
	}
	fam := map[string]bool{}
	for _, r := range rows {
		fam[r[0]] = true
	}
	caps.IPTypes = fam["IPv4"] && fam["IPv6"]
	caps.DateTime64 = fam["DateTime64"]
	rows, err = c.Query(ctx, "SELECT value FROM system.settings WHERE name = 'allow_experimental_low_cardinality_type'")
	if err != nil {
		return caps, err
	}
	caps.LowCardinality = fam["LowCardinality"] && (len(rows) == 0 || rows[0][0] == "1")
	major, minor := parseVersion(v)
	caps.Codecs = major > 19 || major == 19 && minor >= 1
	caps.TTL = major > 19 || major == 19 && minor >= 6
	rows, err = c.Query(ctx, "SELECT name FROM system.merge_tree_settings WHERE name = 'ttl_only_drop_parts'")
	if err != nil {
		return caps, err
	}
	caps.TTLOnlyDrop = len(rows) > 0
	return caps, nil
}

func parseVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		major, _ = strconv.Atoi(parts[0])
		minor, _ = strconv.Atoi(parts[1])
	}
	return major, minor
}

// SnakeCase turns an information-element name into a column name:
// sourceIPv4Address -> source_ipv4_address, postNATSourceIPv4Address ->
// post_nat_source_ipv4_address, bgpSourceAsNumber -> bgp_source_as_number.
func SnakeCase(name string) string {
	name = strings.NewReplacer("IPv4", "Ipv4", "IPv6", "Ipv6").Replace(name)
	r := []rune(name)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) {
			if i > 0 && (unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1]) ||
				unicode.IsUpper(r[i-1]) && i+1 < len(r) && unicode.IsLower(r[i+1])) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(c))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// v6Suffix names the 16-byte column of an element typed ipv4Address that the
// DPI also sends with 16 bytes (IP_SOURCE/IP_DESTINATION 1003/1004).
const v6Suffix = "_v6"

// kindOf returns the column kind for an element.
func kindOf(e *ipfix.InfoElement) kind {
	switch e.Type {
	case ipfix.Unsigned8:
		return kUint8
	case ipfix.Unsigned16:
		return kUint16
	case ipfix.Unsigned32:
		return kUint32
	case ipfix.Unsigned64:
		return kUint64
	case ipfix.Signed8:
		return kInt8
	case ipfix.Signed16:
		return kInt16
	case ipfix.Signed32:
		return kInt32
	case ipfix.Signed64:
		return kInt64
	case ipfix.Float32:
		return kFloat32
	case ipfix.Float64:
		return kFloat64
	case ipfix.Boolean:
		return kBool
	case ipfix.MACAddress:
		return kMAC
	case ipfix.DateTimeSeconds:
		return kDateTime
	case ipfix.DateTimeMilliseconds:
		return kTimeMs
	case ipfix.DateTimeMicroseconds:
		return kTimeUs
	case ipfix.DateTimeNanoseconds:
		return kTimeNs
	case ipfix.IPv4Address:
		return kIPv4
	case ipfix.IPv6Address:
		return kIPv6
	}
	return kString
}

// lowCardinality lists string columns with few distinct values per part.
var lowCardinality = map[string]bool{
	"login": true, "hostname": true, "content_type": true, "user_agent": true,
	"server_name": true, "ctype": true, "uagent": true,
}

// typeName is the column type for kind k under caps.
func typeName(c Column, caps Capabilities) string {
	m := caps.Modern()
	switch c.Kind {
	case kUint8, kBool:
		return "UInt8"
	case kUint16:
		return "UInt16"
	case kUint32:
		return "UInt32"
	case kUint64, kMAC:
		return "UInt64"
	case kInt8:
		return "Int8"
	case kInt16:
		return "Int16"
	case kInt32:
		return "Int32"
	case kInt64:
		return "Int64"
	case kFloat32:
		return "Float32"
	case kFloat64:
		return "Float64"
	case kString:
		if c.LowCard && caps.LowCardinality && m {
			return "LowCardinality(String)"
		}
		return "String"
	case kDateTime:
		return "DateTime"
	case kTimeMs, kTimeUs, kTimeNs:
		if m {
			return map[kind]string{kTimeMs: "DateTime64(3, 'UTC')", kTimeUs: "DateTime64(6, 'UTC')", kTimeNs: "DateTime64(9, 'UTC')"}[c.Kind]
		}
		return "UInt64"
	case kIPv4:
		if m {
			return "IPv4"
		}
		return "UInt32"
	case kIPv6:
		if m {
			return "IPv6"
		}
		return "FixedString(16)"
	case kDate:
		return "Date"
	}
	panic("BUG: unknown column kind")
}

// codec is the column compression on servers with CODEC.
func codec(c Column) string {
	switch c.Kind {
	case kString:
		return "CODEC(ZSTD(1))"
	case kDateTime, kTimeMs, kTimeUs, kTimeNs, kDate:
		return "CODEC(Delta, LZ4)"
	case kUint8, kUint16, kUint32, kUint64, kInt8, kInt16, kInt32, kInt64:
		return "CODEC(T64, LZ4)"
	}
	return ""
}

// tableSpec describes a raw table: which templates it takes and which
// columns it has. Columns are the snake_case names of information elements,
// so template fields map to columns by name, whatever their order.
type tableSpec struct {
	name string
	// signature: a template holding any of these elements belongs here
	// (tables are tried in the order of tableSpecs).
	signature []string
	// elements that get a column. Elements typed ipv4Address that also come
	// with 16 bytes get a second column named with v6Suffix.
	elements []string
	dual     []string // elements with a 4- and a 16-byte column
	// timeElements: the first one present gives the record's day and time;
	// without any, the message's export time does.
	timeElements []string
	dateColumn   string
	timeColumn   string // derived DateTime column, "" if none
	orderBy      []string
	shardKeys    []string    // default sharding columns, first present wins
	aliases      [][2]string // legacy column names: name, expression
	zero         []string    // UInt8 columns the loader writes 0 into
}

// refTail are the fields that end most metadata templates of the reference.
var refTail = []string{"vlanId", "postVlanId", "sourceMacAddress", "postDestinationMacAddress", "mplsLabels"}

var metaHead = []string{"timeStamp", "login", "ipSource", "ipDestination", "sessionId"}

func elems(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		for _, e := range p {
			if !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	return out
}

// tableSpecs are the raw tables, one per stream of the DPI reference
// (shared/reference/dpi-ipfix-templates.txt; fullflow from IANA flow elements
// plus 43823 ones). Order matters: the first signature match wins.
var tableSpecs = []tableSpec{
	{
		name:      "raw",
		signature: []string{"rawData"},
		elements: elems(metaHead, []string{"flwDir", "dirData", "vdpiProto", "metaProto", "rawData",
			"protocolIdentifier", "sourceTransportPort", "destinationTransportPort", "tcpControlBits", "tcpSequence"}, refTail),
	},
	{
		name:      "dnsflow",
		signature: []string{"domain", "rrType"},
		elements: elems(metaHead[:4], []string{"dnsIpSource", "dnsIpDestination", "portSource", "portDestination", "sessionId",
			"transport", "domain", "rrClass", "rrType", "ttl", "rdata"}, refTail, []string{"bridgeChannelNum"}),
	},
	{
		name:      "sip",
		signature: []string{"msgCode", "callId"},
		elements:  elems(metaHead, []string{"msgCode", "statusCode", "uri", "from", "to", "callId", "uagent", "ctype", "gateways"}, refTail),
	},
	{
		name:      "ftp",
		signature: []string{"serverName"},
		elements:  elems(metaHead, []string{"serverName", "user", "password", "mode", "resultCode"}, refTail),
	},
	{
		name:      "im",
		signature: []string{"imLogin", "imProtocol"},
		elements: elems(metaHead, []string{"imLogin", "imPassw", "imScreenName", "imUin", "imProtocol", "imReceivers",
			"resultCode"}, refTail),
	},
	{
		name:      "mail",
		signature: []string{"mailSender", "mailReceiver"},
		elements: elems(metaHead, []string{"mailSender", "mailReceiver", "mailCc", "mailSubject", "mailServers",
			"mailReply", "event", "attachment", "mailProtocol", "resultCode"}, refTail),
	},
	{
		name:      "ssl_reply",
		signature: []string{"sslVersion", "cipherSuite"},
		elements: elems(metaHead, []string{"sslVersion", "cipherSuite", "compressionMethod", "bridgeChannelNum"},
			refTail, []string{"hostType", "hostname"}),
	},
	{
		name:      "http_reply",
		signature: []string{"contentLength", "contentType", "location"},
		elements: elems(metaHead[:4], []string{"resultCode", "contentLength", "contentType", "sessionId", "location",
			"bridgeChannelNum"}, refTail),
	},
	{
		name:      "clickstream",
		signature: []string{"path", "referer", "userAgent", "cookie"},
		elements: elems(metaHead[:4], []string{"hostname", "path", "referer", "userAgent", "cookie", "sessionId",
			"locked", "hostType", "method", "portSource", "portDestination", "bridgeChannelNum",
			"cipherSuitesLen", "cipherSuites", "vlanId", "postVlanId", "sourceMacAddress",
			"postDestinationMacAddress", "mplsLabels", "tcpSequence"}),
		aliases: [][2]string{{"time", "time_stamp"}, {"host", "hostname"}},
	},
	{
		// NAT events (the legacy natflow stream, port 1503): the IANA NAT
		// logging elements (RFC 8158), the eleven fields of the aggregated
		// NAT log (NAT_AGG_LOG_FIELDS_TO_SAVE_BITMASK) among them.
		name:      "natflow",
		signature: []string{"natEvent"},
		elements: []string{"observationTimeMilliseconds", "natEvent", "protocolIdentifier",
			"sourceIPv4Address", "sourceIPv6Address", "sourceTransportPort",
			"destinationIPv4Address", "destinationIPv6Address", "destinationTransportPort",
			"postNATSourceIPv4Address", "postNAPTSourceTransportPort", "sessionId", "login"},
		timeElements: []string{"observationTimeMilliseconds", "flowStartMilliseconds", "timeStamp"},
		zero:         []string{"from_fullflow"}, // 1: derived from fullflow (NAT.ImportFromFullflow)
		dateColumn:   "date",
		timeColumn:   "time",
		orderBy:      []string{"time"},
		shardKeys:    []string{"login", "source_ipv4_address", "source_ipv6_address"},
	},
	{
		// GTP records (the legacy gtpflow stream, port 1502): the
		// subscriber's address with IMSI and MSISDN.
		name:      "gtpflow",
		signature: []string{"mobileIMSI", "mobileMSISDN"},
		elements:  []string{"timeStamp", "login", "sourceIPv4Address", "sourceIPv6Address", "mobileIMSI", "mobileMSISDN", "sessionId"},
	},
	{
		name:      "fullflow",
		signature: []string{"octetDeltaCount", "packetDeltaCount", "flowStartMilliseconds", "flowStartSeconds"},
		elements: []string{
			"octetDeltaCount", "packetDeltaCount", "protocolIdentifier", "ipClassOfService",
			"tcpControlBits", "sourceTransportPort", "sourceIPv4Address", "sourceIPv6Address",
			"ingressInterface", "destinationTransportPort", "destinationIPv4Address",
			"destinationIPv6Address", "egressInterface", "bgpSourceAsNumber",
			"bgpDestinationAsNumber", "flowStartMilliseconds", "flowEndMilliseconds",
			"flowStartSeconds", "flowEndSeconds", "ipVersion",
			"postNATSourceIPv4Address", "postNATSourceIPv6Address", "postNAPTSourceTransportPort",
			"postNATDestinationIPv4Address", "postNAPTDestinationTransportPort",
			"sourceMacAddress", "postDestinationMacAddress", "destinationMacAddress", "vlanId", "postVlanId",
			"login", "hostname", "sessionId", "vdpiProto", "bridgeChannelNum",
		},
		timeElements: []string{"flowStartMilliseconds", "flowStartSeconds", "flowStartMicroseconds", "flowStartNanoseconds", "timeStamp"},
		dateColumn:   "flow_start_date",
		timeColumn:   "flow_start_time",
		orderBy:      []string{"flow_start_time"},
		shardKeys:    []string{"login", "source_ipv4_address", "source_ipv6_address"},
		aliases: [][2]string{
			{"source_ipv4", "source_ipv4_address"}, {"destination_ipv4", "destination_ipv4_address"},
			{"source_ipv6", "source_ipv6_address"}, {"destination_ipv6", "destination_ipv6_address"},
			{"host", "hostname"},
		},
	},
}

// hourColumn is the DateTime column whose hour (UTC) partitions the table
// with its day column: the derived time column, else the record's own
// time_stamp. The loader computes a row's hour from the value it writes
// there (0 when the template has no time field), so a batch of one (day,
// hour) falls in one partition.
func (s *tableSpec) hourColumn() string {
	if s.timeColumn != "" {
		return s.timeColumn
	}
	return SnakeCase(s.timeElements[0])
}

// partitionKey is the PARTITION BY of a raw table: one partition per hour
// (UTC), ID YYYYMMDDHH, so retention by dropping partitions is exact to
// the hour. The hour is arithmetic on the Unix time, not toHour, which
// would follow the server's time zone.
func (s *tableSpec) partitionKey() string {
	return fmt.Sprintf("toYYYYMMDD(%s) * 100 + intDiv(toUInt32(%s) %% 86400, 3600)", quote(s.dateColumn), quote(s.hourColumn()))
}

func init() {
	for i := range tableSpecs {
		s := &tableSpecs[i]
		if s.dateColumn == "" {
			s.dateColumn = "date"
			s.timeElements = []string{"timeStamp"}
			s.orderBy = []string{"time_stamp"}
			s.shardKeys = []string{"login", "ip_source", "ip_source_v6", "dns_ip_source"}
		}
		for _, e := range s.elements {
			if e == "ipSource" || e == "ipDestination" {
				s.dual = append(s.dual, e)
			}
		}
	}
}

// TableNames returns the raw tables the loader creates, in a fixed order.
func TableNames() []string {
	out := make([]string, len(tableSpecs))
	for i, s := range tableSpecs {
		out[i] = s.name
	}
	return out
}

// table is a raw table at run time: its spec and columns.
type table struct {
	spec     *tableSpec
	index    int // in tableSpecs
	columns  []Column
	byName   map[string]int
	names    []string // column names, insert order
	dateCol  int
	batchCol int
}

func newTable(spec *tableSpec, index int) *table {
	t := &table{spec: spec, index: index, byName: map[string]int{}}
	add := func(c Column) {
		if _, dup := t.byName[c.Name]; dup {
			panic("BUG: duplicate column " + c.Name + " in " + spec.name)
		}
		t.byName[c.Name] = len(t.columns)
		t.columns = append(t.columns, c)
		t.names = append(t.names, c.Name)
	}
	add(Column{Name: "dpi", Kind: kUint16, Role: roleDPI})
	t.dateCol = len(t.columns)
	add(Column{Name: spec.dateColumn, Kind: kDate, Role: roleDate})
	if spec.timeColumn != "" {
		add(Column{Name: spec.timeColumn, Kind: kDateTime, Role: roleTime})
	}
	for _, name := range spec.elements {
		e := ipfix.ElementByName(name)
		if e == nil {
			panic("BUG: unknown information element " + name + " in table " + spec.name)
		}
		col := SnakeCase(name)
		add(Column{Name: col, Kind: kindOf(e), Element: e, LowCard: lowCardinality[col]})
		if slices.Contains(spec.dual, name) {
			add(Column{Name: col + v6Suffix, Kind: kIPv6, Element: e})
		}
	}
	for _, z := range spec.zero {
		add(Column{Name: z, Kind: kUint8, Role: roleZero})
	}
	t.batchCol = len(t.columns)
	add(Column{Name: "_batch", Kind: kUint64, Role: roleBatch})
	return t
}

// schema is the set of raw tables and the DDL for a server.
type schema struct {
	tables  []*table
	byName  map[string]*table
	db      string
	cluster string
	shardBy string // configured sharding column ("" = per-table default)
	caps    Capabilities
	retain  time.Duration
	aggs    []aggSpec
	nat     config.NAT
}

// newSchema returns the schema; aggs holds the configured aggregates in the
// order of aggKinds (fullflow_agg, clickstream_agg).
func newSchema(db, cluster, shardBy string, retain time.Duration, aggs ...config.Aggregate) *schema {
	s := &schema{db: db, cluster: cluster, shardBy: shardBy, retain: retain, byName: map[string]*table{}}
	for i := range tableSpecs {
		t := newTable(&tableSpecs[i], i)
		s.tables = append(s.tables, t)
		s.byName[t.spec.name] = t
	}
	for i, k := range aggKinds {
		s.aggs = append(s.aggs, aggSpec{aggKind: k, Aggregate: aggs[i]})
	}
	return s
}

// localName is the MergeTree table rows are inserted into: the table itself,
// or on a cluster the shard-local table under the Distributed one.
func (s *schema) localName(t string) string {
	if s.cluster != "" {
		return t + "_local"
	}
	return t
}

func (s *schema) qualified(t string) string { return quote(s.db) + "." + quote(t) }

// shardColumn returns the column rows of t are sharded by.
func (s *schema) shardColumn(t *table) string {
	if s.shardBy != "" {
		for _, k := range strings.Split(s.shardBy, ",") {
			if _, ok := t.byName[strings.TrimSpace(k)]; ok {
				return strings.TrimSpace(k)
			}
		}
	}
	for _, k := range t.spec.shardKeys {
		if _, ok := t.byName[k]; ok {
			return k
		}
	}
	return ""
}

// rawDDL returns the CREATE TABLE of a raw table (the local one on a cluster).
func (s *schema) rawDDL(t *table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", s.qualified(s.localName(t.spec.name)))
	for _, c := range t.columns {
		fmt.Fprintf(&b, "  %s %s", quote(c.Name), typeName(c, s.caps))
		if s.caps.Codecs {
			if cd := codec(c); cd != "" {
				b.WriteString(" " + cd)
			}
		}
		b.WriteString(",\n")
	}
	for i, a := range t.spec.aliases {
		fmt.Fprintf(&b, "  %s %s ALIAS %s", quote(a[0]), typeName(t.columns[t.byName[a[1]]], s.caps), quote(a[1]))
		if i+1 < len(t.spec.aliases) {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	if len(t.spec.aliases) == 0 {
		// Drop the trailing comma of the last column.
		str := strings.TrimSuffix(b.String(), ",\n") + "\n"
		b.Reset()
		b.WriteString(str)
	}
	fmt.Fprintf(&b, ") ENGINE = MergeTree\nPARTITION BY %s\nORDER BY (%s)", t.spec.partitionKey(), strings.Join(quoteAll(t.spec.orderBy), ", "))
	if s.retain > 0 && s.caps.TTL {
		fmt.Fprintf(&b, "\nTTL toDateTime(%s) + toIntervalSecond(%d)", quote(t.spec.dateColumn), int64((s.retain+24*time.Hour)/time.Second))
		if s.caps.TTLOnlyDrop {
			b.WriteString("\nSETTINGS ttl_only_drop_parts = 1")
		}
	}
	return b.String()
}

// distributedDDL returns the Distributed table over the shard-local tables.
func (s *schema) distributedDDL(name, local, key string) string {
	shard := "rand()"
	if key != "" {
		shard = "cityHash64(" + quote(key) + ")"
	}
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Distributed(%s, %s, %s, %s)",
		s.qualified(name), s.qualified(local), quote(s.cluster), quote(s.db), quote(local), shard)
}

// aggKind is what is fixed about an aggregated table: its source, its day
// and time columns and its sums.
type aggKind struct {
	name, source     string
	date, time, from string // date and time columns; from: the raw time column
	sums             [][2]string
}

var aggKinds = []aggKind{
	{
		name: "fullflow_agg", source: "fullflow", date: "flow_start_date", time: "flow_start_time", from: "flow_start_time",
		sums: [][2]string{{"bytes", "sum(octet_delta_count)"}, {"packets", "sum(packet_delta_count)"}, {"flows", "count()"}},
	},
	{
		name: "clickstream_agg", source: "clickstream", date: "date", time: "time", from: "time_stamp",
		sums: [][2]string{{"requests", "count()"}},
	},
}

// AggregateNames returns the aggregated tables: fullflow_agg,
// clickstream_agg and natflow_agg.
func AggregateNames() []string {
	out := make([]string, 0, len(aggKinds)+1)
	for _, a := range aggKinds {
		out = append(out, a.name)
	}
	return append(out, natAggTable)
}

// validateFields checks an aggregate's fields against its source table
// (config.Loader.Validate checks its period).
func validateFields(a config.Aggregate, k aggKind) error {
	var errs []error
	cols := TableColumns(k.source)
	seen := map[string]bool{}
	for _, f := range a.Fields {
		switch {
		case seen[f]:
			errs = append(errs, fmt.Errorf("field %q: twice", f))
		case f == k.date || f == k.from || f == "_batch" || !slices.Contains(cols, f):
			errs = append(errs, fmt.Errorf("field %q: not a column of %s to group by (columns: %s)", f, k.source, strings.Join(groupable(k, cols), ", ")))
		}
		seen[f] = true
	}
	return errors.Join(errs...)
}

func groupable(k aggKind, cols []string) []string {
	var out []string
	for _, c := range cols {
		if c != k.date && c != k.from && c != "_batch" {
			out = append(out, c)
		}
	}
	return out
}

// aggSpec is an aggregated table kept by the server: a SummingMergeTree
// filled by a materialized view on a raw table, partitioned by month.
type aggSpec struct {
	aggKind
	config.Aggregate
}

func (s *schema) aggDDL(a aggSpec) (table, view string) {
	src := s.byName[a.source]
	cols := []string{quote(a.date) + " Date", quote(a.time) + " DateTime"}
	keys := []string{quote(a.time)}
	sel := []string{quote(a.date), fmt.Sprintf("toDateTime(intDiv(toUInt32(%s), %d) * %d) AS %s",
		quote(a.from), int64(a.Period/time.Second), int64(a.Period/time.Second), quote(a.time))}
	group := []string{quote(a.date), quote(a.time)}
	for _, f := range a.Fields {
		cols = append(cols, quote(f)+" "+typeName(src.columns[src.byName[f]], s.caps))
		keys = append(keys, quote(f))
		sel = append(sel, quote(f))
		group = append(group, quote(f))
	}
	var sums []string
	for _, m := range a.sums {
		cols = append(cols, quote(m[0])+" UInt64")
		sums = append(sums, quote(m[0]))
		sel = append(sel, m[1]+" AS "+quote(m[0]))
	}
	local := s.localName(a.name)
	table = fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n  %s\n) ENGINE = SummingMergeTree((%s))\nPARTITION BY toYYYYMM(%s)\nORDER BY (%s)",
		s.qualified(local), strings.Join(cols, ",\n  "), strings.Join(sums, ", "), quote(a.date), strings.Join(keys, ", "))
	view = fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s TO %s AS SELECT %s FROM %s GROUP BY %s",
		s.qualified(local+"_mv"), s.qualified(local), strings.Join(sel, ", "), s.qualified(s.localName(a.source)), strings.Join(group, ", "))
	return table, view
}

// aggColumns are the columns of an aggregated table, in order.
func (a aggSpec) columns() []string {
	out := append([]string{a.date, a.time}, a.Fields...)
	for _, m := range a.sums {
		out = append(out, m[0])
	}
	return out
}

// ledgerDDL is the exactly-once ledger (see doc.go).
func (s *schema) ledgerDDL() string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
  file String,
  state Enum8('intent' = 1, 'done' = 2, 'aborted' = 3, 'file' = 4),
  table String,
  date Date,
  hour UInt8 DEFAULT 255,
  shard UInt16,
  start UInt64,
  rows UInt64,
  shard_rows UInt64,
  batch UInt64,
  checksum UInt32,
  detail String,
  at DateTime
) ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (file, at)`, s.qualified(ledgerTable))
}

const ledgerTable = "_ledger"

// migrate creates the database, raw tables, aggregated tables and views and
// the ledger on every target (the server, or each shard), then the
// Distributed tables on each shard. It is idempotent.
func (s *schema) migrate(ctx context.Context, targets []*Client) error {
	for _, c := range targets {
		if err := c.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quote(s.db)); err != nil {
			return fmt.Errorf("migrate %s: %w", c.URL(), err)
		}
		// One query for what exists, so a restart costs no DDL.
		rows, err := c.Query(ctx, "SELECT name FROM system.tables WHERE database = "+literal(s.db))
		if err != nil {
			return fmt.Errorf("migrate %s: %w", c.URL(), err)
		}
		exists := map[string]bool{}
		for _, r := range rows {
			exists[r[0]] = true
		}
		var stmts []string
		add := func(name, ddl string) {
			if !exists[name] {
				stmts = append(stmts, ddl)
			}
		}
		add(ledgerTable, s.ledgerDDL())
		if exists[ledgerTable] {
			// A ledger from before hourly partitions: its rows are per day
			// (hour 255, legacyHour), and the dumps they describe go on so.
			cols, err := columnsOf(ctx, c, s.db, ledgerTable)
			if err != nil {
				return fmt.Errorf("migrate %s: %w", c.URL(), err)
			}
			if !cols["hour"] {
				stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD COLUMN hour UInt8 DEFAULT %d AFTER date", s.qualified(ledgerTable), legacyHour))
			}
		}
		for _, t := range s.tables {
			add(s.localName(t.spec.name), s.rawDDL(t))
		}
		for _, a := range s.aggs {
			tbl, view := s.aggDDL(a)
			add(s.localName(a.name), tbl)
			add(s.localName(a.name)+"_mv", view)
			if exists[s.localName(a.name)] {
				s.checkAggregate(ctx, c, a)
			}
		}
		// Drop the NAT views the configuration no longer asks for before
		// making the new ones, so no row is counted twice.
		stmts = append(stmts, s.natStale(exists)...)
		for _, v := range s.natObjects() {
			add(s.localName(v.name), v.ddl)
		}
		if s.cluster != "" {
			for _, t := range s.tables {
				add(t.spec.name, s.distributedDDL(t.spec.name, s.localName(t.spec.name), s.shardColumn(t)))
			}
			add(natAggTable, s.distributedDDL(natAggTable, s.localName(natAggTable), ""))
			for _, a := range s.aggs {
				add(a.name, s.distributedDDL(a.name, s.localName(a.name), ""))
			}
		}
		for _, st := range stmts {
			var settings []string
			if strings.Contains(st, "LowCardinality") {
				settings = []string{"allow_experimental_low_cardinality_type", "1"}
			}
			if err := c.Exec(ctx, st, settings...); err != nil {
				return fmt.Errorf("migrate %s: %w", c.URL(), err)
			}
		}
	}
	return nil
}

// checkAggregate warns when an aggregated table on the server was made with
// other fields than the configured ones: CREATE ... IF NOT EXISTS keeps it.
func (s *schema) checkAggregate(ctx context.Context, c *Client, a aggSpec) {
	rows, err := c.Query(ctx, "SELECT name FROM system.columns WHERE database = "+literal(s.db)+
		" AND table = "+literal(s.localName(a.name)))
	if err != nil {
		return
	}
	var have []string
	for _, r := range rows {
		have = append(have, r[0])
	}
	want := a.columns()
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		slog.Warn("aggregated table differs from the configuration and is kept as it is; drop it and its view to have it made anew",
			"table", a.name, "columns", strings.Join(have, ","), "configured", strings.Join(want, ","),
			"fix", "DROP TABLE "+s.qualified(s.localName(a.name)+"_mv")+"; DROP TABLE "+s.qualified(s.localName(a.name)))
	}
}

// columnsOf returns the columns a table has on the server, to map template
// fields only to columns that exist (an operator may have dropped some).
func columnsOf(ctx context.Context, c *Client, db, tbl string) (map[string]bool, error) {
	rows, err := c.Query(ctx, "SELECT name FROM system.columns WHERE database = "+literal(db)+" AND table = "+literal(tbl))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range rows {
		out[r[0]] = true
	}
	return out, nil
}

// TableColumns returns the stored columns of a raw table, nil for an
// unknown table.
func TableColumns(table string) []string {
	for i := range tableSpecs {
		if tableSpecs[i].name == table {
			return newTable(&tableSpecs[i], i).names
		}
	}
	return nil
}
