package loader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// binding maps the fields of one template onto the columns of its table.
type binding struct {
	table     *table
	src       []int // per table column: template field index, -1 for none
	skipped   []string
	timeField int // field giving the record's time, -1: the message's export time
	timeKind  kind
	shardFld  int // field of the sharding column, -1: shard 0
	// hourField gives the row's partition hour: hourFromTime (the derived
	// time column holds the record's time), hourZero (the hour column is
	// empty) or the index of the field the hour column holds.
	hourField int
	enrich    *enrichment // nil: rows as sent (enrich.go)
}

const (
	hourFromTime = -2
	hourZero     = -1
)

// legacyHour is the hour of a batch keyed by day alone: ledger rows written
// before raw tables were partitioned by hour (their hour column reads 255).
const legacyHour = 255

func elementKey(f ipfix.FieldSpecifier) string {
	return fmt.Sprintf("e%d/%d", f.EnterpriseNumber, f.ID)
}

// shape names a template by its fields, for records that have no table.
func shape(t *ipfix.Template) string {
	var b strings.Builder
	if t.Options {
		b.WriteString("options:")
	}
	for i, f := range t.Fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(elementKey(f))
	}
	return b.String()
}

// fits reports whether a field of the given length can be stored in a column
// of kind k.
func fits(k kind, length uint16) bool {
	if length == ipfix.VariableLength {
		return k == kString
	}
	switch k {
	case kUint8, kUint16, kUint32, kUint64, kInt8, kInt16, kInt32, kInt64, kDateTime, kTimeMs:
		return length >= 1 && length <= 8
	case kFloat32, kFloat64:
		return length == 4 || length == 8
	case kBool:
		return length == 1
	case kMAC:
		return length == 6
	case kTimeUs, kTimeNs:
		return length == 8
	case kIPv4:
		return length == 4
	case kIPv6:
		return length == 16
	}
	return true // strings
}

// bind maps template t: the table is picked by signature elements (the
// dump's stream name breaks no ties: templates decide), then every field goes
// to the column named after its element, if that column exists and can hold it.
func (l *Loader) bind(t *ipfix.Template, stream string) *binding {
	b := &binding{timeField: -1, shardFld: -1}
	if t.Options {
		return b
	}
	names := make(map[string]bool, len(t.Fields))
	for _, f := range t.Fields {
		if e := ipfix.LookupElement(f.EnterpriseNumber, f.ID); e != nil {
			names[e.Name] = true
		}
	}
	for _, tb := range l.schema.tables {
		for _, sig := range tb.spec.signature {
			if names[sig] {
				b.table = tb
				break
			}
		}
		if b.table != nil {
			break
		}
	}
	if b.table == nil {
		// No signature: a template of the dump's own stream still loads into
		// that stream's table when some of its fields have columns there.
		tb := l.schema.byName[stream]
		if tb == nil {
			return b
		}
		n := 0
		for name := range names {
			if _, ok := tb.byName[SnakeCase(name)]; ok {
				n++
			}
		}
		if n == 0 {
			return b
		}
		b.table = tb
	}
	tb := b.table
	l.mu.Lock()
	onServer := l.serverColumns[tb.spec.name]
	l.mu.Unlock()
	b.src = make([]int, len(tb.columns))
	for i := range b.src {
		b.src[i] = -1
	}
	for i, f := range t.Fields {
		e := ipfix.LookupElement(f.EnterpriseNumber, f.ID)
		if e == nil {
			b.skipped = append(b.skipped, elementKey(f))
			continue
		}
		col := SnakeCase(e.Name)
		if e.Type == ipfix.IPv4Address && f.Length == 16 {
			col += v6Suffix
		}
		ci, ok := tb.byName[col]
		if !ok || (onServer != nil && !onServer[col]) || b.src[ci] >= 0 || !fits(tb.columns[ci].Kind, f.Length) {
			b.skipped = append(b.skipped, elementKey(f))
			continue
		}
		b.src[ci] = i
	}
	for _, te := range tb.spec.timeElements {
		for i, f := range t.Fields {
			e := ipfix.LookupElement(f.EnterpriseNumber, f.ID)
			if e != nil && e.Name == te && fits(kindOf(e), f.Length) {
				b.timeField, b.timeKind = i, kindOf(e)
				break
			}
		}
		if b.timeField >= 0 {
			break
		}
	}
	b.hourField = hourZero
	if ci := tb.byName[tb.spec.hourColumn()]; tb.columns[ci].Role == roleTime {
		b.hourField = hourFromTime
	} else if b.src[ci] >= 0 {
		b.hourField = b.src[ci]
	}
	if len(l.shards) > 1 {
		if ci, ok := tb.byName[l.schema.shardColumn(tb)]; ok {
			b.shardFld = b.src[ci]
		}
	}
	l.bindEnrich(b, t)
	return b
}

