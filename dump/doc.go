// Package dump is the on-disk contract between the recorder (ipfix-balancer
// in Recording mode) and ipfix-loader: the names of dump files, the .part
// suffix of a dump being written, and the directories a dump goes through.
//
// A receiver of stream S and DPI D records into <root>/S/:
//
//	S_D_<window>_<opened>_<instance>.ipfix.part   being written (locked, flock)
//	S_D_<window>_<opened>_<instance>.ipfix        closed: complete, fsynced
//	loaded/<name>                                 loaded (after_load = "move")
//	bad/<name> and bad/<name>.why                 quarantined by the loader
//
// <window> is the UTC start of the rotation window (20060102T150405Z), so
// the names of one receiver sort by window. <opened> is the UTC instant the
// file was opened, to the microsecond (20060102T150405.000000Z), and
// <instance> a random id of the process that wrote it (6 base32 letters, drawn
// at process start; the successor of a restart draws its own). One process
// never opens two dumps at the same microsecond (Instance.Name makes the open
// times strictly increasing), so a name never repeats: not after a restart or
// a reload inside a window, not after the loader deleted the file, not across
// two sites recording the same stream and DPI into one ClickHouse (they would
// need the same 30-bit instance id and the same microsecond). The loader keys
// its ledger by the name.
//
// Names written by older versions are accepted: S_D_<window>.ipfix and
// S_D_<window>_<n>, _r<n>, -<x> or .<x> before .ipfix. They carry no identity,
// so the loader keys them by name plus content (see Name.Legacy).
//
// A dump is closed when its rotation window ends (rotate_every), when it
// holds rotate_records records, when the receiver stops, reloads its
// recording settings or hands over to a successor, and after a write error.
// Only then does it lose its .part suffix, after an fsync of the file, and the
// directory is fsynced after the rename.
package dump
