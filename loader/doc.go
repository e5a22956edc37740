// Package loader loads closed dump files (IPFIX Files, RFC 5655, written by
// the balancer's Recording mode) into ClickHouse, exactly once.
//
// # What it does
//
// The loader scans <dir>/<stream>/ for closed dumps, named as package dump
// says (writers use another name until a file is closed, so .part files are
// never picked), oldest window first, every file of a window, several at
// once. It decodes each with package ipfix and maps every
// template field to the column named after its information element
// (snake_case: sourceIPv4Address -> source_ipv4_address); the table is
// chosen by the template's elements (a template with rawData goes to raw,
// with domain to dnsflow, ..., with octetDeltaCount to fullflow), not by a
// fixed field list. Fields without a column are counted per element and
// skipped; records whose template has no table are counted by template
// shape. Every raw table has a dpi column (from the dump's name) and a day
// column (flow_start_date, or date); with the hour (UTC) of flow_start_time
// or time_stamp it partitions the table by hour, so retention by dropping
// partitions keeps a row between Retention and Retention + 1h + dropEvery.
//
// A loaded dump moves to <dir>/<stream>/loaded/ (or is deleted); a damaged
// one goes to <dir>/<stream>/bad/ with a sidecar <name>.why naming the file,
// the offset and the error, after its records before the damage are loaded.
//
// # Schema
//
// Migrate reads version(), system.data_type_families, system.settings and
// system.merge_tree_settings and picks the DDL: on ClickHouse 18.16 UInt32 /
// FixedString(16) addresses, UInt64 milliseconds, and retention by dropping
// hour partitions; on modern servers IPv4/IPv6, DateTime64, LowCardinality,
// CODEC and TTL. The RowBinary bytes of both variants are the same, so one
// row encoder serves both. fullflow_agg and clickstream_agg are
// SummingMergeTree tables filled by materialized views (fields and period
// configured, config.Aggregate), partitioned by month, kept without limit unless
// config.Loader.AggregateRetention is set.
// With a cluster, each shard holds <table>_local tables and a Distributed
// <table> over them; the loader shards rows itself by the sharding key and
// inserts into each shard's local table, so each insert stays atomic.
//
// # Exactly once
//
// ClickHouse 18.16 has no insert deduplication on plain MergeTree tables, so
// the loader makes every retry safe itself, with a ledger table _ledger and
// a _batch column in each raw table:
//
//  1. A dump's records of one (table, day, hour) are numbered in file order
//     (ordinals). A batch is a range of ordinals, at most batch_rows rows,
//     never across hours, so it falls in one partition. (A dump an older
//     loader began, whose ledger rows have hour 255, goes on per day; so
//     does a table made by it, partitioned by day.) Each shard's part of
//     it gets a random 64-bit batch id, written in the _batch column.
//  2. Before inserting, the loader writes an intent row (file, table, day,
//     shard, ordinal range, rows, batch id) to the ledger; after the insert
//     succeeds, a done row (with the next ledger write); after the last batch,
//     a file row; then it moves the dump.
//  3. An insert is all or nothing: one block (fewer rows than
//     max_insert_block_size, one partition) makes one part, and the body is a
//     gzip stream of stored blocks, so a request cut short by a crash ends
//     without the gzip trailer and fails instead of inserting the rows that
//     arrived (ClickHouse takes a plain body cut at a row boundary as
//     complete).
//  4. On restart (or after a failed request) an intent without done is
//     settled: the loader waits until no query with the batch's query id runs
//     (plus a settle time for a request still in flight), counts the rows
//     with that _batch in the batch's day partition, and records done (all
//     there) or aborted (none there; the range is loaded again). The done
//     ranges give, per (table, day, shard), a prefix of ordinals to skip.
//  5. A dump with a file row is only moved or deleted again.
//
// A partial count cannot come from the loader; if found, the dump goes to
// bad/ with the ALTER TABLE ... DELETE that clears the batch.
//
// # Enrichment
//
// With a dictionary dir, a dict.Watcher keeps the legacy collector's
// dictionaries loaded as their files change and DictTables replaces their
// ClickHouse tables atomically. Fullflow and clickstream rows then go
// through traffic direction, the subscriber filter and exclude, and the
// login from vchannel (enrich.go) after their ordinal is assigned: a dropped
// record stays inside its batch's ordinal range, and shards are picked from
// the values as sent, so neither depends on a dictionary that may change
// between a crash and the replay.
package loader
