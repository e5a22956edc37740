package loader

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"unsafe"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// Enrichment: the dictionaries (package dict) applied to fullflow and
// clickstream rows at load, after a record's ordinal is assigned, so a
// dropped record stays inside its batch's ordinal range and a replay skips
// it like a loaded one. Shards are picked from the values as the DPI sent
// them: a row's shard never depends on a dictionary, which may change
// between a crash and the replay.

// sidePairs are a table's source/destination column pairs that direction
// swaps, in this order: IPv4 addresses, IPv6 addresses, ports, AS numbers
// (README, "Traffic direction").
var sidePairs = map[string][][2]string{
	"fullflow": {
		{"source_ipv4_address", "destination_ipv4_address"},
		{"source_ipv6_address", "destination_ipv6_address"},
		{"source_transport_port", "destination_transport_port"},
		{"bgp_source_as_number", "bgp_destination_as_number"},
	},
	"clickstream": {
		{"ip_source", "ip_destination"},
		{"ip_source" + v6Suffix, "ip_destination" + v6Suffix},
		{"port_source", "port_destination"},
	},
}

// enrichment is what a template's binding needs to enrich its rows.
type enrichment struct {
	table            string
	policy           dict.Policy
	login            dict.LoginPolicy
	hasAS            bool
	srcV4, dstV4     int // template field indexes, -1: absent
	srcV6, dstV6     int
	srcPort, dstPort int
	srcAS, dstAS     int
	loginFld         int
	vchanFld         int
	nFields          int      // the replaced login is passed as value nFields
	plain, swapped   *binding // the bindings rows are encoded with
}

// bindEnrich adds the enrichment of b (bound to template t), when the
// loader enriches and b's table is fullflow or clickstream.
func (l *Loader) bindEnrich(b *binding, t *ipfix.Template) {
	pairs, ok := sidePairs[b.table.spec.name]
	if !ok || l.policy.Off() && l.login.Replace == dict.LoginAsIs {
		return // rows as sent: no per-row work, even with dictionaries loaded
	}
	tb := b.table
	fld := func(col string) int {
		if ci, ok := tb.byName[col]; ok {
			return b.src[ci]
		}
		return -1
	}
	e := &enrichment{table: tb.spec.name, policy: l.policy, login: l.login, hasAS: tb.spec.name == "fullflow",
		loginFld: fld("login"), vchanFld: fld("bridge_channel_num"), nFields: len(t.Fields)}
	// sidePairs order: IPv4 addresses, IPv6 addresses, ports, then AS numbers
	// (fullflow only).
	e.srcV4, e.dstV4 = fld(pairs[0][0]), fld(pairs[0][1])
	e.srcV6, e.dstV6 = fld(pairs[1][0]), fld(pairs[1][1])
	e.srcPort, e.dstPort = fld(pairs[2][0]), fld(pairs[2][1])
	e.srcAS, e.dstAS = -1, -1
	if len(pairs) > 3 {
		e.srcAS, e.dstAS = fld(pairs[3][0]), fld(pairs[3][1])
	}
	plain := *b
	plain.src = slices.Clone(b.src)
	if ci, ok := tb.byName["login"]; ok && e.login.Replace != dict.LoginAsIs && e.vchanFld >= 0 {
		plain.src[ci] = e.nFields
	} else {
		e.login.Replace = dict.LoginAsIs // no login column or no vchannel: logins stay
	}
	swapped := plain
	swapped.src = slices.Clone(plain.src)
	for _, p := range pairs {
		a, okA := tb.byName[p[0]]
		c, okC := tb.byName[p[1]]
		if okA && okC {
			swapped.src[a], swapped.src[c] = swapped.src[c], swapped.src[a]
		}
	}
	e.plain, e.swapped = &plain, &swapped
	b.enrich = e
}

// addrOf returns the address in field v4 (4 bytes) or, when absent or
// 0.0.0.0, in field v6 (16 bytes); invalid when neither holds one.
func addrOf(vals []ipfix.Value, v4, v6 int) netip.Addr {
	if v4 >= 0 {
		if r := vals[v4].Raw; len(r) == 4 && (r[0]|r[1]|r[2]|r[3]) != 0 {
			return netip.AddrFrom4([4]byte(r))
		}
	}
	if v6 >= 0 {
		if r := vals[v6].Raw; len(r) == 16 {
			return netip.AddrFrom16([16]byte(r)).Unmap()
		}
	}
	return netip.Addr{}
}

func uintOf(vals []ipfix.Value, i int) uint64 {
	if i < 0 {
		return 0
	}
	return vals[i].Uint()
}

