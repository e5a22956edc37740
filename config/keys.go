package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// unknownKeys reports every key of data the decoder did not use, as
// *lineError "unknown key receiver[0].recording.rotate_evry" at line 12. Keys in the
// wrong case count as unknown too: the decoder would match "Listen" to
// "listen", and a config file has one spelling.
//
// The decoder reports keys without array indexes and keeps their positions
// to itself, so the indexes come from the decoded document and the line from
// a scan of the text (keyLines); a key the scan cannot place (inside an
// inline table) takes the line of its closest enclosing key.
func unknownKeys(data []byte, md toml.MetaData) []error {
	bad := map[string]bool{}
	for _, k := range md.Undecoded() {
		bad[k.String()] = true
	}
	for _, k := range md.Keys() {
		if s := k.String(); s != strings.ToLower(s) {
			bad[s] = true
		}
	}
	if len(bad) == 0 {
		return nil
	}
	// Report in document order, once per key, and not the keys inside an
	// unknown table.
	var unknown []toml.Key
	done := map[string]bool{}
	for _, k := range md.Keys() {
		s := k.String()
		if !bad[s] || done[s] {
			continue
		}
		done[s] = true
		inner := false
		for n := 1; n < len(k); n++ {
			if bad[k[:n].String()] {
				inner = true
				break
			}
		}
		if !inner {
			unknown = append(unknown, k)
		}
	}

	var doc map[string]any
	_, _ = toml.NewDecoder(bytes.NewReader(data)).Decode(&doc)
	lines := keyLines(data)
	type found struct {
		path string
		line int
	}
	var all []found
	reported := map[string]bool{}
	for _, k := range unknown {
		paths := indexedPaths(doc, k)
		if len(paths) == 0 {
			paths = []string{k.String()}
		}
		for _, p := range paths {
			if !reported[p] {
				reported[p] = true
				all = append(all, found{p, lookupLine(lines, p)})
			}
		}
	}
	// In line order; keys without a line last.
	sort.SliceStable(all, func(i, j int) bool {
		return all[j].line == 0 && all[i].line != 0 || all[i].line != 0 && all[i].line < all[j].line
	})
	errs := make([]error, len(all))
	for i, f := range all {
		errs[i] = &lineError{line: f.line, err: fmt.Errorf("unknown key %s", f.path)}
	}
	return errs
}

// lineError is a problem at a line of the file (0: no line); Parse prefixes
// it with "name:line: ".
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string {
	if e.line > 0 {
		return e.err.Error() + " at line " + strconv.Itoa(e.line)
	}
	return e.err.Error()
}

func (e *lineError) Unwrap() error { return e.err }

// keyError is a problem with the value of the key at the indexed path key
// ("receiver[1].mode"), for Parse to find its line.
type keyError struct {
	key string
	err error
}

