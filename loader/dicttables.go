package loader

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// DictTables keeps one ClickHouse table per dictionary, named like the
// dictionary (subnets_local_dic, ...), for the reports to join. Its Publish
// is a dict.Config.Publish: it fills <name>_new, then swaps it in with one
// RENAME TABLE statement (ClickHouse renames all its tables under one global
// lock, so a query sees the old table or the new one; 18.16 has no EXCHANGE
// TABLES), then drops the old one.
//
// Columns: the file's columns under their names, in file order (numbers as
// UInt*, text as String); after them, an address column (subscribers_dic ip, switches_dic ip) also as
// <name>_ipv4 and <name>_ipv6, typed as the raw tables' addresses so a join
// compares like with like (the other family's column is zero); a subnet
// column also as ip_version, <name>_first_ipv4, <name>_last_ipv4,
// <name>_first_ipv6, <name>_last_ipv6 (a range test: addr BETWEEN first AND
// last). Safe for concurrent use of different dictionaries.
type DictTables struct {
	db      string
	caps    Capabilities
	targets []*Client
}

// NewDictTables returns the publisher of dictionary tables in database db on
// every target (the server, or each shard of a cluster: joins run locally).
func NewDictTables(db string, caps Capabilities, targets ...*Client) *DictTables {
	return &DictTables{db: db, caps: caps, targets: targets}
}

// dictColumn is one column of a dictionary table.
type dictColumn struct {
	name string
	typ  string // ClickHouse type
	src  int    // file column
	part string // "": the value itself; "ipv4", "ipv6", "version", "first_ipv4", ...
}

func (p *DictTables) columns(s *dict.Spec) []dictColumn {
	v4 := typeName(Column{Kind: kIPv4}, p.caps)
	v6 := typeName(Column{Kind: kIPv6}, p.caps)
	// The file's columns first, in file order, so SELECT * reads like the
	// file; the derived address columns after them.
	var out, derived []dictColumn
	for i, c := range s.Columns() {
		switch c.Type {
		case dict.Uint8:
			out = append(out, dictColumn{c.Name, "UInt8", i, ""})
		case dict.Uint16:
			out = append(out, dictColumn{c.Name, "UInt16", i, ""})
		case dict.Uint32:
			out = append(out, dictColumn{c.Name, "UInt32", i, ""})
		case dict.Uint64:
			out = append(out, dictColumn{c.Name, "UInt64", i, ""})
		case dict.Addr, dict.AddrOpt:
			out = append(out, dictColumn{c.Name, "String", i, ""})
			derived = append(derived, dictColumn{c.Name + "_ipv4", v4, i, "ipv4"}, dictColumn{c.Name + "_ipv6", v6, i, "ipv6"})
		case dict.Prefix:
			out = append(out, dictColumn{c.Name, "String", i, ""})
			derived = append(derived, dictColumn{"ip_version", "UInt8", i, "version"},
				dictColumn{c.Name + "_first_ipv4", v4, i, "first_ipv4"}, dictColumn{c.Name + "_last_ipv4", v4, i, "last_ipv4"},
				dictColumn{c.Name + "_first_ipv6", v6, i, "first_ipv6"}, dictColumn{c.Name + "_last_ipv6", v6, i, "last_ipv6"})
		default:
			out = append(out, dictColumn{c.Name, "String", i, ""})
		}
	}
	return append(out, derived...)
}

// DDL returns the CREATE TABLE of dictionary s under the name table.
func (p *DictTables) DDL(s *dict.Spec, table string) string {
	var cols []string
	for _, c := range p.columns(s) {
		cols = append(cols, quote(c.name)+" "+c.typ)
	}
	return fmt.Sprintf("CREATE TABLE %s (\n  %s\n) ENGINE = MergeTree ORDER BY tuple()",
		quote(p.db)+"."+quote(table), strings.Join(cols, ",\n  "))
}

