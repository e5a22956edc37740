package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
)

// startConsole runs a real balancer (one recording receiver on a free
// loopback port) from a configuration file and serves its console over a
// real loopback socket.
func startConsole(t *testing.T, loopback bool) (srv *httptest.Server, path string, logs *LogRing, con *Console) {
	t.Helper()
	dir := t.TempDir()
	sum := sha256.Sum256([]byte("tok"))
	path = filepath.Join(dir, "b.toml")
	text := `[metrics]
listen = ""
[console]
operators = ["bob:` + hex.EncodeToString(sum[:]) + `"]
[balancer]
control_socket = ""
[[receiver]]
stream = "fullflow"
listen = "127.0.0.1:0"
mode = "Recording"
[receiver.recording]
dir = "` + filepath.Join(dir, "dump") + `"
`
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	logs = NewLogRing(100)
	var out bytes.Buffer
	log := slog.New(logs.Handler(slog.NewTextHandler(&out, nil)))
	b, err := balancer.NewBalancer(cfg, balancer.Options{Logger: log, ShutdownTimeout: time.Second})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("balancer did not stop")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !b.Running() {
		require.True(t, time.Now().Before(deadline), "balancer not running after 10s")
		time.Sleep(10 * time.Millisecond)
	}
	c, err := New(b, Options{ConfigPath: path, Logs: logs, Logger: log, Loopback: loopback, SampleEvery: 100 * time.Millisecond,
		Reload: func() error {
			next, err := config.Load(path)
			if err != nil {
				return err
			}
			return b.Reload(next)
		}})
	require.NoError(t, err)
	go func() { _ = c.Run(ctx) }()
	srv = httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return srv, path, logs, c
}

func noRedirect(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestBeyondLoopbackEveryPageNeedsAnOperator: on a listener that is not
// loopback-only, the read-only pages send to the login page too.
func TestBeyondLoopbackEveryPageNeedsAnOperator(t *testing.T) {
	srv, _, _, _ := startConsole(t, false)
	c := noRedirect(nil)
	for _, p := range []string{"/", "/plots", "/logs", "/logs.json", "/receivers", "/plot.svg?receiver=fullflow/0&series=in_messages"} {
		resp, err := c.Get(srv.URL + p)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode, p)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/login?next="), p)
	}
	for _, p := range []string{"/login", "/static/style.css"} {
		resp, err := c.Get(srv.URL + p)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, p)
	}
	// Logged in, the pages answer.
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c = noRedirect(jar)
	resp, err := c.PostForm(srv.URL+"/login", url.Values{"token": {"tok"}, "next": {"/plots"}})
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/plots", resp.Header.Get("Location"))
	ck := resp.Cookies()
	require.Len(t, ck, 1)
	assert.True(t, ck[0].HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, ck[0].SameSite)
	resp, err = c.Get(srv.URL + "/")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestChangeNeedsCSRFToken: a logged-in operator's POST without the session's
// token, or from another origin, changes nothing.
func TestChangeNeedsCSRFToken(t *testing.T) {
	srv, path, logs, con := startConsole(t, true)
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := noRedirect(jar)
	resp, err := c.PostForm(srv.URL+"/login", url.Values{"token": {"tok"}})
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)

	form := url.Values{"action": {"edit"}, "orig": {"fullflow/0"}, "stream": {"fullflow"}, "port": {"0"}, "host": {"127.0.0.1"},
		"mode": {"Disabled"}, "dir": {"elsewhere"}, "csrf": {"forged"}}
	resp, err = c.PostForm(srv.URL+"/receivers/apply", form)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/receivers/apply", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = c.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after))
	var refused int
	for _, l := range logs.Lines(0, slog.LevelWarn, "") {
		if strings.HasPrefix(l.Message, "console request refused") || strings.HasPrefix(l.Message, "console change refused") {
			refused++
		}
	}
	assert.Equal(t, 2, refused, "both refusals logged")
	var m bytes.Buffer
	con.Metrics().WritePrometheus(&m)
	for _, line := range []string{
		`ipfix_balancer_console_refused_requests_total{reason="csrf"} 1`,
		`ipfix_balancer_console_refused_requests_total{reason="cross_site"} 1`,
		`ipfix_balancer_console_refused_requests_total{reason="unauthenticated"} 0`,
		`ipfix_balancer_console_changes_total{result="applied"} 0`,
	} {
		assert.Contains(t, m.String(), line+"\n")
	}
}

// TestMetricsDocumented: every console series is in the README's metrics
// table (as balancer's TestMetricsDocumented).
func TestMetricsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	c, err := New(nil, Options{})
	require.NoError(t, err)
	for _, name := range c.Metrics().ListMetricNames() {
		base, _, _ := strings.Cut(name, "{")
		assert.Contains(t, string(readme), "`"+base+"`", "README metrics table lacks %s", base)
	}
}

func TestLogRing(t *testing.T) {
	ring := NewLogRing(3)
	var out bytes.Buffer
	log := slog.New(ring.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo})))
	log.Debug("not kept")
	log.Info("one", "n", 1)
	r := log.With("receiver", "fullflow/0")
	r.Warn("two", "err", "a b")
	r.WithGroup("g").Info("three", "k", "v")
	log.Error("four")
	all := ring.Lines(0, slog.LevelDebug, "")
	require.Len(t, all, 3, "the ring keeps the last 3")
	assert.Equal(t, "two", all[0].Message)
	assert.Equal(t, "fullflow/0", all[0].Receiver)
	assert.Equal(t, `err="a b"`, all[0].Attrs)
	assert.Equal(t, "g.k=v", all[1].Attrs)
	assert.Equal(t, "fullflow/0", all[1].Receiver)
	assert.Len(t, ring.Lines(0, slog.LevelWarn, ""), 2)
	assert.Len(t, ring.Lines(0, slog.LevelDebug, "fullflow/0"), 2)
	assert.Len(t, ring.Lines(all[1].Seq, slog.LevelDebug, ""), 1)
	assert.NotContains(t, out.String(), "not kept")
	assert.Contains(t, out.String(), "receiver=fullflow/0")
}

// TestEmbeddedDefaultIsReadOnly: without -config there is no file to edit;
// the receiver table still shows what runs.
func TestEmbeddedDefaultIsReadOnly(t *testing.T) {
	_, _, _, running := startConsole(t, true)
	c, err := New(running.src, Options{Loopback: true})
	require.NoError(t, err)
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/receivers")
	require.NoError(t, err)
	var body bytes.Buffer
	_, err = body.ReadFrom(resp.Body)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body.String(), "nothing to edit")
	assert.Contains(t, body.String(), `data-receiver="fullflow/0"`)
	assert.NotContains(t, body.String(), "Add a receiver")
}
