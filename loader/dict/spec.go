package dict

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
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

// ColumnType is how a dictionary column is checked and stored.
type ColumnType uint8

const (
	Text    ColumnType = iota // any text (may be empty)
	Key                       // text, not empty
	Uint8                     // decimal
	Uint16                    // decimal
	Uint32                    // decimal
	Uint64                    // decimal
	Addr                      // an IPv4 or IPv6 address
	AddrOpt                   // an address or empty
	Prefix                    // a CIDR or a bare address (a /32 or /128)
)

// Column is one tab-separated column of a dictionary file.
type Column struct {
	Name string
	Type ColumnType
}

// Spec describes one dictionary: its file columns in order, as the legacy
// collector's manual gives them.
type Spec struct {
	Name    string
	columns []Column
}

var asnumColumns = []Column{{"asnum", Uint32}, {"name", Text}}

var subnetColumns = []Column{{"subnet", Prefix}, {"name", Text}}

// Specs are the dictionaries, in a fixed order.
var Specs = []Spec{
	{AsnumLocal, asnumColumns},
	{AsnumExclude, asnumColumns},
	{SubnetsLocal, subnetColumns},
	{SubnetsExclude, subnetColumns},
	{Subscribers, []Column{
		{"ip", Addr}, {"login", Text}, {"switch_id", Uint64}, {"switch_port", Text},
		{"vendor", Text}, {"cable", Text}, {"contract", Text}, {"services", Text}, {"mac", Text},
	}},
	{Switches, []Column{
		{"id", Uint64}, {"name", Text}, {"type", Text}, {"region", Text}, {"address", Text},
		{"ip", AddrOpt}, {"isp", Text}, {"trunk", Uint8}, {"upstream_id", Uint64},
		{"upstream_port", Text}, {"owner", Text},
	}},
	{CRC, []Column{{"switch_id", Uint64}, {"switch_port", Text}, {"crc", Uint64}}},
	{URLCats, []Column{{"id", Uint64}, {"name", Text}}},
	{URLCatsHost, []Column{{"host", Key}, {"category_id", Uint64}}},
	{VChannelName, []Column{{"vchannel", Uint16}, {"name", Text}}},
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

// ColumnNames returns the names of the file's columns, in order.
func (s *Spec) ColumnNames() []string {
	out := make([]string, len(s.columns))
	for i, c := range s.columns {
		out[i] = c.Name
	}
	return out
}

// Columns returns the file's columns, in order.
func (s *Spec) Columns() []Column { return slices.Clone(s.columns) }

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
			return rows, &LineError{path, line, fmt.Errorf("%w: %d tab-separated, want %d (%s)", ErrColumns, got, n, strings.Join(s.ColumnNames(), ", "))}
		}
		fields := strings.Split(l, "\t")
		for j, c := range s.columns {
			if err := c.check(fields[j]); err != nil {
				return rows, &LineError{path, line, fmt.Errorf("%w: column %d (%s): %w", ErrValue, j+1, c.Name, err)}
			}
		}
		rows = append(rows, fields)
		*lines = append(*lines, int32(line))
	}
	return rows, nil
}

func (c Column) check(v string) error {
	var err error
	switch c.Type {
	case Key:
		if strings.TrimSpace(v) == "" {
			err = errors.New("empty")
		}
	case Uint8:
		_, err = strconv.ParseUint(v, 10, 8)
	case Uint16:
		_, err = strconv.ParseUint(v, 10, 16)
	case Uint32:
		_, err = strconv.ParseUint(v, 10, 32)
	case Uint64:
		_, err = strconv.ParseUint(v, 10, 64)
	case Addr:
		_, err = ParseAddr(v)
	case AddrOpt:
		if v != "" {
			_, err = ParseAddr(v)
		}
	case Prefix:
		_, err = ParsePrefix(v)
	}
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) {
			err = fmt.Errorf("%q: %w", v, ne.Err)
		}
	}
	return err
}

// ParseAddr reads an address of a dictionary: IPv4 or IPv6, no zone; an
// IPv4-mapped IPv6 address is its IPv4 address.
func ParseAddr(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return a, err
	}
	if a.Zone() != "" {
		return a, fmt.Errorf("%q: zone not allowed", v)
	}
	return a.Unmap(), nil
}

// ParsePrefix reads a CIDR ("10.64.66.0/24") or a bare address
// ("172.16.0.0", a /32; "2a02:2168:aaa:bbb::2", a /128). Host bits are
// cleared: "10.64.66.7/24" is 10.64.66.0/24.
func ParsePrefix(v string) (netip.Prefix, error) {
	if !strings.Contains(v, "/") {
		a, err := ParseAddr(v)
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
	a, err := ParseAddr(v)
	if err != nil {
		panic("BUG: unchecked address " + v)
	}
	return a
}

func mustPrefix(v string) netip.Prefix {
	p, err := ParsePrefix(v)
	if err != nil {
		panic("BUG: unchecked prefix " + v)
	}
	return p
}
