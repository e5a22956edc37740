package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads url (a /metrics page), bounded by timeout.
func scrape(ctx context.Context, url string, timeout time.Duration) ([]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	var out []sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if s, ok := parseSample(sc.Text()); ok {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

// parseSample parses `name{k="v",...} value` or `name value`; label values
// are taken as written (ours hold no escaped quotes or commas).
func parseSample(line string) (sample, bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return sample{}, false
	}
	s := sample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return sample{}, false
		}
		s.name = line[:i]
		for kv := range strings.SplitSeq(line[i+1:j], ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			s.labels[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
		}
		rest = line[j+1:]
	} else {
		f := strings.Fields(line)
		if len(f) < 2 {
			return sample{}, false
		}
		s.name, rest = f[0], strings.Join(f[1:], " ")
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return sample{}, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return sample{}, false
	}
	s.value = v
	return s, true
}

// sum adds the samples called name.
func sum(ss []sample, name string) int64 {
	var t float64
	for _, s := range ss {
		if s.name == name {
			t += s.value
		}
	}
	return int64(t)
}

// sumBy adds the samples called name per value of label.
func sumBy(ss []sample, name, label string) map[string]int64 {
	m := map[string]int64{}
	for _, s := range ss {
		if s.name == name {
			m[s.labels[label]] += int64(s.value)
		}
	}
	return m
}

// count counts the samples called name whose value is v.
func countValue(ss []sample, name string, v float64) int {
	n := 0
	for _, s := range ss {
		if s.name == name && s.value == v {
			n++
		}
	}
	return n
}
