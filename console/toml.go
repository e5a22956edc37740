package console

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
)

// The editor changes the configuration file as text, one receiver's block at
// a time, so that comments, blank lines and the order of everything else stay
// as the operator wrote them. A block runs from its [[receiver]] header to its
// last key (its [receiver.recording] table included); comments right after it
// belong to what follows.

var (
	receiverHeaderRE = regexp.MustCompile(`^\s*\[\[\s*receiver\s*\]\]\s*(#.*)?$`)
	recordingRE      = regexp.MustCompile(`^\s*\[\s*receiver\s*\.\s*recording\s*\]\s*(#.*)?$`)
	headerRE         = regexp.MustCompile(`^\s*\[`)
	keyRE            = regexp.MustCompile(`^(\s*)([A-Za-z0-9_-]+)\s*=`)
)

// errNotEditable is returned for a file the editor cannot change surgically.
var errNotEditable = errors.New("the console cannot edit this receiver's TOML form (an inline table or a multi-line string); edit the file by hand")

// line kinds
const (
	lineBlank = iota
	lineComment
	lineHeader
	lineKey
	lineCont // continuation of a multi-line value
)

type scanned struct {
	kind int
	key  string
	end  int // for lineKey: index after the value's last line
}

// scanLines classifies each line; a key's value may span lines (arrays).
func scanLines(lines []string) ([]scanned, error) {
	out := make([]scanned, len(lines))
	for i := 0; i < len(lines); i++ {
		t := strings.TrimSpace(lines[i])
		switch {
		case t == "":
			out[i] = scanned{kind: lineBlank}
		case t[0] == '#':
			out[i] = scanned{kind: lineComment}
		case headerRE.MatchString(lines[i]):
			out[i] = scanned{kind: lineHeader}
		default:
			m := keyRE.FindStringSubmatch(lines[i])
			if m == nil {
				out[i] = scanned{kind: lineComment} // dotted keys and the like: left alone
				continue
			}
			if strings.Contains(lines[i], `"""`) || strings.Contains(lines[i], `'''`) {
				return nil, errNotEditable
			}
			depth := bracketDepth(lines[i][len(m[0]):])
			j := i + 1
			for depth > 0 && j < len(lines) {
				out[j] = scanned{kind: lineCont}
				depth += bracketDepth(lines[j])
				j++
			}
			out[i] = scanned{kind: lineKey, key: m[2], end: j}
			i = j - 1
		}
	}
	return out, nil
}

// bracketDepth is the change of [ ] { } nesting over s, outside strings and
// comments.
func bracketDepth(s string) int {
	d := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == '\\' && quote == '"' {
				i++
			} else if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
		case ch == '#':
			return d
		case ch == '[' || ch == '{':
			d++
		case ch == ']' || ch == '}':
			d--
		}
	}
	return d
}

// span is a range of lines [start, end).
type span struct{ start, end int }

// receiverBlocks returns the block of each [[receiver]], in file order.
func receiverBlocks(lines []string) ([]span, error) {
	sc, err := scanLines(lines)
	if err != nil {
		return nil, err
	}
	var blocks []span
	for i := 0; i < len(lines); i++ {
		if sc[i].kind != lineHeader || !receiverHeaderRE.MatchString(lines[i]) {
			continue
		}
		b := span{start: i, end: i + 1}
		j := i + 1
		for ; j < len(lines); j++ {
			if sc[j].kind == lineHeader && !recordingRE.MatchString(lines[j]) {
				break
			}
			if sc[j].kind != lineBlank && sc[j].kind != lineComment {
				b.end = j + 1
			}
		}
		blocks = append(blocks, b)
		i = j - 1
	}
	return blocks, nil
}

// keyEdit says what to do with one key: Value nil deletes it; Keep leaves the
// key out of a block that does not have it when Value equals it (a default).
type keyEdit struct {
	Always bool // written even when unchanged (see changedEdits)
	Key    string
	Value  *string // a TOML value
	Keep   string  // the default, not written unless the key is there already
}

