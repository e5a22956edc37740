// Package testenv holds test-only helpers shared by packages: a private
// ClickHouse server (or a small cluster of them) on loopback ports.
//
// Nothing here is used by production code. Helpers take testing.TB, call
// t.Helper, clean up with t.Cleanup and return a ready thing. A missing
// tool fails the test with a clear message; it never skips (make test
// installs what is missing).
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ClusterName is the cluster that StartClickHouseCluster declares in
// remote_servers.
const ClusterName = "ipfix_test"

const (
	chStartTimeout = 30 * time.Second
	chStopTimeout  = 15 * time.Second
	chQueryTimeout = 60 * time.Second
)

// ClickHouse is a private clickhouse-server process: its own data directory,
// its own loopback ports, stopped on t.Cleanup. Stop and Start restart it on
// the same ports and data directory, to simulate an outage.
type ClickHouse struct {
	// URL is the HTTP interface, e.g. "http://127.0.0.1:41234".
	URL string
	// TCPPort is the native protocol port (what remote_servers names).
	TCPPort int
	// HTTPPort and InterserverPort are the other ports it listens on.
	HTTPPort, InterserverPort int
	// Dir holds config.xml, users.xml, the data and the server log.
	Dir string

	t       testing.TB
	bin     []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// StartClickHouse starts a private single server and waits until it answers
// GET /ping.
func StartClickHouse(t testing.TB) *ClickHouse {
	t.Helper()
	chs := startServers(t, 1, "")
	return chs[0]
}

// StartClickHouseCluster starts n servers declared as an n-shard cluster
// named ClusterName (one replica per shard) in every server's remote_servers.
// Shard i (1-based in ClickHouse) is the i-th returned server.
func StartClickHouseCluster(t testing.TB, n int) []*ClickHouse {
	t.Helper()
	if n < 1 {
		t.Fatalf("StartClickHouseCluster: %d shards", n)
	}
	return startServers(t, n, ClusterName)
}

func startServers(t testing.TB, n int, cluster string) []*ClickHouse {
	t.Helper()
	bin := findClickHouse(t)
	chs := make([]*ClickHouse, n)
	ports := freePorts(t, 3*n)
	// Stop the servers of a cluster together: each holds pooled
	// connections to the others, which a server told to stop waits for.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, ch := range chs {
			if ch == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ch.stop()
				os.RemoveAll(ch.Dir)
			}()
		}
		wg.Wait()
	})
	for i := range chs {
		dir, err := os.MkdirTemp("", "ipfix-clickhouse-")
		if err != nil {
			t.Fatalf("clickhouse temp dir: %v", err)
		}
		ch := &ClickHouse{
			TCPPort: ports[3*i], HTTPPort: ports[3*i+1], InterserverPort: ports[3*i+2],
			Dir: dir, t: t, bin: bin,
		}
		ch.URL = fmt.Sprintf("http://127.0.0.1:%d", ch.HTTPPort)
		chs[i] = ch
	}
	var remote string
	if cluster != "" {
		var b strings.Builder
		fmt.Fprintf(&b, "  <remote_servers>\n    <%s>\n", cluster)
		for _, ch := range chs {
			fmt.Fprintf(&b, "      <shard><replica><host>127.0.0.1</host><port>%d</port></replica></shard>\n", ch.TCPPort)
		}
		fmt.Fprintf(&b, "    </%s>\n  </remote_servers>\n", cluster)
		remote = b.String()
	}
	for i, ch := range chs {
		if err := ch.writeConfig(remote, i+1); err != nil {
			t.Fatalf("clickhouse config: %v", err)
		}
		ch.Start()
	}
	return chs
}