// batchKey is one (table, day, hour) stream of a dump's records, one
// partition; ordinals count its records in file order. Dumps whose ledger
// predates hourly partitions keep hour legacyHour (the whole day).
type batchKey struct {
	table *table
	day   uint16
	hour  uint8
}

// shardBuf holds the rows of a batch bound for one shard.
type shardBuf struct {
	id   uint64
	rows uint64
	buf  []byte
}

// batch is a range of ordinals of one (table, day), split by shard.
type batch struct {
	start, count uint64
	rows         int
	shards       []shardBuf
}

// fileLoad is the state of loading one dump.
type fileLoad struct {
	l        *Loader
	d        Dump
	rec      recovery
	bindings map[*ipfix.Template]*binding
	ordinals map[batchKey]uint64
	batches  map[batchKey]*batch
	pending  []ledgerRow // done rows not yet written
	sum      fileSummary
	dpi      uint16
	set      *dict.Set     // the dictionaries, one version per dump
	scratch  []ipfix.Value // a record's values with a replaced login
}

// flushError carries an error of an insert out of the decoder callback.
type flushError struct{ err error }

func (e *flushError) Error() string { return e.err.Error() }
func (e *flushError) Unwrap() error { return e.err }

// load loads one dump and finishes it (loaded/, deleted or bad/). It returns
// an error only when the dump must be tried again later (ctx ended, the dump
// cannot be read).
func (l *Loader) load(ctx context.Context, d Dump) error {
	key, err := ledgerKey(d)
	if err != nil {
		l.m.errors[errIO].Inc()
		return fmt.Errorf("dump %s: %w", d.Path, err)
	}
	d.key = key
	err = l.loadDump(ctx, d)
	var pb *partialBatchError
	if errors.As(err, &pb) {
		return l.finish(d, &fileSummary{Bad: fmt.Sprintf("dump %s: %v", d.Path, err)})
	}
	return err
}

