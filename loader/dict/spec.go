package dict

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Dictionary names: each is a directory <dir>/<name>/ of .txt files.
const (
	AsnumLocal     = "asnum_local_dic"
	AsnumExclude   = "asnum_exclude_dic"
	SubnetsLocal   = "subnets_local_dic"
	SubnetsExclude = "subnets_exclude_dic"
	Subscribers    = "subscribers_dic"
	Switches       = "switches_dic"
	CRC            = "crc_dic"
	URLCats        = "urlcats_dic"
	URLCatsHost    = "urlcats_host_dic"
	VChannelName   = "vchannel_name_dic"
)

// colType is how a dictionary column is checked and stored.
type colType uint8

const (
	tText    colType = iota // any text (may be empty)
	tKey                    // text, not empty
	tUint8                  // decimal
	tUint16                 // decimal
	tUint32                 // decimal
	tUint64                 // decimal
	tAddr                   // an IPv4 or IPv6 address
	tAddrOpt                // an address or empty
	tPrefix                 // a CIDR or a bare address (a /32 or /128)
)

// column is one tab-separated column of a dictionary file.
type column struct {
	name string
	typ  colType
}

// Spec describes one dictionary: its file columns in order, as the legacy
// collector's manual gives them.
type Spec struct {
	Name    string
	columns []column
}

var asnumColumns = []column{{"asnum", tUint32}, {"name", tText}}

var subnetColumns = []column{{"subnet", tPrefix}, {"name", tText}}

// Specs are the dictionaries, in a fixed order.
var Specs = []Spec{
	{AsnumLocal, asnumColumns},
	{AsnumExclude, asnumColumns},
	{SubnetsLocal, subnetColumns},
	{SubnetsExclude, subnetColumns},
	{Subscribers, []column{
		{"ip", tAddr}, {"login", tText}, {"switch_id", tUint64}, {"switch_port", tText},
		{"vendor", tText}, {"cable", tText}, {"contract", tText}, {"services", tText}, {"mac", tText},
	}},
	{Switches, []column{
		{"id", tUint64}, {"name", tText}, {"type", tText}, {"region", tText}, {"address", tText},
		{"ip", tAddrOpt}, {"isp", tText}, {"trunk", tUint8}, {"upstream_id", tUint64},
		{"upstream_port", tText}, {"owner", tText},
	}},
	{CRC, []column{{"switch_id", tUint64}, {"switch_port", tText}, {"crc", tUint64}}},
	{URLCats, []column{{"id", tUint64}, {"name", tText}}},
	{URLCatsHost, []column{{"host", tKey}, {"category_id", tUint64}}},
	{VChannelName, []column{{"vchannel", tUint16}, {"name", tText}}},
}

// SpecOf returns the spec of a dictionary, nil for an unknown name.
func SpecOf(name string) *Spec {
	for i := range Specs {
		if Specs[i].Name == name {
			return &Specs[i]
		}
	}
	return nil
}

// Columns returns the names of the file's columns, in order.
func (s *Spec) Columns() []string {
	out := make([]string, len(s.columns))
	for i, c := range s.columns {
		out[i] = c.name
	}
	return out
}

// LineError is a line of a dictionary file that does not parse.
type LineError struct {
	File string // path of the file
	Line int    // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// Errors a LineError wraps.
var (
	ErrColumns = errors.New("wrong number of columns")
	ErrValue   = errors.New("bad value")
)

// parseFile splits content into rows of len(s.columns) fields and checks
// each field. The fields are substrings of content (no copy). A line ending
// in \r\n is taken as ending in \n; empty lines are skipped. The first bad
// line stops the parse. lines gets the line number of each row.
func (s *Spec) parseFile(path, content string, rows [][]string, lines *[]int32) ([][]string, error) {
	n := len(s.columns)
	line := 0
	for len(content) > 0 {
		line++
		var l string
		if i := strings.IndexByte(content, '\n'); i >= 0 {
			l, content = content[:i], content[i+1:]
		} else {
			l, content = content, ""
		}
		l = strings.TrimSuffix(l, "\r")
		if l == "" {
			continue
		}
		if got := strings.Count(l, "\t") + 1; got != n {
			return rows, &LineError{path, line, fmt.Errorf("%w: %d tab-separated, want %d (%s)", ErrColumns, got, n, strings.Join(s.Columns(), ", "))}
		}
		fields := strings.Split(l, "\t")
		for j, c := range s.columns {
			if err := c.check(fields[j]); err != nil {
				return rows, &LineError{path, line, fmt.Errorf("%w: column %d (%s): %w", ErrValue, j+1, c.name, err)}
			}
		}
		rows = append(rows, fields)
		*lines = append(*lines, int32(line))
	}
	return rows, nil
}

func (c column) check(v string) error {
	var err error
	switch c.typ {
	case tKey:
		if strings.TrimSpace(v) == "" {
			err = errors.New("empty")
		}
	case tUint8:
		_, err = strconv.ParseUint(v, 10, 8)
	case tUint16:
		_, err = strconv.ParseUint(v, 10, 16)
	case tUint32:
		_, err = strconv.ParseUint(v, 10, 32)
	case tUint64:
		_, err = strconv.ParseUint(v, 10, 64)
	case tAddr:
		_, err = parseAddr(v)
	case tAddrOpt:
		if v != "" {
			_, err = parseAddr(v)
		}
	case tPrefix:
		_, err = parsePrefix(v)
	}
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) {
			err = fmt.Errorf("%q: %w", v, ne.Err)
		}
	}
	return err
}

func parseAddr(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return a, err
	}
	if a.Zone() != "" {
		return a, fmt.Errorf("%q: zone not allowed", v)
	}
	return a.Unmap(), nil
}

// parsePrefix reads a CIDR ("10.64.66.0/24") or a bare address
// ("172.16.0.0", a /32; "2a02:2168:aaa:bbb::2", a /128). Host bits are
// cleared: "10.64.66.7/24" is 10.64.66.0/24.
func parsePrefix(v string) (netip.Prefix, error) {
	if !strings.Contains(v, "/") {
		a, err := parseAddr(v)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return p, err
	}
	if p.Addr().Is4In6() {
		return p, fmt.Errorf("%q: IPv4-mapped prefix; write the IPv4 form", v)
	}
	return p.Masked(), nil
}

func mustUint(v string) uint64 {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		panic("BUG: unchecked number " + v)
	}
	return n
}

func mustAddr(v string) netip.Addr {
	a, err := parseAddr(v)
	if err != nil {
		panic("BUG: unchecked address " + v)
	}
	return a
}

func mustPrefix(v string) netip.Prefix {
	p, err := parsePrefix(v)
	if err != nil {
		panic("BUG: unchecked prefix " + v)
	}
	return p
}
