package dict

import (
	"fmt"
	"net/netip"
	"strings"
)

// Dict is one loaded version of a dictionary: its rows (the fields as
// written in its files, in file order) and the index its lookups use.
// Immutable once built; safe for concurrent use. The zero rows of a
// dictionary with no files make an empty Dict, whose lookups find nothing.
type Dict struct {
	Spec  *Spec
	Rows  [][]string // shared by every reader: never modify
	Files []string   // the files it was read from, in read order
	Hash  string     // SHA-256 of the files' names and contents, hex

	asn      map[uint32]int32  // asnum dictionaries
	prefixes []netip.Prefix    // subnets dictionaries, by row
	table    prefixTable       // subnets dictionaries
	addrs    map[addr128]int32 // subscribers_dic
	switchID []uint64          // subscribers_dic, by row
	ids      map[uint64]int32  // switches_dic, urlcats_dic
	crc      map[crcKey]int32  // crc_dic
	hosts    map[string]int32  // urlcats_host_dic
	vchan    map[uint16]int32  // vchannel_name_dic
}

type crcKey struct {
	id   uint64
	port string
}

// Len returns the number of rows.
func (d *Dict) Len() int { return len(d.Rows) }

// build indexes rows (already checked against the spec). Of two rows with
// the same key, the later one wins, as a reload of the legacy dictionary
// would. It returns a *LineError for a switches_dic whose upstream links
// loop; files and lines give each row's place for that message.
func build(s *Spec, rows [][]string, where func(row int) (string, int)) (*Dict, error) {
	d := &Dict{Spec: s, Rows: rows}
	switch s.Name {
	case AsnumLocal, AsnumExclude:
		d.asn = make(map[uint32]int32, len(rows))
		for i, r := range rows {
			d.asn[uint32(mustUint(r[0]))] = int32(i)
		}
	case SubnetsLocal, SubnetsExclude:
		d.prefixes = make([]netip.Prefix, len(rows))
		for i, r := range rows {
			d.prefixes[i] = mustPrefix(r[0])
		}
		d.table = buildPrefixTable(d.prefixes)
	case Subscribers:
		d.addrs = make(map[addr128]int32, len(rows))
		d.switchID = make([]uint64, len(rows))
		for i, r := range rows {
			d.addrs[toAddr128(mustAddr(r[0]))] = int32(i)
			d.switchID[i] = mustUint(r[2])
		}
	case Switches, URLCats:
		d.ids = make(map[uint64]int32, len(rows))
		for i, r := range rows {
			d.ids[mustUint(r[0])] = int32(i)
		}
		if s.Name == Switches {
			if err := d.checkHierarchy(where); err != nil {
				return nil, err
			}
		}
	case CRC:
		d.crc = make(map[crcKey]int32, len(rows))
		for i, r := range rows {
			d.crc[crcKey{mustUint(r[0]), r[1]}] = int32(i)
		}
	case URLCatsHost:
		d.hosts = make(map[string]int32, len(rows))
		for i, r := range rows {
			d.hosts[normHost(r[0])] = int32(i)
		}
	case VChannelName:
		d.vchan = make(map[uint16]int32, len(rows))
		for i, r := range rows {
			d.vchan[uint16(mustUint(r[0]))] = int32(i)
		}
	default:
		panic("BUG: no index for dictionary " + s.Name)
	}
	return d, nil
}

// HasAS reports whether an asnum dictionary lists asn.
func (d *Dict) HasAS(asn uint32) bool {
	_, ok := d.asn[asn]
	return ok
}

// ASName returns the name of asn in an asnum dictionary.
func (d *Dict) ASName(asn uint32) (string, bool) {
	i, ok := d.asn[asn]
	if !ok {
		return "", false
	}
	return d.Rows[i][1], true
}

// Subnet returns the longest subnet of a subnets dictionary holding a and its
// name.
func (d *Dict) Subnet(a netip.Addr) (netip.Prefix, string, bool) {
	i := d.table.lookup(toAddr128(a.Unmap()))
	if i < 0 {
		return netip.Prefix{}, "", false
	}
	return d.prefixes[i], d.Rows[i][1], true
}

// Contains reports whether a subnets dictionary holds a.
func (d *Dict) Contains(a netip.Addr) bool { return d.table.lookup(toAddr128(a.Unmap())) >= 0 }

// ContainsV4 is Contains for an IPv4 address as a host-order uint32.
func (d *Dict) ContainsV4(v4 uint32) bool { return d.table.lookup(v4Addr128(v4)) >= 0 }

// ContainsV6 is Contains for the 16 bytes of an IPv6 address.
func (d *Dict) ContainsV6(b *[16]byte) bool { return d.table.lookup(v6Addr128(b)) >= 0 }

// Subscriber is a row of subscribers_dic.
type Subscriber struct {
	Addr                                          netip.Addr
	Login                                         string
	SwitchID                                      uint64
	SwitchPort, Vendor, Cable, Contract, Services string
	MAC                                           string // reserved by the legacy format
}