func (e *keyError) Error() string { return e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// locate prefixes each error of a file named name with "name:line: ": the
// line of its key, or of the closest enclosing key the file has; and sorts
// them in file order.
func locate(name string, data []byte, errs []error) []error {
	lines := keyLines(data)
	type located struct {
		line int
		msg  string
	}
	all := make([]located, len(errs))
	for i, err := range errs {
		line := 0
		msg := err.Error()
		var le *lineError
		var ke *keyError
		switch {
		case errors.As(err, &le):
			line, msg = le.line, le.err.Error()
		case errors.As(err, &ke):
			line = lookupLine(lines, ke.key)
		default:
			if key, _, ok := strings.Cut(msg, ": "); ok {
				line = lookupLine(lines, key)
			}
		}
		all[i] = located{line, msg}
	}
	// In file order; problems without a line last.
	sort.SliceStable(all, func(i, j int) bool {
		return all[j].line == 0 && all[i].line != 0 || all[i].line != 0 && all[i].line < all[j].line
	})
	out := make([]error, len(all))
	for i, l := range all {
		if l.line > 0 {
			out[i] = fmt.Errorf("%s:%d: %s", name, l.line, l.msg)
		} else {
			out[i] = fmt.Errorf("%s: %s", name, l.msg)
		}
	}
	return out
}

// typeErrorRE matches the decoder's error for a value of the wrong type,
// which carries no position but its line and the key without indexes.
var typeErrorRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// locateTypeError rewrites the decoder's type error as
// "name:line: receiver[1].mtu: incompatible types: ...".
func locateTypeError(name string, data []byte, err error) error {
	m := typeErrorRE.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	line, _ := strconv.Atoi(m[1])
	key := m[2]
	// Name the key with its array indexes: the one of its path that is at
	// this line.
	for path, l := range keyLines(data) {
		if l == line && stripIndexes(path) == key {
			key = path
			break
		}
	}
	return fmt.Errorf("%s:%d: %s: %s", name, line, key, m[3])
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

func stripIndexes(path string) string { return indexRE.ReplaceAllString(path, "") }

// hasWrongCase reports whether a key is not in lower case. The decoder
// matches such keys to fields regardless of case, so the values decoded are
// not worth checking further.
func hasWrongCase(md toml.MetaData) bool {
	for _, k := range md.Keys() {
		if s := k.String(); s != strings.ToLower(s) {
			return true
		}
	}
	return false
}

// indexedPaths returns the paths of key k in doc with the index of every
// array of tables on the way: receiver.dpo -> ["receiver[0].dpo"].
func indexedPaths(doc map[string]any, k toml.Key) []string {
	var out []string
	var walk func(v any, i int, prefix string)
	walk = func(v any, i int, prefix string) {
		if i == len(k) {
			out = append(out, prefix)
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		child, ok := m[k[i]]
		if !ok {
			return
		}
		name := prefix
		if name != "" {
			name += "."
		}
		name += quoteKey(k[i])
		switch c := child.(type) {
		case []map[string]any:
			if i == len(k)-1 {
				out = append(out, name)
				return
			}
			for j, t := range c {
				walk(t, i+1, name+"["+strconv.Itoa(j)+"]")
			}
		case []any:
			if i == len(k)-1 {
				out = append(out, name)
				return
			}
			for j, t := range c {
				walk(t, i+1, name+"["+strconv.Itoa(j)+"]")
			}
		default:
			walk(child, i+1, name)
		}
	}
	walk(doc, 0, "")
	return out
}

// lookupLine returns the line of path, or of its closest enclosing key.
func lookupLine(lines map[string]int, path string) int {
	for p := path; p != ""; {
		if line, ok := lines[p]; ok {
			return line
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

func quoteKey(s string) string { return toml.Key{s}.String() }

// keyLines scans TOML text for table headers and key/value lines and returns
// the first line of each key, by indexed path: "receiver[1].recording.dir".
// It follows multi-line strings and arrays so that their contents are not
// taken for keys, and skips keys inside inline tables. Only line numbers for
// messages depend on it; the decoder has already accepted the syntax.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	arrays := map[string]int{} // unindexed array-of-tables path -> current index
	var table []string         // current table, unindexed
	var s scanner
	for n, line := range strings.Split(string(data), "\n") {
		lineNo := n + 1
		if s.open() {
			s.scan(line)
			continue
		}
		t := strings.TrimLeft(line, " \t")
		switch {
		case t == "" || t[0] == '#':
		case strings.HasPrefix(t, "[["):
			key, _, ok := parseKey(t[2:])
			if !ok {
				continue
			}
			table = key
			plain := toml.Key(key).String()
			if _, ok := arrays[plain]; ok {
				arrays[plain]++
			} else {
				arrays[plain] = 0
			}
			setLine(lines, indexed(arrays, key), lineNo)
		case t[0] == '[':
			key, _, ok := parseKey(t[1:])
			if !ok {
				continue
			}
			table = key
			setLine(lines, indexed(arrays, key), lineNo)
		default:
			key, rest, ok := parseKey(t)
			if !ok || !strings.HasPrefix(rest, "=") {
				continue
			}
			full := append(append([]string{}, table...), key...)
			base := indexed(arrays, full)
			setLine(lines, base, lineNo)
			// Dotted keys define their parents too.
			for i := len(table) + 1; i < len(full); i++ {
				setLine(lines, indexed(arrays, full[:i]), lineNo)
			}
			s.scan(rest[1:])
		}
	}
	return lines
}

func setLine(lines map[string]int, path string, line int) {
	if _, ok := lines[path]; !ok {
		lines[path] = line
	}
}

// indexed formats key with the current index of each array of tables on its
// way, except that an array of tables itself is named with its index too.
func indexed(arrays map[string]int, key []string) string {
	var b strings.Builder
	for i := range key {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(quoteKey(key[i]))
		if idx, ok := arrays[toml.Key(key[:i+1]).String()]; ok {
			b.WriteString("[" + strconv.Itoa(idx) + "]")
		}
	}
	return b.String()
}

// parseKey parses a possibly dotted, possibly quoted TOML key at the start of
// s and returns it with the text after it (blanks trimmed).
func parseKey(s string) (key []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var part string
		switch s[0] {
		case '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, "", false
			}
			v, err := strconv.Unquote(s[:end+1])
			if err != nil {
				v = s[1:end]
			}
			part, s = v, s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", false
			}
			part, s = s[1:end+1], s[end+2:]
		default:
			end := 0
			for end < len(s) && isBare(s[end]) {
				end++
			}
			if end == 0 {
				return nil, "", false
			}
			part, s = s[:end], s[end:]
		}
		key = append(key, part)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return key, s, true
		}
		s = s[1:]
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// scanner follows the value part of lines: strings, comments and bracket
// depth, to know whether the next line continues a value.
type scanner struct {
	depth int    // open [ and {
	multi string // `"""` or `'''` while inside a multi-line string
}

func (s *scanner) open() bool { return s.depth > 0 || s.multi != "" }

func (s *scanner) scan(line string) {
	for i := 0; i < len(line); i++ {
		if s.multi != "" {
			if s.multi == `"""` && line[i] == '\\' {
				i++
				continue
			}
			if strings.HasPrefix(line[i:], s.multi) {
				// A closing delimiter may have up to two more quotes.
				i += len(s.multi) - 1
				for i+1 < len(line) && line[i+1] == s.multi[0] {
					i++
				}
				s.multi = ""
			}
			continue
		}
		switch c := line[i]; c {
		case '#':
			return
		case '[', '{':
			s.depth++
		case ']', '}':
			if s.depth > 0 {
				s.depth--
			}
		case '"', '\'':
			q := string([]byte{c, c, c})
			if strings.HasPrefix(line[i:], q) {
				s.multi = q
				i += 2
				continue
			}
			for i++; i < len(line) && line[i] != c; i++ {
				if c == '"' && line[i] == '\\' {
					i++
				}
			}
		}
	}
}
