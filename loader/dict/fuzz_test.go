package dict

import (
	"errors"
	"strings"
	"testing"
)

// FuzzReadDictionary feeds any bytes to every dictionary's parser and index
// builder. Properties: no panic (the index builders re-parse what the
// checks accepted, and panic on a disagreement); an error is a *LineError
// on a line of the input wrapping ErrColumns or ErrValue; accepted rows have
// the spec's columns; every subnet a subnets dictionary accepted is found
// by its own first address.
func FuzzReadDictionary(f *testing.F) {
	for _, s := range Specs {
		b, err := Sample(s.Name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(0), string(b))
	}
	f.Add(uint8(2), "10.0.0.0/8\tA\r\n\n10.0.0.0/8\tB\n") // CRLF, empty line, duplicate
	f.Add(uint8(2), "::ffff:10.0.0.0/104\tA\n")           // IPv4-mapped prefix: refused
	f.Add(uint8(2), "fe80::1%eth0\tA\n")                  // zone: refused
	f.Add(uint8(5), "1\ta\tb\tc\td\t\te\t0\t1\t\t\n")     // a switch its own upstream
	f.Add(uint8(8), "Example.COM.\t1\n")                  // host case and final dot
	f.Fuzz(func(t *testing.T, which uint8, content string) {
		s := &Specs[int(which)%len(Specs)]
		var lines []int32
		rows, err := s.parseFile("f.txt", content, nil, &lines)
		nLines := strings.Count(content, "\n") + 1
		if err == nil {
			var d *Dict
			d, err = build(s, rows, func(row int) (string, int) { return "f.txt", int(lines[row]) })
			if err == nil {
				for i, r := range d.Rows {
					if len(r) != len(s.columns) {
						t.Fatalf("row %d: %d fields", i, len(r))
					}
				}
				if d.prefixes != nil {
					for _, p := range d.prefixes {
						if _, _, ok := d.Subnet(p.Addr()); !ok {
							t.Fatalf("%s not found by its own address", p)
						}
						if !d.Contains(p.Addr()) {
							t.Fatalf("%s: Contains disagrees", p)
						}
					}
				}
				return
			}
		}
		var le *LineError
		if !errors.As(err, &le) {
			t.Fatalf("error %v is not a *LineError", err)
		}
		if le.Line < 1 || le.Line > nLines {
			t.Fatalf("line %d outside 1..%d", le.Line, nLines)
		}
		if !errors.Is(err, ErrColumns) && !errors.Is(err, ErrValue) {
			t.Fatalf("error %v wraps neither ErrColumns nor ErrValue", err)
		}
	})
}