// Subscriber returns the subscriber with address a.
func (d *Dict) Subscriber(a netip.Addr) (Subscriber, bool) {
	a = a.Unmap()
	i, ok := d.addrs[toAddr128(a)]
	if !ok {
		return Subscriber{}, false
	}
	r := d.Rows[i]
	return Subscriber{
		Addr: a, Login: r[1], SwitchID: d.switchID[i], SwitchPort: r[3],
		Vendor: r[4], Cable: r[5], Contract: r[6], Services: r[7], MAC: r[8],
	}, true
}

// Switch is a row of switches_dic.
type Switch struct {
	ID                          uint64
	Name, Type, Region, Address string
	IP                          netip.Addr // invalid when empty
	ISP                         string
	Trunk                       bool
	UpstreamID                  uint64 // 0: none
	UpstreamPort, Owner         string
}

func (d *Dict) switchAt(i int32) Switch {
	r := d.Rows[i]
	var ip netip.Addr
	if r[5] != "" {
		ip = mustAddr(r[5])
	}
	return Switch{
		ID: mustUint(r[0]), Name: r[1], Type: r[2], Region: r[3], Address: r[4], IP: ip, ISP: r[6],
		Trunk: r[7] != "0", UpstreamID: mustUint(r[8]), UpstreamPort: r[9], Owner: r[10],
	}
}

// Switch returns the switch with id.
func (d *Dict) Switch(id uint64) (Switch, bool) {
	i, ok := d.ids[id]
	if !ok {
		return Switch{}, false
	}
	return d.switchAt(i), true
}

// SwitchPath returns the switch with id and its upstream switches, nearest
// first, up to one whose upstream is 0 or not in the dictionary (the
// hierarchy's top, as ClickHouse hierarchical dictionaries end it).
func (d *Dict) SwitchPath(id uint64) []Switch {
	var out []Switch
	for id != 0 {
		i, ok := d.ids[id]
		if !ok || len(out) > len(d.Rows) { // the length check is a guard; build refuses loops
			break
		}
		s := d.switchAt(i)
		out = append(out, s)
		id = s.UpstreamID
	}
	return out
}

// checkHierarchy refuses upstream links that loop (a switch its own
// upstream, directly or not), naming the row that closes the loop.
func (d *Dict) checkHierarchy(where func(row int) (string, int)) error {
	state := make(map[uint64]uint8, len(d.ids)) // 1 on the current walk, 2 done
	for r := range d.Rows {                     // in file order, so the error names the same line every time
		id := mustUint(d.Rows[r][0])
		i := d.ids[id]
		if int(i) != r || state[id] == 2 {
			continue
		}
		var walk []uint64
		cur, row := id, i
		for {
			if state[cur] == 2 {
				break
			}
			if state[cur] == 1 {
				f, l := where(int(row))
				return &LineError{f, l, fmt.Errorf("%w: switch %d: the upstream chain from switch %d comes back to it", ErrValue, cur, id)}
			}
			state[cur] = 1
			walk = append(walk, cur)
			up := mustUint(d.Rows[row][8])
			j, ok := d.ids[up]
			if up == 0 || !ok {
				break
			}
			cur, row = up, j
		}
		for _, w := range walk {
			state[w] = 2
		}
	}
	return nil
}

// CRC returns the CRC error count of a switch port (crc_dic).
func (d *Dict) CRC(switchID uint64, port string) (uint64, bool) {
	i, ok := d.crc[crcKey{switchID, port}]
	if !ok {
		return 0, false
	}
	return mustUint(d.Rows[i][2]), true
}

// Category returns the name of a host category id (urlcats_dic).
func (d *Dict) Category(id uint64) (string, bool) {
	i, ok := d.ids[id]
	if !ok {
		return "", false
	}
	return d.Rows[i][1], true
}

// HostCategory returns the category id of host (urlcats_host_dic): the row
// of the host itself, else of its nearest parent domain listed
// (www.example.com falls back to example.com, then com). Case and a final
// dot are ignored.
func (d *Dict) HostCategory(host string) (uint64, bool) {
	host = strings.TrimSuffix(host, ".")
	for host != "" {
		if i, ok := d.hosts[host]; ok {
			return mustUint(d.Rows[i][1]), true
		}
		if i, ok := d.hosts[strings.ToLower(host)]; ok {
			return mustUint(d.Rows[i][1]), true
		}
		dot := strings.IndexByte(host, '.')
		if dot < 0 {
			break
		}
		host = host[dot+1:]
	}
	return 0, false
}

func normHost(h string) string { return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), ".")) }

// VChannelName returns the name of a vchannel (vchannel_name_dic).
func (d *Dict) VChannelName(v uint16) (string, bool) {
	i, ok := d.vchan[v]
	if !ok {
		return "", false
	}
	return d.Rows[i][1], true
}