// editBlock applies main (keys of the [[receiver]] table) and rec (keys of its
// [receiver.recording] table) to blk, a block's lines, and returns the new
// lines.
func editBlock(blk []string, main, rec []keyEdit) ([]string, error) {
	blk = append([]string(nil), blk...)
	for _, part := range []struct {
		edits     []keyEdit
		recording bool
	}{{main, false}, {rec, true}} {
		for _, e := range part.edits {
			var err error
			if blk, err = editKey(blk, part.recording, e); err != nil {
				return nil, err
			}
		}
	}
	return blk, nil
}

// partOf returns the line range of the main table (after the header) or of
// the recording table (after its header; start -1: none) in blk.
func partOf(blk []string, sc []scanned, recording bool) span {
	recAt := -1
	for i := 1; i < len(blk); i++ {
		if sc[i].kind == lineHeader && recordingRE.MatchString(blk[i]) {
			recAt = i
			break
		}
	}
	if !recording {
		if recAt < 0 {
			return span{1, len(blk)}
		}
		return span{1, recAt}
	}
	if recAt < 0 {
		return span{-1, -1}
	}
	return span{recAt + 1, len(blk)}
}

func editKey(blk []string, recording bool, e keyEdit) ([]string, error) {
	sc, err := scanLines(blk)
	if err != nil {
		return nil, err
	}
	// An inline recording table ("recording = { ... }") is not edited.
	for i := 1; i < len(blk); i++ {
		if sc[i].kind == lineKey && sc[i].key == "recording" {
			return nil, errNotEditable
		}
	}
	p := partOf(blk, sc, recording)
	found, lastKey := -1, -1
	if p.start >= 0 {
		for i := p.start; i < p.end; i++ {
			if sc[i].kind == lineKey {
				lastKey = i
				if sc[i].key == e.Key {
					found = i
				}
			}
		}
	}
	switch {
	case found >= 0 && e.Value == nil:
		return append(blk[:found], blk[sc[found].end:]...), nil
	case found >= 0:
		indent := keyRE.FindStringSubmatch(blk[found])[1]
		line := indent + e.Key + " = " + *e.Value
		if sc[found].end == found+1 {
			if c := trailingComment(blk[found]); c != "" {
				line += pad(line, blk[found]) + c
			}
		}
		out := append([]string(nil), blk[:found]...)
		out = append(out, line)
		return append(out, blk[sc[found].end:]...), nil
	case e.Value == nil || *e.Value == e.Keep:
		return blk, nil
	}
	line := e.Key + " = " + *e.Value
	if p.start < 0 {
		// No recording table yet: it goes at the end of the block.
		return append(blk, "[receiver.recording]", line), nil
	}
	// After the key that comes before it in default.toml's order, if the
	// block has one, else after the block's last key.
	at := p.start
	if lastKey >= 0 {
		at = sc[lastKey].end
	}
	if rank, ok := keyOrder[e.Key]; ok {
		best := -1
		for i := p.start; i < p.end; i++ {
			if r, ok := keyOrder[sc[i].key]; ok && sc[i].kind == lineKey && r < rank && r > best {
				best, at = r, sc[i].end
			}
		}
	}
	out := append([]string(nil), blk[:at]...)
	out = append(out, line)
	return append(out, blk[at:]...), nil
}

// keyOrder is the order of the keys in default.toml's receiver example.
var keyOrder = map[string]int{"stream": 1, "dpi": 2, "listen": 3, "proto": 4, "mode": 5, "subreceivers": 6,
	"subreceiver_proto": 7, "cpu": 8, "dir": 20, "rotate_every": 21, "rotate_records": 22, "export": 23}

// trailingComment returns the "# ..." after a one-line value, if any.
func trailingComment(line string) string {
	var quote byte
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quote != 0:
			if ch == '\\' && quote == '"' {
				i++
			} else if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
		case ch == '#':
			return line[i:]
		}
	}
	return ""
}

// pad keeps a trailing comment in the column it had, when it still fits.
func pad(line, orig string) string {
	col := strings.Index(orig, trailingComment(orig))
	if n := col - len(line); n > 0 {
		return strings.Repeat(" ", n)
	}
	return " "
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\u` + strconv.FormatInt(int64(r)+0x10000, 16)[1:])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlStrings is a TOML array of strings.
func tomlStrings(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