// enrich applies direction, filters and the login policy to one record: it
// returns the binding to encode it with and its values, or drop. It
// allocates nothing once fl.scratch has grown.
func (fl *fileLoad) enrich(b *binding, vals []ipfix.Value) (*binding, []ipfix.Value, bool) {
	e := b.enrich
	out := e.plain
	if !e.policy.Off() {
		f := dict.Flow{
			SrcAddr: addrOf(vals, e.srcV4, e.srcV6), DstAddr: addrOf(vals, e.dstV4, e.dstV6),
			SrcPort: uint16(uintOf(vals, e.srcPort)), DstPort: uint16(uintOf(vals, e.dstPort)),
			SrcAS: uint32(uintOf(vals, e.srcAS)), DstAS: uint32(uintOf(vals, e.dstAS)), HasAS: e.hasAS,
		}
		swapped, v := e.policy.Apply(fl.set, &f)
		switch v {
		case dict.DropFilter:
			fl.l.em.filtered[e.table].Inc()
			return nil, nil, true
		case dict.DropExclude:
			fl.l.em.excluded[e.table].Inc()
			return nil, nil, true
		}
		if swapped {
			out = e.swapped
			fl.l.em.swapped[e.table].Inc()
		}
	}
	if e.login.Replace != dict.LoginAsIs {
		var login string
		if e.loginFld >= 0 {
			r := vals[e.loginFld].Raw
			login = unsafe.String(unsafe.SliceData(r), len(r)) // read only, for this call
		}
		nl := e.login.Login(fl.set, login, uint16(vals[e.vchanFld].Uint()))
		fl.scratch = append(append(fl.scratch[:0], vals...), ipfix.Value{Raw: unsafe.Slice(unsafe.StringData(nl), len(nl))})
		vals = fl.scratch
	}
	return out, vals, false
}

// enrichMetrics count what enrichment did, by table.
type enrichMetrics struct {
	filtered, excluded, swapped map[string]*metrics.Counter
}

func newEnrichMetrics(s *metrics.Set) *enrichMetrics {
	m := &enrichMetrics{filtered: map[string]*metrics.Counter{}, excluded: map[string]*metrics.Counter{}, swapped: map[string]*metrics.Counter{}}
	for t := range sidePairs {
		m.filtered[t] = s.NewCounter(fmt.Sprintf(`ipfix_loader_dropped_records_total{table=%q,reason=%q}`, t, dict.DropFilter))
		m.excluded[t] = s.NewCounter(fmt.Sprintf(`ipfix_loader_dropped_records_total{table=%q,reason=%q}`, t, dict.DropExclude))
		m.swapped[t] = s.NewCounter(fmt.Sprintf(`ipfix_loader_swapped_records_total{table=%q}`, t))
	}
	return m
}

// newDicts returns the dictionary watcher of cfg, nil without a dictionary dir.
func (l *Loader) newDicts() (*dict.Watcher, error) {
	if l.cfg.Dictionaries == "" {
		return nil, nil
	}
	return dict.New(dict.Config{Dir: l.cfg.Dictionaries, PollEvery: l.opts.DictionaryPollEvery, Publish: l.publishDict, Metrics: l.m.set}, l.log)
}

// publishDict replaces a dictionary's table on every target. Called by the
// watcher's goroutine, so it reads what migrate set under l.mu.
func (l *Loader) publishDict(ctx context.Context, d *dict.Dict) error {
	l.mu.Lock()
	p := l.dictTables
	l.mu.Unlock()
	if p == nil {
		return errors.New("schema not migrated yet")
	}
	return p.Publish(ctx, d)
}

// dictSet returns the dictionaries in force (empty without a dictionary dir).
func (l *Loader) dictSet() *dict.Set {
	if l.dicts == nil {
		return emptyDicts
	}
	return l.dicts.Current()
}

var emptyDicts = dict.EmptySet()

// loadDicts loads the dictionaries before the first dump. A dictionary the
// configured policies read that is refused at start is an error: loading
// without it would drop (filter) or mislabel every row. Other refusals are
// logged and counted; the watcher keeps trying.
func (l *Loader) loadDicts(ctx context.Context) error {
	if l.dicts == nil {
		return nil
	}
	// The pattern files the legacy collector shipped, where it kept them.
	if err := dict.WriteSamples(l.cfg.Dictionaries); err != nil {
		l.log.Warn("dictionary samples not written", "dir", l.cfg.Dictionaries, "err", err)
	}
	_ = l.dicts.Load(ctx)
	var needed []string
	p := l.policy
	if p.Direction != dict.ModeOff || p.Filter != dict.ModeOff {
		needed = append(needed, dict.AsnumLocal, dict.SubnetsLocal)
	}
	if p.Exclude != dict.ModeOff {
		needed = append(needed, dict.AsnumExclude, dict.SubnetsExclude)
	}
	if l.login.UseDict && l.login.Replace != dict.LoginAsIs {
		needed = append(needed, dict.VChannelName)
	}
	var errs []error
	for _, n := range needed {
		if err := l.dicts.Refused(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
