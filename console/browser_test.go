package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// The binaries the browser tests run, built once in TestMain.
var balancerBin, genBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		var cleanups []func()
		defer func() {
			for _, c := range cleanups {
				c()
			}
		}()
		// The daemon runs with the race detector when it builds with it, so
		// that the console's reads of the balancer's state are checked too.
		for _, b := range []struct {
			path      *string
			name, pkg string
			flags     []string
		}{{&balancerBin, "ipfix-balancer", "../cmd/ipfix-balancer", []string{"-race"}}, {&genBin, "ipfix-gen", "../cmd/ipfix-gen", nil}} {
			p, cleanup, err := testenv.Build(b.name, b.pkg, b.flags...)
			if err != nil && len(b.flags) > 0 {
				p, cleanup, err = testenv.Build(b.name, b.pkg)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			cleanups = append(cleanups, cleanup)
			*b.path = p
		}
		return m.Run()
	}())
}

// operatorToken is the test operator's token; the configuration holds its hash.
const operatorToken = "correct horse battery staple"

// startBrowser starts a headless Chromium (Debian's chromium package: the test
// fails when it is missing) and returns a browser context. Chromium's own
// network traffic is off: this network refuses it.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		path, err = exec.LookPath("chromium-browser")
	}
	require.NoError(t, err, "the console's browser tests need chromium (scripts/install-test-deps.sh installs it)")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first call starts the browser and must not have a timeout of its
	// own (it would end the browser): bound it from here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		require.NoError(t, err, "start chromium")
	case <-time.After(60 * time.Second):
		t.Fatal("chromium did not start within 60s")
	}
	return ctx
}

// run runs browser actions with a bound.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(rctx, actions...), what)
}

// get runs one browser action that reads a value, with a bound.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	v, err := chromedp.Run(rctx, a)
	require.NoError(t, err, what)
	return v
}

// artefacts is where screenshots go: $CONSOLE_SCREENSHOTS, else a directory
// under the test's temporary directory (kept until the test ends).
func artefacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "screenshots")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Logf("screenshots in %s", dir)
	return dir
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
}