func (l *Loader) loadDump(ctx context.Context, d Dump) error {
	start := time.Now()
	rec, err := l.recover(ctx, d)
	if err != nil {
		return err
	}
	d.key = rec.key
	if rec.finished != nil {
		l.log.Info("dump already loaded, finishing it", "file", d.Name)
		return l.finish(d, rec.finished)
	}
	f, err := os.Open(d.Path)
	if err != nil {
		l.m.errors[errIO].Inc()
		return fmt.Errorf("dump %s: %w", d.Path, err)
	}
	defer f.Close()
	fl := &fileLoad{
		l: l, d: d, rec: rec, dpi: uint16(d.DPI),
		bindings: map[*ipfix.Template]*binding{},
		ordinals: map[batchKey]uint64{},
		batches:  map[batchKey]*batch{},
		sum:      fileSummary{Rows: map[string]int64{}},
		set:      l.dictSet(),
	}
	fr := ipfix.NewFileReader(f)
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	messages := 0
	for {
		msg, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *ipfix.ParseError
			if !errors.As(err, &pe) {
				l.m.errors[errIO].Inc()
				return fmt.Errorf("dump %s: read: %w", d.Path, err)
			}
			if errors.Is(err, ipfix.ErrSetLength) {
				// The message's sets do not add up, but its header does:
				// the next message is where the header says.
				fl.skipped(pe, int64(pe.Offset), 1)
				continue
			}
			// Framing is lost (version, message length) or the tail is torn:
			// the rest of the file cannot be read.
			fl.sum.Bad = err.Error()
			break
		}
		messages++
		exportTime := binary.BigEndian.Uint32(msg[4:8])
		derr := dec.Decode(msg, time.Now(), func(r *ipfix.Record) error {
			return fl.add(ctx, r, exportTime)
		})
		if derr != nil {
			var fe *flushError
			if errors.As(derr, &fe) {
				return fe.err
			}
			var pe *ipfix.ParseError
			if !errors.As(derr, &pe) {
				return fmt.Errorf("dump %s: message at offset %d: %w", d.Path, fr.Offset(), derr)
			}
			// ipfix/errors.go: drop the set and go on; Decode has used every
			// other set of the message.
			fl.skipped(pe, fr.Offset()+int64(pe.Offset), max(dec.SkippedSets(), 1))
		}
	}
	if messages == 0 && fl.sum.Bad == "" {
		fl.sum.Bad = "empty dump: no IPFIX message at offset 0"
	}
	keys := make([]batchKey, 0, len(fl.batches))
	for k := range fl.batches {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].table.index != keys[j].table.index {
			return keys[i].table.index < keys[j].table.index
		}
		if keys[i].day != keys[j].day {
			return keys[i].day < keys[j].day
		}
		return keys[i].hour < keys[j].hour
	})
	for _, k := range keys {
		if err := fl.flush(ctx, k); err != nil {
			return err
		}
	}
	fl.sum.Seconds = math.Round(time.Since(start).Seconds()*1000) / 1000
	if fl.sum.Bad != "" {
		fl.sum.Bad = fmt.Sprintf("dump %s: %s", d.Path, fl.sum.Bad)
	}
	row := ledgerRow{File: d.key, State: stateFile, Detail: fl.sum.String(), At: time.Now()}
	if err := l.writeLedger(ctx, append(fl.pending, row)); err != nil {
		return err
	}
	var total int64
	for _, n := range fl.sum.Rows {
		total += n
	}
	rate := 0.0
	if fl.sum.Seconds > 0 {
		rate = float64(total) / fl.sum.Seconds
	}
	l.log.Info("dump loaded", "file", d.Name, "records", fl.sum.Records, "rows", total,
		"already_loaded", fl.sum.Skipped, "seconds", fl.sum.Seconds, "rows_per_second", int64(rate),
		"skipped_fields", len(fl.sum.SkippedFields), "unmapped_records", sumMap(fl.sum.Unmapped))
	return l.finish(d, &fl.sum)
}

// Kinds of ipfix_loader_skipped_sets_total: what a set was dropped for.
const (
	skipUnknownTemplate   = "unknown_template"   // a data set of a template not (yet) defined
	skipUnknownWithdrawal = "unknown_withdrawal" // a withdrawal of a template not defined
	skipBadTemplate       = "bad_template"       // a malformed template record
	skipFieldLength       = "field_length"       // a data record overruns its set
	skipSetLength         = "set_length"         // the sets of a message do not add up: the message is skipped
)

var skipKinds = []string{skipUnknownTemplate, skipUnknownWithdrawal, skipBadTemplate, skipFieldLength, skipSetLength}

func skipKind(err error) string {
	switch {
	case errors.Is(err, ipfix.ErrUnknownTemplate):
		return skipUnknownTemplate
	case errors.Is(err, ipfix.ErrUnknownWithdrawal):
		return skipUnknownWithdrawal
	case errors.Is(err, ipfix.ErrTemplate):
		return skipBadTemplate
	case errors.Is(err, ipfix.ErrFieldLength):
		return skipFieldLength
	}
	return skipSetLength
}

