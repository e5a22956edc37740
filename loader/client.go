package loader

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Client is a small ClickHouse HTTP client: statements, TabSeparated queries
// and RowBinary inserts. It speaks only what ClickHouse 18.16 understands
// (shared/notes/clickhouse.md) and works unchanged on modern servers. Safe for
// concurrent use.
type Client struct {
	base     *url.URL
	user     string
	password string
	http     *http.Client
}

// NewClient returns a client of the HTTP interface at rawURL
// ("http://127.0.0.1:8123").
func NewClient(rawURL, user, password string) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("clickhouse url %q: %w", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("clickhouse url %q: scheme must be http or https", rawURL)
	}
	if u.User != nil {
		user = u.User.Username()
		if p, ok := u.User.Password(); ok {
			password = p
		}
		u.User = nil
	}
	u.Path, u.RawQuery = "/", ""
	tr := &http.Transport{
		Proxy:       nil,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// One connection per request: a ClickHouse server told to stop
		// (SIGTERM) waits for its open connections, and a client that keeps
		// reusing one holds the shutdown until the server is killed, which
		// is the one case where a view's part can miss a committed insert.
		// On batches of ~100k rows a connection per request costs nothing.
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 10 * time.Minute,
	}
	return &Client{base: u, user: user, password: password, http: &http.Client{Transport: tr}}, nil
}

// URL returns the server address without credentials.
func (c *Client) URL() string { return c.base.String() }

// CloseIdle closes idle keep-alive connections.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// Error is an error the server answered with.
type Error struct {
	Status  int    // HTTP status
	Code    int    // ClickHouse error code, 0 if not found in the message
	Message string // the server's text
}

func (e *Error) Error() string {
	return fmt.Sprintf("clickhouse: status %d: %s", e.Status, e.Message)
}

// ClickHouse error codes the loader reacts to.
const (
	codeNoSuchColumn      = 16
	codeUnknownTable      = 60
	codeUnknownDatabase   = 81
	codeQueryIsRunning    = 216
	codeTableAlreadyExist = 57
)

var codeRe = regexp.MustCompile(`Code: (\d+)`)

// ErrorCode returns the ClickHouse error code of err, or 0.
func ErrorCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func (c *Client) request(ctx context.Context, params url.Values, body io.Reader, gz bool) ([]byte, error) {
	u := *c.base
	u.RawQuery = params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return nil, err
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: read response: %w", c.base.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(out))
		e := &Error{Status: resp.StatusCode, Message: msg}
		if m := codeRe.FindStringSubmatch(msg); m != nil {
			e.Code, _ = strconv.Atoi(m[1])
		}
		return nil, e
	}
	// ClickHouse may report an exception after the 200 header when it
	// fails while streaming; the text then ends the body.
	if i := bytes.LastIndex(out, []byte("Code: ")); i >= 0 && bytes.Contains(out[i:], []byte("DB::Exception")) {
		return nil, &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(out[i:]))}
	}
	return out, nil
}

// Exec runs a statement (DDL, ALTER, ...) and discards the result.
func (c *Client) Exec(ctx context.Context, sql string, settings ...string) error {
	_, err := c.request(ctx, params(sql, settings), nil, false)
	return err
}

// Query runs a SELECT and returns its rows in TabSeparated format, fields
// unescaped.
func (c *Client) Query(ctx context.Context, sql string, settings ...string) ([][]string, error) {
	out, err := c.request(ctx, params(sql+" FORMAT TabSeparated", settings), nil, false)
	if err != nil {
		return nil, err
	}
	return parseTSV(out), nil
}

// QueryValue runs a query returning one value.
func (c *Client) QueryValue(ctx context.Context, sql string) (string, error) {
	rows, err := c.Query(ctx, sql)
	if err != nil {
		return "", err
	}
	if len(rows) == 0 || len(rows[0]) == 0 {
		return "", fmt.Errorf("clickhouse %s: no result for %q", c.base.Host, sql)
	}
	return rows[0][0], nil
}

// Insert sends one RowBinary block (rows encoded by the caller) into table as
// one INSERT, with the given query id. The body is framed as a gzip stream of
// stored (uncompressed) deflate blocks: the server sees a clean end of input
// only after the gzip trailer, so a request cut short by a crash fails as a
// whole instead of inserting the rows that arrived (ClickHouse 18.16 takes a
// plain body truncated at a row boundary as a complete one). With fewer rows
// than max_insert_block_size and one partition per block, the insert then
// writes one part: all rows or none.
func (c *Client) Insert(ctx context.Context, table string, columns []string, queryID string, body []byte) error {
	var zb bytes.Buffer
	zb.Grow(len(body) + len(body)/16000 + 64)
	zw, err := gzip.NewWriterLevel(&zb, gzip.NoCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(body); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	sql := "INSERT INTO " + table + " (" + strings.Join(quoteAll(columns), ", ") + ") FORMAT RowBinary"
	p := params(sql, []string{"max_insert_block_size", strconv.Itoa(maxInsertBlockRows)})
	if queryID != "" {
		p.Set("query_id", queryID)
	}
	_, err = c.request(ctx, p, bytes.NewReader(zb.Bytes()), true)
	return err
}

// maxInsertBlockRows is sent as max_insert_block_size with every insert; a
// batch must stay below it to be written as one block.
const maxInsertBlockRows = 1 << 20

func params(sql string, settings []string) url.Values {
	p := url.Values{"query": {sql}}
	for i := 0; i+1 < len(settings); i += 2 {
		p.Set(settings[i], settings[i+1])
	}
	return p
}

func parseTSV(out []byte) [][]string {
	var rows [][]string
	for len(out) > 0 {
		i := bytes.IndexByte(out, '\n')
		var line []byte
		if i < 0 {
			line, out = out, nil
		} else {
			line, out = out[:i], out[i+1:]
		}
		fields := strings.Split(string(line), "\t")
		for j, f := range fields {
			fields[j] = unescapeTSV(f)
		}
		rows = append(rows, fields)
	}
	return rows
}

func unescapeTSV(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '0':
			b.WriteByte(0)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// quote quotes an identifier with backticks (columns such as `from`, `to`,
// `user` are SQL keywords).
func quote(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "\\`") + "`"
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = quote(n)
	}
	return out
}

// literal quotes a string literal.
func literal(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}