// waitText polls the text of sel until cond holds, bounded.
func waitText(t *testing.T, ctx context.Context, sel string, timeout time.Duration, cond func(string) bool) string {
	t.Helper()
	var text string
	deadline := time.Now().Add(timeout)
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var err error
		text, err = chromedp.Run(rctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
		cancel()
		if err == nil && cond(text) {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: condition not met within %v (last text %q, err %v)", sel, timeout, text, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestConsoleInBrowser runs the daemon on the shipped default configuration
// (ports and directories moved, one operator added) while ipfix-gen streams
// fullflow, and drives the console in a real headless Chromium.
func TestConsoleInBrowser(t *testing.T) {
	s := testenv.ShippedConfig(t, "config/default.toml")
	require.NotEmpty(t, s.Metrics)
	sum := sha256.Sum256([]byte(operatorToken))
	shipped, err := os.ReadFile(s.Path)
	require.NoError(t, err)
	require.Contains(t, string(shipped), "operators = []")
	withOperator := strings.Replace(string(shipped), "operators = []", `operators = ["alice:`+hex.EncodeToString(sum[:])+`"]`, 1)
	require.NoError(t, os.WriteFile(s.Path, []byte(withOperator), 0o644))

	d := testenv.StartDaemon(t, balancerBin, "-config", s.Path)
	t.Cleanup(func() {
		assert.NotContains(t, d.Log(), "WARNING: DATA RACE", "the daemon (built with -race) found a race")
	})
	base := "http://" + s.Metrics

	// The DPI: fullflow over TCP for the whole test, at a modest rate.
	gen := exec.Command(genBin, "-stream", "fullflow", "-duration", "5m", "-rate", "4000", "-to", "tcp://"+s.Receivers["fullflow/0"])
	var genOut strings.Builder
	gen.Stdout, gen.Stderr = &genOut, &genOut
	require.NoError(t, gen.Start())
	genDone := make(chan error, 1)
	go func() { genDone <- gen.Wait() }()
	t.Cleanup(func() {
		_ = gen.Process.Kill()
		<-genDone
	})

	ctx := startBrowser(t)
	shots := artefacts(t)

	t.Run("overview shows the receivers and numbers that move", func(t *testing.T) {
		run(t, ctx, "overview", chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.CSS(`section[data-receiver="fullflow/0"]`)))
		for _, name := range []string{"fullflow/0", "clickstream/0", "dnsflow/0"} {
			n := get(t, ctx, "count "+name, chromedp.Evaluate[int](`document.querySelectorAll('section[data-receiver="`+name+`"]').length`))
			assert.Equal(t, 1, n, "receiver %s on the overview", name)
		}
		total := `section[data-receiver="fullflow/0"] .total-messages`
		first := waitText(t, ctx, total, 30*time.Second, func(s string) bool { return s != "0 msg" })
		// The page refreshes itself (JavaScript): the same page shows more.
		waitText(t, ctx, total, 30*time.Second, func(s string) bool { return s != first })
		waitText(t, ctx, `section[data-receiver="fullflow/0"] .rate-messages`, 30*time.Second, func(s string) bool { return s != "0 msg/s" })
		exporters := get(t, ctx, "sessions", chromedp.Evaluate[int](`document.querySelectorAll('section[data-receiver="fullflow/0"] td.exporter').length`))
		assert.Equal(t, 1, exporters, "the exporter's session is listed")
		screenshot(t, ctx, shots, "overview.png")
	})

	t.Run("an unauthenticated change is refused", func(t *testing.T) {
		before, err := os.ReadFile(s.Path)
		require.NoError(t, err)
		resp, err := http.PostForm(base+"/receivers/apply", url.Values{"action": {"remove"}, "orig": {"dnsflow/0"}})
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		// A cross-site request is refused before its session is even looked at.
		req, err := http.NewRequest(http.MethodPost, base+"/receivers/apply", strings.NewReader("action=remove&orig=dnsflow%2F0"))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://evil.example")
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		after, err := os.ReadFile(s.Path)
		require.NoError(t, err)
		assert.Equal(t, string(before), string(after), "the file is unchanged")
		// In the browser, the editor sends to the login page.
		run(t, ctx, "editor without login", chromedp.Navigate(base+"/receivers/edit?receiver=fullflow/0"),
			chromedp.WaitVisible(chromedp.ID(`token`)))
		loc := get(t, ctx, "location", chromedp.Location())
		assert.Contains(t, loc, "/login")
	})

	t.Run("login", func(t *testing.T) {
		run(t, ctx, "wrong token", chromedp.Navigate(base+"/login?next=/receivers"),
			chromedp.SendKeys(chromedp.ID(`token`), "wrong"), chromedp.Click(chromedp.ID(`login`)),
			chromedp.WaitVisible(chromedp.ID(`login-error`)))
		run(t, ctx, "login", chromedp.Navigate(base+"/login?next=/receivers"),
			chromedp.SendKeys(chromedp.ID(`token`), operatorToken), chromedp.Click(chromedp.ID(`login`)),
			chromedp.WaitVisible(chromedp.ID(`receivers`)))
		who := get(t, ctx, "operator", chromedp.Text(chromedp.ID(`operator`)))
		assert.Equal(t, "alice", who)
	})

	t.Run("a bad value is refused next to its field and the file is unchanged", func(t *testing.T) {
		before, err := os.ReadFile(s.Path)
		require.NoError(t, err)
		run(t, ctx, "edit", chromedp.Navigate(base+"/receivers/edit?receiver=fullflow/0"),
			chromedp.WaitVisible(chromedp.ID(`receiver-form`)),
			chromedp.SetValue(chromedp.ID(`mode`), "All"),
			chromedp.SetValue(chromedp.ID(`subreceivers`), "127.0.0.1:9, 10.0.0.3/34x0"),
			chromedp.Click(chromedp.ID(`check`)),
			chromedp.WaitVisible(chromedp.ID(`error-subreceivers`)))
		msg := get(t, ctx, "error", chromedp.Text(chromedp.ID(`error-subreceivers`)))
		assert.Equal(t, `"10.0.0.3/34x0": bad port`, msg)
		fields := get(t, ctx, "only that field", chromedp.Evaluate[int](`document.querySelectorAll('label.invalid').length`))
		assert.Equal(t, 1, fields, "one field marked")
		screenshot(t, ctx, shots, "editor.png")
		after, err := os.ReadFile(s.Path)
		require.NoError(t, err)
		assert.Equal(t, string(before), string(after), "the file is unchanged")
	})

	col := testenv.StartCollector(t, "tcp")
	t.Run("a subreceiver added through the form starts receiving", func(t *testing.T) {
		run(t, ctx, "edit", chromedp.Navigate(base+"/receivers/edit?receiver=fullflow/0"),
			chromedp.WaitVisible(chromedp.ID(`receiver-form`)),
			chromedp.SetValue(chromedp.ID(`mode`), "All"),
			chromedp.SetValue(chromedp.ID(`subreceivers`), col.Addr()),
			chromedp.Click(chromedp.ID(`check`)),
			chromedp.WaitVisible(chromedp.ID(`diff`)))
		diff := get(t, ctx, "diff", chromedp.Text(chromedp.ID(`diff`)))
		assert.Contains(t, diff, `+ subreceivers = ["`+col.Addr()+`"]`)
		assert.Contains(t, diff, `- mode = "Recording"`)
		screenshot(t, ctx, shots, "diff.png")
		run(t, ctx, "apply", chromedp.Click(chromedp.ID(`apply`)), chromedp.WaitVisible(chromedp.ID(`flash`)))

		file, err := os.ReadFile(s.Path)
		require.NoError(t, err)
		assert.Contains(t, string(file), `subreceivers = ["`+col.Addr()+`"]`)
		bak, err := os.ReadFile(s.Path + ".bak")
		require.NoError(t, err)
		assert.Equal(t, withOperator, string(bak), "the previous file is kept")
		assert.Contains(t, string(file), "# One [[receiver]] per stream of each DPI.", "comments stay")

		deadline := time.Now().Add(60 * time.Second)
		for col.Stats().Records < 1000 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		st := col.Stats()
		require.GreaterOrEqual(t, st.Records, 1000, "the new subreceiver receives")
		assert.Zero(t, st.Undecoded, "templates came first")
		assert.Empty(t, col.Refusals())
		page := testenv.Scrape(t, s.Metrics)
		assert.Equal(t, 1.0, testenv.MetricSum(page, `ipfix_balancer_exporter_sessions_total{stream="fullflow",dpi="0"}`), "the exporter's session never dropped")
		assert.Equal(t, 1.0, testenv.MetricSum(page, `ipfix_balancer_exporter_sessions{stream="fullflow",dpi="0"}`))
		select {
		case err := <-genDone:
			t.Fatalf("ipfix-gen stopped: %v\n%s", err, genOut.String())
		default:
		}
		// The overview shows it up, and what it is sent.
		run(t, ctx, "overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`tr[data-subreceiver="tcp `+col.Addr()+`"]`)))
		state := waitText(t, ctx, `tr[data-subreceiver="tcp `+col.Addr()+`"] td.state`, 10*time.Second, func(s string) bool { return s == "up" })
		assert.Equal(t, "up", state)
		waitText(t, ctx, `tr[data-subreceiver="tcp `+col.Addr()+`"] td.sent`, 30*time.Second, func(s string) bool { return !strings.HasPrefix(s, "0 msg/s") })
		screenshot(t, ctx, shots, "overview-subreceiver.png")
	})

	t.Run("the logs page shows the reload", func(t *testing.T) {
		run(t, ctx, "logs", chromedp.Navigate(base+"/logs"), chromedp.WaitVisible(chromedp.ID(`logs`)))
		text := waitText(t, ctx, `#logs`, 10*time.Second, func(s string) bool { return strings.Contains(s, "configuration reloaded") })
		assert.Contains(t, text, "configuration changed from the console")
		assert.Contains(t, text, "operator=alice")
		// Filtered by receiver and level.
		run(t, ctx, "filter", chromedp.Navigate(base+"/logs?level=info&receiver=fullflow/0"), chromedp.WaitVisible(chromedp.ID(`logs`)))
		text = waitText(t, ctx, `#logs`, 10*time.Second, func(s string) bool { return strings.Contains(s, "output added") })
		assert.NotContains(t, text, "clickstream/0")
		screenshot(t, ctx, shots, "logs.png")
	})

	t.Run("a plot renders with data", func(t *testing.T) {
		run(t, ctx, "plots", chromedp.Navigate(base+"/plots?receiver=fullflow/0"), chromedp.WaitVisible(chromedp.CSS(`svg.plot`)))
		var points string
		deadline := time.Now().Add(30 * time.Second)
		for {
			// The page refreshes itself; reload it anyway to be independent of that.
			run(t, ctx, "plots", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`svg.plot`)))
			points = get(t, ctx, "points", chromedp.AttributeValue(chromedp.CSS(`svg.plot`), "data-points")).Value
			if n, _ := strconv.Atoi(points); n >= 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		n, _ := strconv.Atoi(points)
		require.GreaterOrEqual(t, n, 2, "samples in the first plot")
		line := get(t, ctx, "line", chromedp.AttributeValue(chromedp.CSS(`svg.plot polyline.pline`), "points")).Value
		assert.GreaterOrEqual(t, len(strings.Fields(line)), 2)
		screenshot(t, ctx, shots, "plots.png")
	})

	t.Run("a subreceiver down shows at a glance", func(t *testing.T) {
		col.Stop()
		run(t, ctx, "overview", chromedp.Navigate(base+"/"))
		row := `tr[data-subreceiver="tcp ` + col.Addr() + `"]`
		waitText(t, ctx, row+` td.state`, 30*time.Second, func(s string) bool { return s == "down" })
		banner := waitText(t, ctx, `#summary`, 30*time.Second, func(s string) bool { return strings.Contains(s, "down") })
		assert.Contains(t, banner, "fullflow/0: subreceiver "+col.Addr()+" down")
		class := get(t, ctx, "section class", chromedp.AttributeValue(chromedp.CSS(`section[data-receiver="fullflow/0"]`), "class")).Value
		assert.Contains(t, class, "bad")
		screenshot(t, ctx, shots, "overview-problem.png")
	})
}

// TestConsoleOnPackagedConfig: the packaged configuration turns the console
// on, on loopback, read-only without login.
func TestConsoleOnPackagedConfig(t *testing.T) {
	s := testenv.ShippedConfig(t, "packaging/balancer.toml")
	testenv.StartDaemon(t, balancerBin, "-config", s.Path)
	c := &http.Client{Timeout: 10 * time.Second}
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get("http://" + s.Metrics + "/")
		require.NoError(t, err)
		var b strings.Builder
		_, err = io.Copy(&b, resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		body = b.String()
		if strings.Contains(body, `data-receiver="dnsflow/0"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name := range s.Receivers {
		assert.Contains(t, body, `data-receiver="`+name+`"`)
	}
	resp, err := c.PostForm("http://"+s.Metrics+"/receivers/apply", url.Values{"action": {"remove"}, "orig": {"dnsflow/0"}})
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no operator in the packaged file: read-only")
	// /metrics is still served next to it.
	assert.Contains(t, testenv.Scrape(t, s.Metrics), "ipfix_balancer_console_changes_total")
}
