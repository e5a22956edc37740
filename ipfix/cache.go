package ipfix

import (
	"bytes"
	"encoding/binary"
	"slices"
	"time"
)

// TemplateCache holds the templates of ONE exporter session (a TCP connection,
// or a UDP source address), keyed by (observation domain, template id), as RFC
// 7011 §8 scopes them. Not safe for concurrent use.
//
// With a lifetime (UDP, RFC 7011 §8.4) a template not refreshed within it is
// ignored by Lookup and removed by Expire; "now" is the latest time given to
// Learn, Decoder.Decode, Add or Expire (a zero time is ignored, so pass real
// times when there is a lifetime).
type TemplateCache struct {
	lifetime time.Duration
	now      int64 // unix nanoseconds
	limit    int   // most (domain, template id) pairs held; 0: no limit
	m        map[uint64]*cacheEntry
}

type cacheEntry struct {
	t       *Template
	odid    uint32
	learned int64 // unix nanoseconds
}

func cacheKey(odid uint32, id uint16) uint64 { return uint64(odid)<<16 | uint64(id) }

// NewTemplateCache returns an empty cache. A lifetime of 0 means templates never
// expire (TCP, RFC 7011 §8.3); for UDP use the template lifetime (§8.4).
func NewTemplateCache(lifetime time.Duration) *TemplateCache {
	return &TemplateCache{lifetime: lifetime, m: make(map[uint64]*cacheEntry)}
}

// SetLifetime changes the lifetime of the templates held and of those learned
// later (a reload of the template lifetime). Templates learned while the cache
// had no lifetime count as learned at now.
func (c *TemplateCache) SetLifetime(d time.Duration, now time.Time) {
	if c.lifetime <= 0 && d > 0 {
		c.lifetime = d
		c.tick(now)
		for _, e := range c.m {
			e.learned = c.now
		}
		return
	}
	c.lifetime = d
}

// SetLimit bounds the templates and options templates the cache holds, over
// all domains (expired ones until Expire removes them): Learn refuses a new one
// beyond n with ErrTooManyTemplates, while redefinitions of those held still
// apply. 0 means no limit; templates held above a lowered limit stay.
func (c *TemplateCache) SetLimit(n int) { c.limit = n }

func (c *TemplateCache) tick(now time.Time) {
	if c.lifetime > 0 && !now.IsZero() {
		if n := now.UnixNano(); n > c.now {
			c.now = n
		}
	}
}

func (c *TemplateCache) live(e *cacheEntry) bool {
	return c.lifetime <= 0 || c.now-e.learned <= int64(c.lifetime)
}

// Learn applies the template and options template sets of a checked message:
// definitions, redefinitions (same id replaces), withdrawals and withdraw-all
// (RFC 7011 §8.1). It reports whether msg contained any template or options
// template set (the balancer forwards those to every subreceiver). Errors are
// *ParseError: a malformed template record (ErrTemplate) skips the rest of its
// set; ErrUnknownWithdrawal is reported but harmless. The first error is
// returned after all sets were applied. Re-sending an identical template only
// refreshes its lifetime and does not allocate.
func (c *TemplateCache) Learn(msg []byte, now time.Time) (hadTemplates bool, err error) {
	if len(msg) < HeaderLen {
		return false, parseErr(0, 0, 0, ErrShortMessage)
	}
	c.tick(now)
	odid := binary.BigEndian.Uint32(msg[12:16])
	it := Sets(msg)
	for {
		s, ok := it.Next()
		if !ok {
			break
		}
		if s.ID != TemplateSetID && s.ID != OptionsTemplateSetID {
			continue
		}
		hadTemplates = true
		if serr := c.learnSet(odid, s); serr != nil && err == nil {
			err = serr
		}
	}
	if ierr := it.Err(); ierr != nil && err == nil {
		err = ierr
	}
	return hadTemplates, err
}

// learnSet applies one template or options template set.
func (c *TemplateCache) learnSet(odid uint32, s Set) error {
	var first error
	b := s.Body
	off := 0
	// RFC 7011 §3.3.1: padding is shorter than the smallest record (a 4-byte
	// withdrawal), so fewer than 4 bytes left are padding.
	for len(b)-off >= 4 {
		recOff := s.Offset + SetHeaderLen + off
		id := binary.BigEndian.Uint16(b[off:])
		n, err := templateRecordLength(b[off:], s.ID)
		if err != nil {
			if first == nil {
				first = parseErr(recOff, s.ID, id, ErrTemplate)
			}
			return first
		}
		rec := b[off : off+n]
		off += n
		if binary.BigEndian.Uint16(rec[2:4]) == 0 {
			if werr := c.withdraw(odid, s.ID, id); werr != nil && first == nil {
				first = parseErr(recOff, s.ID, id, werr)
			}
			continue
		}
		if id < MinDataSetID {
			if first == nil {
				first = parseErr(recOff, s.ID, id, ErrTemplate)
			}
			continue
		}
		key := cacheKey(odid, id)
		if e := c.m[key]; e != nil && e.t.Options == (s.ID == OptionsTemplateSetID) && bytes.Equal(e.t.Record, rec) {
			e.learned = c.now
			continue
		}
		if _, held := c.m[key]; !held && c.limit > 0 && len(c.m) >= c.limit {
			if first == nil {
				first = parseErr(recOff, s.ID, id, ErrTooManyTemplates)
			}
			continue
		}
		t, terr := parseTemplateRecord(rec, s.ID)
		if terr != nil {
			if first == nil {
				first = parseErr(recOff, s.ID, id, terr)
			}
			continue
		}
		c.m[key] = &cacheEntry{t: t, odid: odid, learned: c.now}
	}
	return first
}