// findClickHouse returns the command that runs the server.
func findClickHouse(t testing.TB) []string {
	t.Helper()
	for _, p := range []string{"/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return []string{p}
		}
	}
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return []string{p}
	}
	for _, p := range []string{"/usr/bin/clickhouse"} {
		if _, err := os.Stat(p); err == nil {
			return []string{p, "server"}
		}
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return []string{p, "server"}
	}
	t.Fatal("clickhouse-server not found: run make test, which installs it")
	return nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func (ch *ClickHouse) writeConfig(remoteServers string, shard int) error {
	d := ch.Dir
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>%[1]s/server.log</log>
    <errorlog>%[1]s/server.err.log</errorlog>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <http_port>%[3]d</http_port>
  <interserver_http_port>%[4]d</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>%[1]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <keep_alive_timeout>3</keep_alive_timeout>
  <macros><shard>%[5]d</shard><replica>r1</replica></macros>
%[6]s</yandex>
`, d, ch.TCPPort, ch.HTTPPort, ch.InterserverPort, shard, remoteServers)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(d, "config.xml"), []byte(config), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "users.xml"), []byte(users), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(d, 0o755); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		uid, gid, err := clickhouseUser()
		if err != nil {
			return err
		}
		return filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
	}
	return nil
}

func clickhouseUser() (uid, gid int, err error) {
	u, err := user.Lookup("clickhouse")
	if err != nil {
		return 0, 0, fmt.Errorf("running as root needs the clickhouse user (installed with clickhouse-server): %w", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// Start starts the server (again) on its ports and data directory and waits
// until it answers GET /ping. It fails the test if the server does not come
// up within a bound.
func (ch *ClickHouse) Start() {
	ch.t.Helper()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.cmd != nil {
		ch.t.Fatalf("clickhouse %s: already running", ch.URL)
	}
	args := append([]string(nil), ch.bin...)
	args = append(args, "--config-file="+filepath.Join(ch.Dir, "config.xml"))
	if os.Geteuid() == 0 {
		args = append([]string{"setpriv", "--reuid=clickhouse", "--regid=clickhouse", "--init-groups"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = ch.Dir
	out, err := os.OpenFile(filepath.Join(ch.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		ch.t.Fatalf("clickhouse log: %v", err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		ch.t.Fatalf("start clickhouse: %v", err)
	}
	exited := make(chan struct{})
	ch.cmd, ch.exited = cmd, exited
	go func() {
		ch.waitErr = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(chStartTimeout)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		select {
		case <-exited:
			ch.cmd = nil
			ch.t.Fatalf("clickhouse %s exited at start (%v):\n%s", ch.URL, ch.waitErr, ch.logTail())
		default:
		}
		resp, err := client.Get(ch.URL + "/ping")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.HasPrefix(string(body), "Ok.") {
				return
			}
		}
		if time.Now().After(deadline) {
			ch.killLocked()
			ch.t.Fatalf("clickhouse %s: no answer to /ping within %v:\n%s", ch.URL, chStartTimeout, ch.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server: SIGTERM, then SIGKILL after a bound. Data stays.
func (ch *ClickHouse) Stop() {
	ch.t.Helper()
	ch.stop()
}

func (ch *ClickHouse) stop() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.cmd == nil {
		return
	}
	_ = ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.exited:
	case <-time.After(chStopTimeout):
		_ = syscall.Kill(-ch.cmd.Process.Pid, syscall.SIGKILL)
		<-ch.exited
	}
	ch.cmd = nil
}

// Kill stops the server with SIGKILL, as a crash would.
func (ch *ClickHouse) Kill() {
	ch.t.Helper()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.killLocked()
}

func (ch *ClickHouse) killLocked() {
	if ch.cmd == nil {
		return
	}
	_ = syscall.Kill(-ch.cmd.Process.Pid, syscall.SIGKILL)
	<-ch.exited
	ch.cmd = nil
}

func (ch *ClickHouse) logTail() string {
	var b bytes.Buffer
	for _, f := range []string{"stdout.log", "server.err.log"} {
		data, _ := os.ReadFile(filepath.Join(ch.Dir, f))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", f, data)
	}
	return b.String()
}

// queryClient keeps no idle connections: an idle keep-alive connection makes
// the server wait for it on SIGTERM.
var queryClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// Query runs sql over HTTP and returns the response body (TabSeparated by
// default); it fails the test on any error.
func (ch *ClickHouse) Query(t testing.TB, sql string) string {
	t.Helper()
	out, err := ch.Exec(sql)
	if err != nil {
		t.Fatalf("clickhouse %s: %v", ch.URL, err)
	}
	return out
}

// Exec runs sql over HTTP and returns the response body or an error with the
// server's message.
func (ch *ClickHouse) Exec(sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), chQueryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.URL+"/", strings.NewReader(sql))
	if err != nil {
		return "", err
	}
	resp, err := queryClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(strings.TrimSpace(string(body)) + ": " + firstLine(sql))
	}
	return string(body), nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
