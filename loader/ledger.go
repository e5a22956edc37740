package loader

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Ledger states (Enum8 values of _ledger.state).
const (
	stateIntent  int8 = 1 // a batch is about to be inserted
	stateDone    int8 = 2 // the batch is in its table
	stateAborted int8 = 3 // the batch never reached its table (found at recovery)
	stateFile    int8 = 4 // the whole dump is loaded; detail holds the summary
)

// ledgerRow is one row of _ledger.
type ledgerRow struct {
	File      string
	State     int8
	Table     string
	Day       uint16 // days since 1970-01-01 (the batch's partition)
	Hour      uint8  // hour of the day (UTC) of the batch's partition; legacyHour: the whole day
	Shard     uint16
	Start     uint64 // first ordinal of the batch among the dump's records of (table, day, hour)
	Rows      uint64 // ordinals covered by the batch
	ShardRows uint64 // rows of the batch that went to this shard
	Batch     uint64 // value of the _batch column of those rows
	Checksum  uint32 // CRC-32 (IEEE) of the RowBinary rows
	Detail    string
	At        time.Time
}

var ledgerColumns = []string{"file", "state", "table", "date", "hour", "shard", "start", "rows", "shard_rows", "batch", "checksum", "detail", "at"}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func encodeLedger(rows []ledgerRow) []byte {
	var b []byte
	for _, r := range rows {
		b = appendString(b, r.File)
		b = append(b, byte(r.State))
		b = appendString(b, r.Table)
		b = binary.LittleEndian.AppendUint16(b, r.Day)
		b = append(b, r.Hour)
		b = binary.LittleEndian.AppendUint16(b, r.Shard)
		b = binary.LittleEndian.AppendUint64(b, r.Start)
		b = binary.LittleEndian.AppendUint64(b, r.Rows)
		b = binary.LittleEndian.AppendUint64(b, r.ShardRows)
		b = binary.LittleEndian.AppendUint64(b, r.Batch)
		b = binary.LittleEndian.AppendUint32(b, r.Checksum)
		b = appendString(b, r.Detail)
		b = binary.LittleEndian.AppendUint32(b, uint32(r.At.Unix()))
	}
	return b
}

// readLedger returns the ledger rows of one dump.
func (l *Loader) readLedger(ctx context.Context, file string) ([]ledgerRow, error) {
	rows, err := l.main.Query(ctx, fmt.Sprintf(
		"SELECT toInt8(state), table, toUInt16(date), shard, start, rows, shard_rows, batch, checksum, detail, toUInt32(at), hour FROM %s WHERE file = %s",
		l.schema.qualified(ledgerTable), literal(file)))
	if err != nil {
		return nil, err
	}
	out := make([]ledgerRow, 0, len(rows))
	for _, r := range rows {
		if len(r) != 12 {
			return nil, fmt.Errorf("ledger of %s: %d columns", file, len(r))
		}
		u := func(i int) uint64 { v, _ := strconv.ParseUint(r[i], 10, 64); return v }
		st, _ := strconv.ParseInt(r[0], 10, 8)
		out = append(out, ledgerRow{
			File: file, State: int8(st), Table: r[1], Day: uint16(u(2)), Shard: uint16(u(3)),
			Start: u(4), Rows: u(5), ShardRows: u(6), Batch: u(7), Checksum: uint32(u(8)),
			Detail: r[9], At: time.Unix(int64(u(10)), 0), Hour: uint8(u(11)),
		})
	}
	return out, nil
}

// writeLedger inserts ledger rows, retrying until it succeeds or ctx ends.
// Repeating rows is harmless: the ledger is read as a set.
func (l *Loader) writeLedger(ctx context.Context, rows []ledgerRow) error {
	if len(rows) == 0 {
		return nil
	}
	body := encodeLedger(rows)
	return l.retry(ctx, "write ledger", func() error {
		return l.main.Insert(ctx, l.schema.qualified(ledgerTable), ledgerColumns, "", body)
	})
}

// fileSummary is the detail of a dump's stateFile row.
type fileSummary struct {
	Records        int64            `json:"records"`        // data records decoded
	Rows           map[string]int64 `json:"rows,omitempty"` // rows inserted by table, this run
	Skipped        int64            `json:"already_loaded"` // records found loaded before a restart
	SkippedFields  map[string]int64 `json:"skipped_fields,omitempty"`
	SkippedSets    map[string]int64 `json:"skipped_sets,omitempty"` // sets dropped by kind (decode errors)
	Unmapped       map[string]int64 `json:"unmapped,omitempty"`     // records by template shape
	OptionsRecords int64            `json:"options_records,omitempty"`
	Bad            string           `json:"bad,omitempty"` // why the dump went to bad/
	Seconds        float64          `json:"seconds"`
}

func (s fileSummary) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

type loadKey struct {
	table string
	day   uint16
	hour  uint8
	shard uint16
}

// recovery is what a dump's ledger says is already loaded.
type recovery struct {
	key      string             // the dump's ledger key
	finished *fileSummary       // the dump is loaded; finish it
	loaded   map[loadKey]uint64 // ordinals [0, n) of (table, day, hour, shard) are in their table
	// byDay: an older loader began this dump and numbered its records per
	// (table, day); go on that way (hour legacyHour) so the ordinals match.
	byDay bool
}

