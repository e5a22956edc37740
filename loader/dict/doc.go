// Package dict reads the legacy collector's dictionaries (tab-separated text
// files: local and excluded AS numbers and subnets, subscribers, switches,
// CRC errors, host categories, vchannel names), keeps them loaded as files
// change, and holds the pure functions the loader applies to a row with
// them: traffic direction, subscriber filter and exclude, and the login
// taken from the vchannel.
//
// # Files
//
// Each dictionary is a directory <dir>/<name>/ (the legacy collector's dir
// was /var/qoestor/backend/etc/db). Every file in it whose name ends in .txt
// is read, in name order, as one dictionary, except sample.txt, the pattern
// an operator copies, and hidden files. A line has exactly the dictionary's
// columns separated by single tabs (one tab fewer than columns, as the
// manual insists); a line ending in \r\n counts as ending in \n and empty
// lines are skipped. The first line that does not parse (a wrong number of
// tabs, a bad address or number) refuses the whole dictionary with a
// *LineError naming file:line; the version in force stays. Of two rows with
// the same key, the later wins.
//
// # Reloading
//
// A Watcher polls the directories (names, sizes, modification times) every
// poll_every, and reads them anyway once a minute (a coarse file system
// clock can hide an edit that keeps the size); when they change it reads
// the files, and when their SHA-256
// differs from the version in force and every line parses it swaps in a new
// immutable Set with one atomic store. Readers call Watcher.Current and never
// lock. Writing a file in place can be seen half-written: such a version is
// loaded or refused, and the complete one replaces it at the next poll; write
// to a name not ending in .txt and rename it to load exactly one version.
//
// # Lookups
//
// Subnets answer longest-prefix match over IPv4 and IPv6 with one binary
// search over the disjoint ranges the prefixes cut the address space into
// (IPv4 mapped into ::ffff:0:0/96); the other dictionaries are maps. No
// lookup allocates.
package dict