// skipped counts n sets dropped at file offset off (a message with several
// faulty sets counts them all under the kind of its first) and logs at most
// one such drop per 5 seconds, naming file and offset.
func (fl *fileLoad) skipped(pe *ipfix.ParseError, off int64, n int) {
	kind := skipKind(pe)
	fl.l.m.skippedSets[kind].Add(n)
	if fl.sum.SkippedSets == nil {
		fl.sum.SkippedSets = map[string]int64{}
	}
	fl.sum.SkippedSets[kind] += int64(n)
	l := fl.l
	l.mu.Lock()
	logIt := time.Since(l.lastSkipLog) >= 5*time.Second
	if logIt {
		l.lastSkipLog = time.Now()
	}
	l.mu.Unlock()
	if logIt {
		l.log.Warn("set skipped, loading goes on", "file", fl.d.Path, "offset", off, "kind", kind, "sets", n, "err", pe.Err)
	}
}

func sumMap(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// finish moves a loaded dump to loaded/ (or deletes it), or a damaged one to
// bad/ with its sidecar.
func (l *Loader) finish(d Dump, s *fileSummary) error {
	l.m.lastLoad.Store(time.Now().Unix())
	if s.Bad != "" {
		why := fmt.Sprintf("file: %s\nerror: %s\nrecords_loaded_before_damage: %d\n", d.Path, s.Bad, s.Records)
		if err := dump.Quarantine(d.Path, why); err != nil {
			l.m.errors[errIO].Inc()
			return fmt.Errorf("dump %s: quarantine: %w", d.Path, err)
		}
		l.m.errors[errDecode].Inc()
		l.m.filesBad.Inc()
		l.log.Warn("dump quarantined", "file", d.Path, "err", s.Bad)
		return nil
	}
	if err := dump.Retire(d.Path, l.cfg.AfterLoad == "delete"); err != nil {
		l.m.errors[errIO].Inc()
		return fmt.Errorf("dump %s: %w", d.Path, err)
	}
	l.m.filesLoaded.Inc()
	return nil
}

// add encodes one record into its batch, flushing the batch when full.
func (fl *fileLoad) add(ctx context.Context, r *ipfix.Record, exportTime uint32) error {
	fl.sum.Records++
	b := fl.bindings[r.Template]
	if b == nil {
		b = fl.l.bind(r.Template, fl.d.Stream)
		fl.bindings[r.Template] = b
		if b.table == nil && !r.Template.Options {
			fl.l.logShape(fl.d, r.Template)
		}
	}
	if b.table == nil {
		if r.Template.Options {
			fl.sum.OptionsRecords++
			fl.l.m.optionsRecords.Inc()
			return nil
		}
		if fl.sum.Unmapped == nil {
			fl.sum.Unmapped = map[string]int64{}
		}
		fl.sum.Unmapped[shape(r.Template)]++
		fl.l.m.unmappedRecords.Inc()
		return nil
	}
	if len(b.skipped) > 0 {
		if fl.sum.SkippedFields == nil {
			fl.sum.SkippedFields = map[string]int64{}
		}
		for _, k := range b.skipped {
			fl.sum.SkippedFields[k]++
		}
		fl.l.m.skippedFields.Add(len(b.skipped))
	}
	vals := r.Values
	var sec int64 = int64(exportTime)
	if b.timeField >= 0 {
		v := vals[b.timeField]
		switch b.timeKind {
		case kDateTime:
			sec = int64(v.Uint())
		case kTimeMs:
			sec = int64(v.Uint() / 1000)
		default:
			sec = v.Time().Unix()
		}
	}
	if sec < 0 {
		sec = 0
	}
	day := uint16(min(sec/86400, math.MaxUint16))
	var shard uint16
	if b.shardFld >= 0 {
		shard = fl.l.pickShard(vals[b.shardFld].Raw)
	}
	hour := uint8(legacyHour)
	if !fl.rec.byDay {
		switch b.hourField {
		case hourFromTime:
			hour = uint8(sec % 86400 / 3600)
		case hourZero:
			hour = 0
		default:
			hour = uint8(uint32(vals[b.hourField].Uint()) % 86400 / 3600)
		}
	}
	key := batchKey{b.table, day, hour}
	ord := fl.ordinals[key]
	fl.ordinals[key] = ord + 1
	if ord < fl.rec.loaded[loadKey{b.table.spec.name, day, hour, shard}] {
		fl.sum.Skipped++
		return nil
	}
	bt := fl.batches[key]
	if bt == nil {
		bt = &batch{start: ord, shards: make([]shardBuf, len(fl.l.shards))}
		fl.batches[key] = bt
	}
	bt.count = ord + 1 - bt.start
	if b.enrich != nil {
		var drop bool
		if b, vals, drop = fl.enrich(b, vals); drop {
			return nil // its ordinal stays in the batch's range: a replay skips it too
		}
	}
	sb := &bt.shards[shard]
	if sb.id == 0 {
		sb.id = rand.Uint64() | 1
	}
	sb.buf = fl.encode(sb.buf, b, vals, day, uint32(sec), sb.id)
	sb.rows++
	bt.rows++
	if bt.rows >= fl.l.cfg.BatchRows {
		if err := fl.flush(ctx, key); err != nil {
			return &flushError{err}
		}
	}
	return nil
}

// encode appends one RowBinary row.
func (fl *fileLoad) encode(dst []byte, b *binding, vals []ipfix.Value, day uint16, sec uint32, id uint64) []byte {
	le := binary.LittleEndian
	for ci, c := range b.table.columns {
		switch c.Role {
		case roleDPI:
			dst = le.AppendUint16(dst, fl.dpi)
			continue
		case roleDate:
			dst = le.AppendUint16(dst, day)
			continue
		case roleTime:
			dst = le.AppendUint32(dst, sec)
			continue
		case roleBatch:
			dst = le.AppendUint64(dst, id)
			continue
		case roleZero:
			dst = appendZero(dst, c.Kind)
			continue
		}
		fi := b.src[ci]
		if fi < 0 {
			dst = appendZero(dst, c.Kind)
			continue
		}
		v := vals[fi]
		switch c.Kind {
		case kUint8, kInt8:
			dst = append(dst, byte(v.Uint()))
		case kUint16:
			dst = le.AppendUint16(dst, uint16(v.Uint()))
		case kUint32, kIPv4, kDateTime:
			dst = le.AppendUint32(dst, uint32(v.Uint()))
		case kUint64, kMAC, kTimeMs:
			dst = le.AppendUint64(dst, v.Uint())
		case kInt16:
			dst = le.AppendUint16(dst, uint16(v.Int()))
		case kInt32:
			dst = le.AppendUint32(dst, uint32(v.Int()))
		case kInt64:
			dst = le.AppendUint64(dst, uint64(v.Int()))
		case kFloat32:
			dst = le.AppendUint32(dst, math.Float32bits(float32(v.Float())))
		case kFloat64:
			dst = le.AppendUint64(dst, math.Float64bits(v.Float()))
		case kBool:
			if v.Uint() == 1 {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		case kTimeUs:
			dst = le.AppendUint64(dst, uint64(v.Time().UnixMicro()))
		case kTimeNs:
			dst = le.AppendUint64(dst, uint64(v.Time().UnixNano()))
		case kIPv6:
			dst = append(dst, v.Raw...)
		case kString:
			dst = binary.AppendUvarint(dst, uint64(len(v.Raw)))
			dst = append(dst, v.Raw...)
		default:
			panic("BUG: unhandled column kind")
		}
	}
	return dst
}

var zeros [16]byte

func appendZero(dst []byte, k kind) []byte {
	switch k {
	case kUint8, kInt8, kBool, kString:
		return append(dst, 0)
	case kUint16, kInt16, kDate:
		return append(dst, zeros[:2]...)
	case kUint32, kInt32, kFloat32, kIPv4, kDateTime:
		return append(dst, zeros[:4]...)
	case kIPv6:
		return append(dst, zeros[:16]...)
	}
	return append(dst, zeros[:8]...)
}

// flush inserts a batch exactly once: first the intent rows go to the
// ledger (with the done rows of earlier batches), then each shard's rows in
// one atomic insert; the done rows follow with the next ledger write.
func (fl *fileLoad) flush(ctx context.Context, key batchKey) error {
	bt := fl.batches[key]
	if bt == nil || bt.count == 0 { // a batch of dropped records only still records its range
		delete(fl.batches, key)
		return nil
	}
	l := fl.l
	now := time.Now()
	name := key.table.spec.name
	base := ledgerRow{File: fl.d.key, Table: name, Day: key.day, Hour: key.hour, Start: bt.start, Rows: bt.count, At: now}
	rows := fl.pending
	fl.pending = nil
	var done []ledgerRow
	for s := range bt.shards {
		sb := &bt.shards[s]
		r := base
		r.Shard, r.ShardRows, r.Batch = uint16(s), sb.rows, sb.id
		if sb.rows == 0 {
			// Nothing for this shard: done at once, so its prefix of
			// loaded ordinals still advances.
			r.State = stateDone
			rows = append(rows, r)
			continue
		}
		r.Checksum = crc32.ChecksumIEEE(sb.buf)
		r.State = stateIntent
		rows = append(rows, r)
		r.State = stateDone
		done = append(done, r)
	}
	if err := l.writeLedger(ctx, rows); err != nil {
		return err
	}
	for s := range bt.shards {
		sb := &bt.shards[s]
		if sb.rows == 0 {
			continue
		}
		if err := l.insertBatch(ctx, key.table, key.day, uint16(s), sb); err != nil {
			return err
		}
		fl.sum.Rows[name] += int64(sb.rows)
	}
	fl.pending = append(fl.pending, done...)
	delete(fl.batches, key)
	return nil
}

// insertBatch inserts one shard's rows of a batch. After a failed request the
// outcome is unknown: it waits, counts the batch's rows (all or none, the
// insert is atomic) and inserts again only if none are there.
func (l *Loader) insertBatch(ctx context.Context, t *table, day, shard uint16, sb *shardBuf) error {
	c := l.shards[shard]
	tbl := l.schema.qualified(l.schema.localName(t.spec.name))
	qid := queryID(sb.id)
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := c.Insert(ctx, tbl, t.names, qid, sb.buf)
		if err == nil {
			l.m.up.Store(1)
			l.m.insertDuration[t.spec.name].observe(time.Since(start))
			l.m.records[t.spec.name].Add(int(sb.rows))
			l.m.bytes[t.spec.name].Add(len(sb.buf))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.noteFailure("insert", err)
		if code := ErrorCode(err); code == codeUnknownTable || code == codeUnknownDatabase || code == codeNoSuchColumn {
			if merr := l.retry(ctx, "migrate", func() error { return l.migrate(ctx) }); merr != nil {
				return merr
			}
		}
		if !sleepCtx(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(backoff*2, l.opts.RetryMax)
		var n uint64
		err = l.retry(ctx, "count batch", func() error {
			var err error
			n, err = l.countBatch(ctx, t.spec.name, day, shard, sb.id)
			return err
		})
		if err != nil {
			return err
		}
		switch {
		case n == sb.rows:
			l.m.records[t.spec.name].Add(int(sb.rows))
			return nil
		case n != 0:
			l.m.errors[errPartialBatch].Inc()
			return &partialBatchError{table: t.spec.name, batch: sb.id, got: n, want: sb.rows}
		}
	}
}

// pickShard maps a sharding key value to a shard by FNV-1a hash, weighted as
// remote_servers weighs the shards.
func (l *Loader) pickShard(key []byte) uint16 {
	h := uint64(14695981039346656037) // FNV-1a 64
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return l.slots[h%uint64(len(l.slots))]
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