// withdraw removes template id of domain odid, or all templates of the set's
// kind for the withdraw-all ids (2 in a template set, 3 in an options template
// set, RFC 7011 §8.1).
func (c *TemplateCache) withdraw(odid uint32, setID, id uint16) error {
	if id == setID {
		options := setID == OptionsTemplateSetID
		for k, e := range c.m {
			if e.odid == odid && e.t.Options == options {
				delete(c.m, k)
			}
		}
		return nil
	}
	if id < MinDataSetID {
		return ErrTemplate
	}
	key := cacheKey(odid, id)
	if _, ok := c.m[key]; !ok {
		return ErrUnknownWithdrawal
	}
	delete(c.m, key)
	return nil
}

// TemplateLookup finds the template of an observation domain by id: a
// *TemplateCache, or a view of one (the balancer's under other ids).
type TemplateLookup interface {
	Lookup(odid uint32, id uint16) *Template
}

var _ TemplateLookup = (*TemplateCache)(nil)

// Lookup returns template id of domain odid, or nil if it is unknown or expired.
func (c *TemplateCache) Lookup(odid uint32, id uint16) *Template {
	e := c.m[cacheKey(odid, id)]
	if e == nil || !c.live(e) {
		return nil
	}
	return e.t
}

// Add stores t for domain odid as if it had been learned at now (for tests,
// generators and restoring a cache handed over by another process).
func (c *TemplateCache) Add(odid uint32, t *Template, now time.Time) {
	c.tick(now)
	c.m[cacheKey(odid, t.ID)] = &cacheEntry{t: t, odid: odid, learned: c.now}
}

// Domains returns the observation domains holding a live template, sorted.
func (c *TemplateCache) Domains() []uint32 {
	var ds []uint32
	for _, e := range c.m {
		if c.live(e) {
			ds = append(ds, e.odid)
		}
	}
	slices.Sort(ds)
	return slices.Compact(ds)
}

// Len returns the number of live templates and options templates.
func (c *TemplateCache) Len() int {
	n := 0
	for _, e := range c.m {
		if c.live(e) {
			n++
		}
	}
	return n
}

// Templates returns the live templates of domain odid: templates by id, then
// options templates by id.
func (c *TemplateCache) Templates(odid uint32) []*Template {
	var ts []*Template
	for _, e := range c.m {
		if e.odid == odid && c.live(e) {
			ts = append(ts, e.t)
		}
	}
	slices.SortFunc(ts, func(a, b *Template) int {
		if a.Options != b.Options {
			if a.Options {
				return 1
			}
			return -1
		}
		return int(a.ID) - int(b.ID)
	})
	return ts
}

// Expire removes the templates whose lifetime has passed at now and returns how
// many it removed. It does nothing without a lifetime.
func (c *TemplateCache) Expire(now time.Time) int {
	c.tick(now)
	if c.lifetime <= 0 {
		return 0
	}
	n := 0
	for k, e := range c.m {
		if !c.live(e) {
			delete(c.m, k)
			n++
		}
	}
	return n
}

// AppendTemplateMessages appends to dst complete messages carrying every live
// template and options template of domain odid (templates first, in id order),
// each message at most maxSize bytes (clamped to 65535) and passing
// CheckMessage. A template record too large for maxSize gets a message of its
// own. All messages carry exportTime and seq: template-only messages do not
// advance sequence numbers (RFC 7011 §3.1). Nothing is appended when the
// domain has no templates.
func (c *TemplateCache) AppendTemplateMessages(dst []byte, odid uint32, exportTime, seq uint32, maxSize int) []byte {
	return appendTemplateMessages(dst, c.Templates(odid), odid, exportTime, seq, maxSize)
}

func appendTemplateMessages(dst []byte, ts []*Template, odid uint32, exportTime, seq uint32, maxSize int) []byte {
	mb := NewMessageBuilder(&dst, maxSize)
	for _, t := range ts {
		sid := t.setID()
		if !mb.Fits(sid, len(t.Record)) {
			mb.Finish(exportTime, seq, odid)
		}
		mb.Append(sid, t.Record, 0)
	}
	mb.Finish(exportTime, seq, odid)
	return dst
}

// RecordCount returns the number of data records in a checked message, using
// the templates of the cache (for sequence numbers, RFC 7011 §3.1). Data sets
// of unknown templates are not counted and reported as ErrUnknownTemplate
// after the rest was counted.
func (c *TemplateCache) RecordCount(msg []byte) (int, error) {
	if len(msg) < HeaderLen {
		return 0, parseErr(0, 0, 0, ErrShortMessage)
	}
	odid := binary.BigEndian.Uint32(msg[12:16])
	var first error
	total := 0
	it := Sets(msg)
	for {
		s, ok := it.Next()
		if !ok {
			break
		}
		if s.ID < MinDataSetID {
			continue
		}
		t := c.Lookup(odid, s.ID)
		if t == nil {
			if first == nil {
				first = parseErr(s.Offset, s.ID, s.ID, ErrUnknownTemplate)
			}
			continue
		}
		n, err := t.RecordCount(s.Body)
		total += n
		if err != nil && first == nil {
			shiftOffset(err, s.Offset+SetHeaderLen)
			first = err
		}
	}
	if err := it.Err(); err != nil {
		return total, err
	}
	return total, first
}
