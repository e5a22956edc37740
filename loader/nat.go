package loader

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// NATAggFields are the natflow columns of NAT_AGG_LOG_FIELDS_TO_SAVE_BITMASK,
// bit 0x1 first, as the legacy manual lists them: protocol ID, event type,
// source IPv4, source port, destination IPv4, destination port, post-NAT
// source IPv4, post-NAT source port, session ID, login, DPI ID.
var NATAggFields = []string{
	"protocol_identifier", "nat_event", "source_ipv4_address", "source_transport_port",
	"destination_ipv4_address", "destination_transport_port", "post_nat_source_ipv4_address",
	"post_napt_source_transport_port", "session_id", "login", "dpi",
}

const (
	natAggTable   = "natflow_agg"
	natAggView    = "natflow_agg_mv_"    // + fields and interval: a changed setting makes a new view
	natAggFFView  = "natflow_agg_ff_mv_" // the same, over fullflow (NAT_IMPORT_FROM_FULLFLOW)
	natImportView = "natflow_from_fullflow_mv"
)

// natView is a view (or the table) the NAT settings ask for.
type natView struct{ name, ddl string }

// natObjects returns natflow_agg and the views the NAT settings ask for
// (local tables on a cluster: each shard aggregates its own rows).
//
// Events derived from fullflow reach natflow through natflow_from_fullflow_mv
// marked from_fullflow = 1. ClickHouse 18.16 does not run natflow's views
// for rows a view inserts, later versions do; so natflow's aggregate view
// takes only rows with from_fullflow = 0 and a second one aggregates the
// derived events straight from fullflow: each event counts once on either.
func (s *schema) natObjects() []natView {
	src := s.byName["natflow"]
	suffix := fmt.Sprintf("%03x_%dm", s.nat.AggFields, int(s.nat.AggInterval/time.Minute))
	period := int64(s.nat.AggInterval / time.Second)
	cols := []string{"`date` Date", "`time` DateTime"}
	keys := []string{"`time`"}
	for _, f := range NATAggFields {
		cols = append(cols, quote(f)+" "+typeName(src.columns[src.byName[f]], s.caps))
		keys = append(keys, quote(f))
	}
	cols = append(cols, "`events` UInt64")
	out := []natView{{natAggTable, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n  %s\n) ENGINE = SummingMergeTree((`events`))\nPARTITION BY toYYYYMM(`date`)\nORDER BY (%s)",
		s.qualified(s.localName(natAggTable)), strings.Join(cols, ",\n  "), strings.Join(keys, ", "))}}

	// view aggregates table; expr maps a field to its expression there.
	view := func(name, table, date, tm, where string, expr func(string) string) natView {
		sel := []string{quote(date) + " AS `date`", fmt.Sprintf("toDateTime(intDiv(toUInt32(%s), %d) * %d) AS `time`", quote(tm), period, period)}
		group := []string{"`date`", "`time`"}
		for bit, f := range NATAggFields {
			c := src.columns[src.byName[f]]
			switch {
			case s.nat.AggFields&(1<<bit) != 0:
				sel = append(sel, expr(f)+" AS "+quote(f))
				group = append(group, quote(f))
			case c.Kind == kString:
				sel = append(sel, "'' AS "+quote(f))
			default:
				sel = append(sel, "CAST(0 AS "+typeName(c, s.caps)+") AS "+quote(f))
			}
		}
		sel = append(sel, "count() AS `events`")
		return natView{name, fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s TO %s AS SELECT %s FROM %s WHERE %s GROUP BY %s",
			s.qualified(s.localName(name)), s.qualified(s.localName(natAggTable)), strings.Join(sel, ", "),
			s.qualified(s.localName(table)), where, strings.Join(group, ", "))}
	}
	out = append(out, view(natAggView+suffix, "natflow", "date", "time", "`from_fullflow` = 0", quote))
	if !s.nat.ImportFromFullflow {
		return out
	}
	const derived = "toUInt32(`post_nat_source_ipv4_address`) != 0"
	out = append(out, view(natAggFFView+suffix, "fullflow", "flow_start_date", "flow_start_time", derived, func(f string) string {
		if f == "nat_event" {
			return "toUInt8(1)"
		}
		return quote(f)
	}))
	out = append(out, natView{natImportView, fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s TO %s AS SELECT "+
		"`dpi`, `flow_start_date` AS `date`, `flow_start_time` AS `time`, "+
		"toUInt64(toUInt32(`flow_start_time`)) * 1000 AS `observation_time_milliseconds`, toUInt8(1) AS `nat_event`, "+
		"`protocol_identifier`, `source_ipv4_address`, `source_ipv6_address`, `source_transport_port`, "+
		"`destination_ipv4_address`, `destination_ipv6_address`, `destination_transport_port`, "+
		"`post_nat_source_ipv4_address`, `post_napt_source_transport_port`, `session_id`, `login`, "+
		"toUInt8(1) AS `from_fullflow`, `_batch` FROM %s WHERE %s",
		s.qualified(s.localName(natImportView)), s.qualified(s.localName("natflow")), s.qualified(s.localName("fullflow")), derived)})
	return out
}

// natStale returns the DROP statements of NAT views that exist but that
// the settings no longer ask for.
func (s *schema) natStale(exists map[string]bool) []string {
	want := map[string]bool{}
	for _, v := range s.natObjects() {
		want[s.localName(v.name)] = true
	}
	var out []string
	for name := range exists {
		ours := strings.HasPrefix(name, natAggView) || strings.HasPrefix(name, natAggFFView) || strings.HasPrefix(name, natImportView)
		if ours && !want[name] {
			out = append(out, "DROP TABLE IF EXISTS "+s.qualified(name))
		}
	}
	slices.Sort(out)
	return out
}