// encode returns the rows of d in RowBinary, in the order of columns.
func (p *DictTables) encode(d *dict.Dict, cols []dictColumn) ([]byte, error) {
	le := binary.LittleEndian
	var out []byte
	for ri, r := range d.Rows {
		for _, c := range cols {
			v := r[c.src]
			switch c.part {
			case "":
				switch c.typ {
				case "UInt8", "UInt16", "UInt32", "UInt64":
					bits, _ := strconv.Atoi(strings.TrimPrefix(c.typ, "UInt"))
					n, err := strconv.ParseUint(v, 10, bits)
					if err != nil {
						return nil, fmt.Errorf("%s row %d: %w", d.Spec.Name, ri+1, err)
					}
					switch bits {
					case 8:
						out = append(out, byte(n))
					case 16:
						out = le.AppendUint16(out, uint16(n))
					case 32:
						out = le.AppendUint32(out, uint32(n))
					default:
						out = le.AppendUint64(out, n)
					}
				default:
					out = binary.AppendUvarint(out, uint64(len(v)))
					out = append(out, v...)
				}
			case "ipv4", "ipv6":
				var a netip.Addr
				if v != "" {
					var err error
					if a, err = dict.ParseAddr(v); err != nil {
						return nil, fmt.Errorf("%s row %d: %w", d.Spec.Name, ri+1, err)
					}
				}
				out = appendAddr(out, c.part, a)
			default:
				pfx, err := dict.ParsePrefix(v)
				if err != nil {
					return nil, fmt.Errorf("%s row %d: %w", d.Spec.Name, ri+1, err)
				}
				first, last := pfx.Addr(), lastAddr(pfx)
				switch c.part {
				case "version":
					if first.Is4() {
						out = append(out, 4)
					} else {
						out = append(out, 6)
					}
				case "first_ipv4", "first_ipv6":
					out = appendAddr(out, strings.TrimPrefix(c.part, "first_"), first)
				case "last_ipv4", "last_ipv6":
					out = appendAddr(out, strings.TrimPrefix(c.part, "last_"), last)
				}
			}
		}
	}
	return out, nil
}

// appendAddr appends a as an IPv4 (UInt32) or IPv6 (16 bytes) column value;
// the zero value when a is of the other family or invalid.
func appendAddr(out []byte, family string, a netip.Addr) []byte {
	if family == "ipv4" {
		var n uint32
		if a.Is4() {
			b := a.As4()
			n = binary.BigEndian.Uint32(b[:])
		}
		return binary.LittleEndian.AppendUint32(out, n)
	}
	if a.Is6() {
		b := a.As16()
		return append(out, b[:]...)
	}
	return append(out, zeros[:16]...)
}

// lastAddr is the last address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	if p.Addr().Is4() {
		b := p.Addr().As4()
		n := binary.BigEndian.Uint32(b[:]) | ^uint32(0)>>p.Bits()
		binary.BigEndian.PutUint32(b[:], n)
		return netip.AddrFrom4(b)
	}
	b := p.Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}

// Publish replaces the table of d on every target.
func (p *DictTables) Publish(ctx context.Context, d *dict.Dict) error {
	cols := p.columns(d.Spec)
	body, err := p.encode(d, cols)
	if err != nil {
		return err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	for _, c := range p.targets {
		if err := p.replace(ctx, c, d, names, body); err != nil {
			return fmt.Errorf("dictionary table %s on %s: %w", d.Spec.Name, c.URL(), err)
		}
	}
	return nil
}

func (p *DictTables) replace(ctx context.Context, c *Client, d *dict.Dict, names []string, body []byte) error {
	name := d.Spec.Name
	q := func(t string) string { return quote(p.db) + "." + quote(t) }
	// Leftovers of an interrupted replacement go first.
	for _, t := range []string{name + "_new", name + "_old"} {
		if err := c.Exec(ctx, "DROP TABLE IF EXISTS "+q(t)); err != nil {
			return err
		}
	}
	if err := c.Exec(ctx, p.DDL(d.Spec, name+"_new")); err != nil {
		return err
	}
	if d.Len() > 0 {
		if err := c.Insert(ctx, q(name+"_new"), names, "", body); err != nil {
			return err
		}
	}
	rows, err := c.Query(ctx, "SELECT count() FROM system.tables WHERE database = "+literal(p.db)+" AND name = "+literal(name))
	if err != nil {
		return err
	}
	if len(rows) == 1 && rows[0][0] == "1" {
		if err := c.Exec(ctx, "RENAME TABLE "+q(name)+" TO "+q(name+"_old")+", "+q(name+"_new")+" TO "+q(name)); err != nil {
			return err
		}
		return c.Exec(ctx, "DROP TABLE IF EXISTS "+q(name+"_old"))
	}
	return c.Exec(ctx, "RENAME TABLE "+q(name+"_new")+" TO "+q(name))
}