// recover reads the ledger of a dump and settles the batches whose outcome is
// unknown (an intent without done or aborted: the loader stopped between
// writing the intent and recording the insert's result). For those it waits
// until no insert with the batch's query id runs, counts the batch's rows in
// its table and records done (all rows there) or aborted (none). Inserts are
// atomic, so a partial count means someone else changed the table.
func (l *Loader) recover(ctx context.Context, d Dump) (recovery, error) {
	if d.key == "" {
		panic("BUG: recover of a dump without ledger key")
	}
	rec := recovery{loaded: map[loadKey]uint64{}}
	var rows []ledgerRow
	err := l.retry(ctx, "read ledger", func() error {
		var err error
		rows, err = l.readLedger(ctx, d.key)
		if err != nil || len(rows) > 0 || d.key == d.Name {
			return err
		}
		// A legacy dump whose load an older loader, which keyed the ledger
		// by name alone, left unfinished: go on under that key. A finished
		// one under that name was another dump of the same name.
		old, err := l.readLedger(ctx, d.Name)
		if err == nil && len(old) > 0 && !slices.ContainsFunc(old, func(r ledgerRow) bool { return r.State == stateFile }) {
			rows = old
			d.key = d.Name
		}
		return err
	})
	if err != nil {
		return rec, err
	}
	rec.key = d.key
	settled := map[uint64]bool{}
	var intents []ledgerRow
	for _, r := range rows {
		switch r.State {
		case stateFile:
			var s fileSummary
			_ = json.Unmarshal([]byte(r.Detail), &s)
			rec.finished = &s
			return rec, nil
		case stateDone, stateAborted:
			settled[r.Batch] = true
		}
	}
	seen := map[uint64]bool{}
	for _, r := range rows {
		if r.State == stateIntent && !settled[r.Batch] && !seen[r.Batch] {
			seen[r.Batch] = true
			intents = append(intents, r)
		}
	}
	if len(intents) > 0 {
		l.log.Info("recovering batches of unknown outcome", "file", d.Name, "ledger_key", d.key, "batches", len(intents))
		select {
		case <-time.After(l.opts.Settle):
		case <-ctx.Done():
			return rec, ctx.Err()
		}
		var resolved []ledgerRow
		for _, in := range intents {
			var n uint64
			err := l.retry(ctx, "count batch", func() error {
				var err error
				n, err = l.countBatch(ctx, in.Table, in.Day, in.Shard, in.Batch)
				return err
			})
			if err != nil {
				return rec, err
			}
			out := in
			out.At = time.Now()
			switch {
			case n == in.ShardRows:
				out.State = stateDone
				l.m.recoveredDone.Inc()
			case n == 0:
				out.State = stateAborted
				l.m.recoveredAborted.Inc()
			default:
				l.m.errors[errPartialBatch].Inc()
				return rec, &partialBatchError{table: in.Table, batch: in.Batch, got: n, want: in.ShardRows}
			}
			resolved = append(resolved, out)
			rows = append(rows, out)
		}
		if err := l.writeLedger(ctx, resolved); err != nil {
			return rec, err
		}
	}
	// Batches of (table, day, hour, shard) are inserted in ordinal order,
	// one at a time, so the done ones cover a prefix of the ordinals.
	ranges := map[loadKey][][2]uint64{}
	for _, r := range rows {
		if r.Hour == legacyHour {
			rec.byDay = true
		}
		if r.State == stateDone {
			k := loadKey{r.Table, r.Day, r.Hour, r.Shard}
			ranges[k] = append(ranges[k], [2]uint64{r.Start, r.Start + r.Rows})
		}
	}
	for k, rs := range ranges {
		sort.Slice(rs, func(i, j int) bool { return rs[i][0] < rs[j][0] })
		var cur uint64
		for _, r := range rs {
			if r[0] > cur {
				break
			}
			cur = max(cur, r[1])
		}
		rec.loaded[k] = cur
	}
	return rec, nil
}

type partialBatchError struct {
	table     string
	batch     uint64
	got, want uint64
}

func (e *partialBatchError) Error() string {
	return fmt.Sprintf("batch %d of table %s is partly inserted (%d of %d rows); delete it with ALTER TABLE %s DELETE WHERE _batch = %d, then load the dump again",
		e.batch, e.table, e.got, e.want, e.table, e.batch)
}

func queryID(batch uint64) string { return fmt.Sprintf("ipfix-loader-%016x", batch) }

// countBatch waits until no insert of the batch runs on its shard, then
// counts its rows.
func (l *Loader) countBatch(ctx context.Context, tbl string, day, shard uint16, batch uint64) (uint64, error) {
	t := l.schema.byName[tbl]
	if t == nil || int(shard) >= len(l.shards) {
		return 0, fmt.Errorf("ledger names unknown table %q or shard %d", tbl, shard)
	}
	c := l.shards[shard]
	qid := queryID(batch)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n, err := c.QueryValue(ctx, "SELECT count() FROM system.processes WHERE query_id = "+literal(qid))
		if err != nil {
			return 0, err
		}
		if n == "0" {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("insert %s still running after 5m", qid)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	v, err := c.QueryValue(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE %s = %s AND _batch = %d",
		l.schema.qualified(l.schema.localName(tbl)), quote(t.spec.dateColumn), dayLiteral(day), batch))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(v, 10, 64)
}

// dayLiteral is a Date literal of a day number.
func dayLiteral(day uint16) string {
	return "toDate('" + time.Unix(int64(day)*86400, 0).UTC().Format("2006-01-02") + "')"
}
