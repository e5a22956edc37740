package packaging

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"

	"github.com/ipfix-balancer/ipfix-balancer/config"
)

// workDir holds what every test shares: the binaries and the two packages,
// built once (TestMain removes it).
var workDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ipfix-packaging-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// built is the outcome of building the packages once.
var built struct {
	once     sync.Once
	deb, rpm string // package paths
	version  string // package version, before the release
	err      error
}

// repoRoot is the repository root (tests run in packaging/).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

// requireTool fails the test when a command is missing: make test installs it.
func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: install it with scripts/install-test-deps.sh (make deps)", name)
	}
}

// packages builds the binaries and both packages once and returns their paths.
func packages(t testing.TB) (deb, rpm string) {
	t.Helper()
	built.once.Do(func() {
		root := repoRoot(t)
		bin := filepath.Join(workDir, "bin")
		dist := filepath.Join(workDir, "dist")
		describe, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output()
		if err != nil {
			describe = []byte("dev")
		}
		build := exec.Command("go", "build", "-trimpath",
			"-ldflags", "-s -w -X main.version="+strings.TrimSpace(string(describe)),
			"-o", bin+"/", "./cmd/...")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		for _, kind := range []string{"deb", "rpm"} {
			path, err := runBuild(root, kind, "BIN="+bin, "DIST="+dist)
			if err != nil {
				built.err = err
				return
			}
			if kind == "deb" {
				built.deb = path
			} else {
				built.rpm = path
			}
		}
		v, err := runBuild(root, "version")
		if err != nil {
			built.err = err
			return
		}
		built.version = v
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.deb, built.rpm
}

// runBuild runs packaging/build.sh and returns the last line it prints.
func runBuild(root, arg string, env ...string) (string, error) {
	cmd := exec.Command("./packaging/build.sh", arg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build.sh %s: %w\n%s", arg, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

// extractDeb unpacks the .deb into a new scratch root, as dpkg would.
func extractDeb(t testing.TB) string {
	t.Helper()
	requireTool(t, "dpkg-deb")
	deb, _ := packages(t)
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	return root
}

// entry is one file of a package as its listing shows it.
type entry struct {
	mode  string // ls -l style: -rwxr-xr-x, drwxr-x---
	owner string // user/group
}

// want is every path the packages hold besides the parent directories.
var want = map[string]entry{
	"/usr/bin/ipfix-balancer":                        {"-rwxr-xr-x", "root/root"},
	"/usr/bin/ipfix-loader":                          {"-rwxr-xr-x", "root/root"},
	"/usr/bin/ipfix-gen":                             {"-rwxr-xr-x", "root/root"},
	"/usr/bin/ipfix-balancer-restart":                {"-rwxr-xr-x", "root/root"},
	"/usr/bin/ipfix-balancer-stop":                   {"-rwxr-xr-x", "root/root"},
	"/usr/bin/ipfix-balancer-reload":                 {"-rwxr-xr-x", "root/root"},
	"/usr/lib/systemd/system/ipfix-balancer.service": {"-rw-r--r--", "root/root"},
	"/usr/lib/systemd/system/ipfix-loader.service":   {"-rw-r--r--", "root/root"},
	"/usr/lib/sysctl.d/60-ipfix-balancer.conf":       {"-rw-r--r--", "root/root"},
	"/etc/ipfix-balancer":                            {"drwxr-xr-x", "root/root"},
	"/etc/ipfix-balancer/balancer.toml":              {"-rw-r-----", "root/ipfix-balancer"},
	"/var/lib/ipfix-balancer":                        {"drwxr-x---", "ipfix-balancer/ipfix-balancer"},
	"/var/lib/ipfix-balancer/dump":                   {"drwxr-x---", "ipfix-balancer/ipfix-balancer"},
}

// Only in the .deb: Debian's machine-readable copyright file.
var wantDeb = map[string]entry{
	"/usr/share/doc/ipfix-balancer/copyright": {"-rw-r--r--", "root/root"},
}

// Only in the RPM: the license text, as %license.
var wantRPM = map[string]entry{
	"/usr/share/licenses/ipfix-balancer/LICENSE": {"-rw-r--r--", "root/root"},
}

// withWant returns want plus the paths of one package.
func withWant(extra map[string]entry) map[string]entry {
	all := make(map[string]entry, len(want)+len(extra))
	for p, e := range want {
		all[p] = e
	}
	for p, e := range extra {
		all[p] = e
	}
	return all
}

// checkListing compares a package listing with want plus extra: every wanted
// path with its mode and owner, and nothing else but root-owned parent
// directories.
func checkListing(t *testing.T, got, extra map[string]entry) {
	t.Helper()
	want := withWant(extra)
	for path, w := range want {
		g, ok := got[path]
		if assert.True(t, ok, "%s missing", path) {
			assert.Equal(t, w, g, path)
		}
	}
	for path, g := range got {
		if _, ok := want[path]; ok {
			continue
		}
		isParent := false
		for w := range want {
			if strings.HasPrefix(w, path+"/") {
				isParent = true
			}
		}
		assert.True(t, isParent && g == entry{"drwxr-xr-x", "root/root"}, "unexpected %s %v", path, g)
	}
}

func TestPackageVersion(t *testing.T) {
	// git describe output -> package version; rpm and dpkg must both accept
	// it and order it as git does.
	f := func(describe, want string) {
		t.Helper()
		got, err := runBuild(repoRoot(t), "version", "VERSION="+describe)
		require.NoError(t, err)
		assert.Equal(t, want, got, describe)
	}
	f("v1.2.3", "1.2.3")
	f("1.2.3", "1.2.3")
	f("v1.2.3-rc1", "1.2.3~rc1")
	f("v1.2.3-dirty", "1.2.3+0.dirty")
	f("v1.2.3-4-gabc1234", "1.2.3+4.gabc1234")
	f("v1.2.3-4-gabc1234-dirty", "1.2.3+4.gabc1234.dirty")
	f("v1.2.3-rc1-4-gabc1234", "1.2.3~rc1+4.gabc1234")
	f("abc1234", "0.0.0~gitabc1234")
	f("2e1be1e-dirty", "0.0.0~git2e1be1e.dirty") // a bare commit that starts with a digit
	f("1234567", "0.0.0~git1234567")
}

func TestPackageVersionOrder(t *testing.T) {
	requireTool(t, "dpkg")
	// Each version must sort strictly after the previous one for dpkg (and
	// rpm: same rules for these forms, '~' first, more segments later).
	versions := []string{"0.0.0~gitabc1234", "1.2.3~rc1", "1.2.3~rc1+4.gabc1234", "1.2.3", "1.2.3+0.dirty", "1.2.3+4.gabc1234", "1.2.3+5.g0000000", "1.2.4~rc1", "1.2.4"}
	for i := 1; i < len(versions); i++ {
		err := exec.Command("dpkg", "--compare-versions", versions[i-1], "lt", versions[i]).Run()
		assert.NoError(t, err, "dpkg: %s < %s", versions[i-1], versions[i])
	}
	if _, err := exec.LookPath("rpmdev-vercmp"); err == nil {
		for i := 1; i < len(versions); i++ {
			out, _ := exec.Command("rpmdev-vercmp", versions[i-1], versions[i]).CombinedOutput()
			assert.Contains(t, string(out), "<", "rpm: %s < %s", versions[i-1], versions[i])
		}
	}
}

func TestDebContents(t *testing.T) {
	requireTool(t, "dpkg-deb")
	deb, _ := packages(t)
	assert.Regexp(t, `/ipfix-balancer_[^_/]+-1_[a-z0-9]+\.deb$`, deb)

	got := make(map[string]entry)
	for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "--contents", deb)), "\n") {
		// drwxr-x--- ipfix-balancer/ipfix-balancer 0 2026-11-22 05:59 ./var/lib/ipfix-balancer/
		fields := strings.Fields(line)
		require.Len(t, fields, 6, line)
		path := strings.TrimSuffix(strings.TrimPrefix(fields[5], "."), "/")
		if path == "" {
			continue
		}
		got[path] = entry{fields[0], fields[1]}
	}
	checkListing(t, got, wantDeb)

	assert.Equal(t, "/etc/ipfix-balancer/balancer.toml\n", run(t, "dpkg-deb", "--info", deb, "conffiles"))
	fields := run(t, "dpkg-deb", "--field", deb, "Package", "Version", "Depends")
	assert.Contains(t, fields, "Package: ipfix-balancer\n")
	assert.Contains(t, fields, "Version: "+built.version+"-1\n")
	assert.Contains(t, fields, "Depends: passwd, util-linux, procps\n")
	if arch, ok := map[string]string{"amd64": "amd64", "arm64": "arm64"}[runtime.GOARCH]; ok {
		assert.Equal(t, arch+"\n", run(t, "dpkg-deb", "--field", deb, "Architecture"))
	}

	// The copyright file is in Debian's machine-readable format and names
	// the license of LICENSE, and those of the modules linked in.
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	copyright := readFile(t, filepath.Join(root, "usr/share/doc/ipfix-balancer/copyright"))
	assert.True(t, strings.HasPrefix(copyright, "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"), copyright)
	assert.Contains(t, copyright, "\nFiles: *\nCopyright: ")
	assert.Contains(t, copyright, "\nLicense: Apache-2.0\n")
	assert.Contains(t, copyright, "/usr/share/common-licenses/Apache-2.0")
	assert.Contains(t, readFile(t, "../LICENSE"), "Apache License\n                           Version 2.0, January 2004")
	for _, stanza := range strings.Split(copyright, "\n\n") {
		// Every stanza is fields ("Key: value") and continuation lines (" text").
		for _, line := range strings.Split(strings.TrimSpace(stanza), "\n") {
			assert.Regexp(t, `^([A-Z][A-Za-z-]*: ?.*| .*)$`, line, "copyright line")
		}
	}

	// The maintainer scripts are ours, verbatim.
	ctl := t.TempDir()
	run(t, "dpkg-deb", "--control", deb, ctl)
	for script, src := range map[string]string{"preinst": "preinstall.sh", "postinst": "postinstall.sh", "prerm": "preremove.sh", "postrm": "postremove.sh"} {
		assert.Equal(t, readFile(t, filepath.Join("scripts", src)), readFile(t, filepath.Join(ctl, script)), script)
		fi, err := os.Stat(filepath.Join(ctl, script))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), script)
	}
}

func TestRPMContents(t *testing.T) {
	requireTool(t, "rpm")
	_, rpm := packages(t)
	assert.Regexp(t, `/ipfix-balancer-[^/]+-1\.[a-z0-9_]+\.rpm$`, rpm)

	list := strings.Fields(run(t, "rpm", "-qlp", rpm))
	sort.Strings(list)
	var wantList []string
	for path := range withWant(wantRPM) {
		wantList = append(wantList, path)
	}
	sort.Strings(wantList)
	assert.Equal(t, wantList, list, "rpm -qlp (-got, +want)")

	assert.Equal(t, "/etc/ipfix-balancer/balancer.toml\n", run(t, "rpm", "-qcp", rpm), "rpm -qcp: config files")

	got := make(map[string]entry)
	flags := make(map[string]string)
	out := run(t, "rpm", "-qp", "--qf", `[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags}; %{FILENAMES}\n]`, rpm)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		// -rw-r----- root ipfix-balancer cn; /etc/ipfix-balancer/balancer.toml
		head, path, ok := strings.Cut(line, "; ")
		require.True(t, ok, line)
		f := strings.Fields(head)
		require.GreaterOrEqual(t, len(f), 3, line)
		got[path] = entry{f[0], f[1] + "/" + f[2]}
		if len(f) > 3 {
			flags[path] = f[3]
		}
	}
	checkListing(t, got, wantRPM)
	assert.Equal(t, map[string]string{
		"/etc/ipfix-balancer/balancer.toml":          "cn",
		"/usr/share/licenses/ipfix-balancer/LICENSE": "l",
	}, flags, "%config(noreplace) only on the config, %license on LICENSE")
	assert.Equal(t, "Apache-2.0", run(t, "rpm", "-qp", "--qf", "%{LICENSE}", rpm), "rpm License field")

	assert.Equal(t, "ipfix-balancer "+built.version+" 1", run(t, "rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE}", rpm))
	requires := run(t, "rpm", "-qp", "--requires", rpm)
	for _, r := range []string{"shadow-utils", "util-linux", "procps-ng"} {
		assert.Contains(t, requires, r+"\n")
	}
	assert.Contains(t, run(t, "rpm", "-K", "--nosignature", rpm), "digests OK")
	// rpm itself unpacks it (scriptlets would run chrooted into the scratch
	// root, which has no shell; TestMaintainerScripts runs them).
	root := t.TempDir()
	run(t, "rpm", "--install", "--root="+root, "--dbpath="+filepath.Join(root, "rpmdb"), "--nodeps", "--noscripts", rpm)
	for path := range withWant(wantRPM) {
		_, err := os.Lstat(filepath.Join(root, path))
		assert.NoError(t, err, "installed by rpm")
	}
	assert.Equal(t, readFile(t, "balancer.toml"), readFile(t, filepath.Join(root, "etc/ipfix-balancer/balancer.toml")))
	assert.Equal(t, readFile(t, "../LICENSE"), readFile(t, filepath.Join(root, "usr/share/licenses/ipfix-balancer/LICENSE")))

	for tag, src := range map[string]string{"PREIN": "preinstall.sh", "POSTIN": "postinstall.sh", "PREUN": "preremove.sh", "POSTUN": "postremove.sh"} {
		got := run(t, "rpm", "-qp", "--qf", "%{"+tag+"}", rpm)
		assert.Equal(t, strings.TrimSpace(readFile(t, filepath.Join("scripts", src))), strings.TrimSpace(got), tag)
		assert.Equal(t, "/bin/sh", run(t, "rpm", "-qp", "--qf", "%{"+tag+"PROG}", rpm), tag+"PROG")
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// unitDirectives parses a unit file into section.key -> values.
func unitDirectives(t testing.TB, path string) map[string][]string {
	t.Helper()
	d := make(map[string][]string)
	section := ""
	for _, line := range strings.Split(readFile(t, path), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: %q", path, line)
			d[section+"."+k] = append(d[section+"."+k], v)
		}
	}
	return d
}

func TestUnits(t *testing.T) {
	root := extractDeb(t)
	units := filepath.Join(root, "usr/lib/systemd/system")
	balancer := unitDirectives(t, filepath.Join(units, "ipfix-balancer.service"))
	loader := unitDirectives(t, filepath.Join(units, "ipfix-loader.service"))
	f := func(d map[string][]string, key string, want ...string) {
		t.Helper()
		assert.Equal(t, want, d[key], key)
	}
	for _, d := range []map[string][]string{balancer, loader} {
		f(d, "Service.User", "ipfix-balancer")
		f(d, "Service.Group", "ipfix-balancer")
		f(d, "Service.Restart", "on-failure")
		f(d, "Service.StateDirectory", "ipfix-balancer")
		f(d, "Service.WorkingDirectory", "/var/lib/ipfix-balancer")
		f(d, "Service.CapabilityBoundingSet", "")
		f(d, "Service.AmbientCapabilities") // the default ports are above 1024
		f(d, "Install.WantedBy", "multi-user.target")
	}
	f(balancer, "Service.Type", "notify")
	f(balancer, "Service.NotifyAccess", "all") // the successor reports MAINPID itself
	f(balancer, "Service.ExitType", "cgroup")  // the old process may exit first
	f(balancer, "Service.ExecStart", "/usr/bin/ipfix-balancer -config /etc/ipfix-balancer/balancer.toml")
	f(balancer, "Service.ExecReload", "/bin/kill -HUP $MAINPID")
	f(balancer, "Service.KillSignal", "SIGTERM")
	f(balancer, "Service.LimitNOFILE", "1048576")
	f(balancer, "Service.RuntimeDirectory", "ipfix-balancer")
	f(loader, "Service.Type", "simple")
	f(loader, "Service.ExecStart", "/usr/bin/ipfix-loader -config /etc/ipfix-balancer/balancer.toml")
	f(loader, "Service.RuntimeDirectory") // /run/ipfix-balancer is the balancer's

	// The packaged control socket is in the RuntimeDirectory.
	cfg, err := config.Load(filepath.Join(root, "etc/ipfix-balancer/balancer.toml"))
	require.NoError(t, err)
	assert.Equal(t, "/run/ipfix-balancer/control.sock", cfg.ControlSocket)
}

// TestUnitsVerify runs systemd-analyze verify on the installed units. It needs
// no running systemd: --root points it at the scratch root, which gets the
// host's own units (for the targets ours refer to) and /bin/kill (ExecReload).
func TestUnitsVerify(t *testing.T) {
	requireTool(t, "systemd-analyze")
	root := extractDeb(t)
	units := filepath.Join(root, "usr/lib/systemd/system")
	hostUnits := ""
	for _, dir := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(dir, "multi-user.target")); err == nil {
			hostUnits = dir
			break
		}
	}
	require.NotEmpty(t, hostUnits, "no systemd unit directory with multi-user.target on this host")
	copyMissing(t, hostUnits, units)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	kill, err := exec.LookPath("kill")
	require.NoError(t, err)
	if _, err := os.Stat("/bin/kill"); err == nil {
		kill = "/bin/kill"
	}
	run(t, "cp", kill, filepath.Join(root, "bin/kill"))

	verify := func(units ...string) (string, error) {
		args := append([]string{"verify", "--root=" + root}, units...)
		cmd := exec.Command("systemd-analyze", args...)
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// verify exits 0 even for an unknown or misspelt directive; it only warns.
	// So any output is a failure, and a unit with a typo proves we see it.
	out, err := verify("/usr/lib/systemd/system/ipfix-balancer.service", "/usr/lib/systemd/system/ipfix-loader.service")
	assert.NoError(t, err, out)
	assert.Empty(t, out, "systemd-analyze verify")

	bad := strings.Replace(readFile(t, filepath.Join(units, "ipfix-balancer.service")), "LimitNOFILE=", "LimitNOFIEL=", 1)
	require.NoError(t, os.WriteFile(filepath.Join(units, "typo-test.service"), []byte(bad), 0o644))
	out, _ = verify("/usr/lib/systemd/system/typo-test.service")
	assert.Contains(t, out, "LimitNOFIEL", "verify must report a misspelt directive")
}

// copyMissing copies the tree src into dst, keeping what dst already has and
// copying symbolic links as links.
func copyMissing(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if _, err := os.Lstat(to); err == nil {
			return nil
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
		return nil
	})
	require.NoError(t, err)
}

// TestPackagedConfig checks that the installed config is the embedded default
// but for the directories, so the two cannot drift apart.
func TestPackagedConfig(t *testing.T) {
	root := extractDeb(t)
	path := filepath.Join(root, "etc/ipfix-balancer/balancer.toml")
	got, err := config.Load(path)
	require.NoError(t, err)
	for i := range got.Receivers {
		assert.Equal(t, "/var/lib/ipfix-balancer/dump", got.Receivers[i].Recording.Dir, got.Receivers[i].Name())
		got.Receivers[i].Recording.Dir = "dump"
		assert.Equal(t, "/var/lib/ipfix-balancer/spool", got.Receivers[i].Spool.Dir, got.Receivers[i].Name())
		got.Receivers[i].Spool.Dir = "spool"
	}
	assert.Equal(t, "/var/lib/ipfix-balancer/dump", got.Loader.Dir)
	got.Loader.Dir = "dump"
	assert.Equal(t, config.Default(), got, "packaged config vs config/default.toml (-got, +want)")

	out, err := exec.Command(filepath.Join(root, "usr/bin/ipfix-balancer"), "-check-config", "-config", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "configuration ok: 3 receivers\n", string(out))
}

// localConfig is the installed config with only its ports and directories moved
// (testenv.ShippedConfig): metrics and the hand-over stay on, as installed.
func localConfig(t testing.TB, root string) (path, fullflow string) {
	t.Helper()
	s := testenv.ShippedConfig(t, filepath.Join(root, "etc/ipfix-balancer/balancer.toml"))
	require.NotEmpty(t, s.Metrics)
	require.NotEmpty(t, s.ControlSocket)
	return s.Path, s.Receivers["fullflow/0"]
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// waitListening waits until addr accepts a connection and returns it.
func waitListening(t testing.TB, addr string, alive func() error) net.Conn {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c
		}
		if err := alive(); err != nil {
			t.Fatalf("waiting for %s: %v", addr, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept connections after 15s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestInstalledBalancerRuns starts the installed binary on the installed config
// (moved to free ports and a temporary dump dir), then stops it with SIGTERM.
func TestInstalledBalancerRuns(t *testing.T) {
	root := extractDeb(t)
	dir := t.TempDir()
	cfg, fullflow := localConfig(t, root)

	var logs bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "usr/bin/ipfix-balancer"), "-config", cfg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	var early error
	c := waitListening(t, fullflow, func() error {
		select {
		case early = <-exited:
			exited <- early
			return fmt.Errorf("ipfix-balancer exited: %v\n%s", early, logs.String())
		default:
			return nil
		}
	})
	_ = c.Close()
	time.Sleep(time.Second) // running, as under systemd, for a moment

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		exited <- err
		assert.NoError(t, err, "exit status after SIGTERM\n%s", logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit 20s after SIGTERM\n%s", logs.String())
	}
	for _, stream := range []string{"fullflow", "clickstream", "dnsflow"} {
		assert.Contains(t, logs.String(), stream)
	}
}

// balancerPids returns the processes running the executable bin (by
// /proc/PID/exe, as pidof does), zombies excluded.
func balancerPids(bin string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || strings.TrimSuffix(exe, " (deleted)") != bin {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// TestWrappersWithoutSystemd runs ipfix-balancer-restart, -reload and -stop as
// installed, on their path without systemd (their systemd path is the same
// signals sent through systemctl): start, reload, refuse a bad config, restart
// by hand-over with an exporter connected, stop.
func TestWrappersWithoutSystemd(t *testing.T) {
	requireTool(t, "pidof")
	requireTool(t, "setsid")
	root := extractDeb(t)
	dir := t.TempDir()
	cfg, fullflow := localConfig(t, root)
	bin := filepath.Join(root, "usr/bin/ipfix-balancer")
	logFile := filepath.Join(dir, "balancer.log")
	// Processes of this test's own copy of the binary (a unique path) are ours
	// to kill; the wrappers find theirs the same way.
	t.Cleanup(func() {
		for _, pid := range balancerPids(bin) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	env := wrapperEnv(bin, cfg, logFile, dir)
	wrapper := func(name string, extraEnv ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(filepath.Join(root, "usr/bin", name))
		cmd.Env = append(env, extraEnv...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	balancerLog := func() string {
		b, _ := os.ReadFile(logFile)
		return string(b)
	}
	onePid := func() int {
		t.Helper()
		pids := balancerPids(bin)
		require.Len(t, pids, 1, "balancers running\n%s", balancerLog())
		return pids[0]
	}

	out, err := wrapper("ipfix-balancer-stop")
	require.NoError(t, err, out)
	assert.Contains(t, out, "not running")
	out, err = wrapper("ipfix-balancer-reload")
	assert.Error(t, err, "reload with nothing running")
	assert.Contains(t, out, "not running")

	// restart with nothing running starts one.
	out, err = wrapper("ipfix-balancer-restart")
	require.NoError(t, err, "%s\n%s", out, balancerLog())
	first := onePid()
	alive := func() error {
		if len(balancerPids(bin)) == 0 {
			return errors.New("no balancer running\n" + balancerLog())
		}
		return nil
	}
	exporter := waitListening(t, fullflow, alive)
	defer exporter.Close()

	out, err = wrapper("ipfix-balancer-reload")
	require.NoError(t, err, out)
	assert.Contains(t, out, "sent SIGHUP to "+strconv.Itoa(first))
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, first, onePid(), "reload keeps the process")

	// A bad config changes nothing, for reload and restart alike.
	bad := filepath.Join(dir, "bad.toml")
	require.NoError(t, os.WriteFile(bad, []byte(readFile(t, cfg)+"\nno_such_key = 1\n"), 0o640))
	for _, w := range []string{"ipfix-balancer-reload", "ipfix-balancer-restart"} {
		out, err = wrapper(w, "IPFIX_BALANCER_CONFIG="+bad)
		assert.Error(t, err, w)
		assert.Contains(t, out, "not valid; nothing changed", w)
		assert.Contains(t, out, "no_such_key", w)
	}
	assert.Equal(t, first, onePid(), "a bad config leaves the balancer running")

	// restart hands the exporter's connection over to a new process.
	out, err = wrapper("ipfix-balancer-restart")
	require.NoError(t, err, "%s\n%s", out, balancerLog())
	second := onePid()
	assert.NotEqual(t, first, second)
	assert.Contains(t, out, fmt.Sprintf("restarted: %d -> %d", first, second))
	assertOpen(t, exporter)

	out, err = wrapper("ipfix-balancer-stop")
	require.NoError(t, err, out)
	assert.Contains(t, out, "stopped "+strconv.Itoa(second))
	assert.Empty(t, balancerPids(bin))
	assertClosed(t, exporter)

	// --if-running (upgrades) starts nothing.
	cmd := exec.Command(filepath.Join(root, "usr/bin/ipfix-balancer-restart"), "--if-running")
	cmd.Env = env
	out2, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out2)
	assert.Empty(t, balancerPids(bin))
}

// wrapperEnv is the environment that points the installed wrappers at a test's
// own binary, config, log and directories, without systemd.
func wrapperEnv(bin, cfg, logFile, dir string) []string {
	return append(os.Environ(),
		"IPFIX_BALANCER_BIN="+bin,
		"IPFIX_BALANCER_CONFIG="+cfg,
		// A unit no systemd knows: these wrappers never touch a real service.
		"IPFIX_BALANCER_UNIT=ipfix-balancer-test-"+strconv.Itoa(os.Getpid())+".service",
		"IPFIX_BALANCER_USER=ipfix-balancer-test-nobody",
		"IPFIX_BALANCER_LOG="+logFile,
		"IPFIX_BALANCER_STATE_DIR="+dir,
		"IPFIX_BALANCER_RUNTIME_DIR="+filepath.Join(dir, "run"),
		"IPFIX_BALANCER_TIMEOUT=30",
	)
}

// assertOpen checks that the peer has not closed c: a read times out.
func assertOpen(t testing.TB, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	assert.True(t, errors.As(err, &ne) && ne.Timeout(), "exporter connection after restart: want a read timeout, got %v", err)
}

// assertClosed checks that the peer closed c.
func assertClosed(t testing.TB, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := c.Read(make([]byte, 1))
	assert.True(t, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET), "exporter connection after stop: want EOF, got %v", err)
}

// stubs is a directory of fake system commands (user creation, chown,
// systemctl, sysctl, the restart wrapper) that log their arguments, first in
// PATH when maintainer scripts run in a test, so they change nothing on the host.
type stubs struct{ dir, log string }

// newStubs makes the stubs. userExists: getent finds the user. restartFails:
// ipfix-balancer-restart fails as for a config the new version refuses.
func newStubs(t testing.TB, userExists, restartFails bool) stubs {
	t.Helper()
	s := stubs{dir: t.TempDir()}
	s.log = filepath.Join(s.dir, "calls.log")
	stub := func(cmd, body string) {
		text := "#!/bin/sh\necho \"" + cmd + " $*\" >>" + s.log + "\n" + body + "\n"
		require.NoError(t, os.WriteFile(filepath.Join(s.dir, cmd), []byte(text), 0o755))
	}
	getent := "exit 2"
	if userExists {
		getent = "echo ipfix-balancer:x:999:999::/var/lib/ipfix-balancer:/usr/sbin/nologin"
	}
	stub("getent", getent)
	for _, cmd := range []string{"groupadd", "useradd", "userdel", "groupdel", "chown", "systemctl", "sysctl", "ipfix-balancer-stop"} {
		stub(cmd, "exit 0")
	}
	restart := "exit 0"
	if restartFails {
		restart = "echo 'config is not valid' >&2; exit 1"
	}
	stub("ipfix-balancer-restart", restart)
	return s
}

// path is a PATH with the stubs first.
func (s stubs) path() string { return s.dir + ":/usr/sbin:/usr/bin:/sbin:/bin" }

// calls returns the logged calls since the last one, root written as $ROOT.
func (s stubs) calls(t testing.TB, root string) []string {
	t.Helper()
	b, err := os.ReadFile(s.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	require.NoError(t, os.Remove(s.log))
	var calls []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		calls = append(calls, strings.ReplaceAll(sc.Text(), root, "$ROOT"))
	}
	return calls
}

// TestDebLifecycle installs, upgrades, removes and purges the .deb with dpkg
// itself, into a scratch root (dpkg --root; the maintainer scripts run outside
// it with DPKG_ROOT set, as for bootstrapping a system) that has a live systemd,
// with the system commands stubbed.
func TestDebLifecycle(t *testing.T) {
	requireTool(t, "dpkg")
	deb, _ := packages(t)
	// The upgrade: the same content under a higher version.
	deb2, err := runBuild(repoRoot(t), "deb", "VERSION=v99.0.0", "BIN="+filepath.Join(workDir, "bin"), "DIST="+t.TempDir())
	require.NoError(t, err)

	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "run/systemd/system"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		require.NoError(t, os.WriteFile(filepath.Join(root, f), nil, 0o644))
	}
	s := newStubs(t, false, false)
	dpkg := func(args ...string) []string {
		t.Helper()
		cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless",
			"--force-depends", "--force-not-root", "--force-confold"}, args...)...)
		cmd.Env = append(os.Environ(), "PATH="+s.path())
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "dpkg %v:\n%s", args, out)
		return s.calls(t, root)
	}
	exists := func(path string) bool {
		_, err := os.Lstat(filepath.Join(root, path))
		return err == nil
	}
	config := filepath.Join(root, "etc/ipfix-balancer/balancer.toml")

	calls := dpkg("--install", deb)
	assert.Equal(t, []string{
		"getent group ipfix-balancer",
		"groupadd --system ipfix-balancer",
		"getent passwd ipfix-balancer",
		"useradd --system --gid ipfix-balancer --home-dir /var/lib/ipfix-balancer --no-create-home --shell /usr/sbin/nologin --comment IPFIX balancer ipfix-balancer",
		"chown ipfix-balancer:ipfix-balancer $ROOT/var/lib/ipfix-balancer $ROOT/var/lib/ipfix-balancer/dump",
		"chown root:ipfix-balancer $ROOT/etc/ipfix-balancer/balancer.toml",
		"systemctl daemon-reload",
	}, calls, "install: user, ownership, nothing started")
	for path := range want {
		assert.True(t, exists(path), path)
	}
	status := run(t, "dpkg", "--root="+root, "--status", "ipfix-balancer")
	assert.Regexp(t, `(?m)^Conffiles:\n /etc/ipfix-balancer/balancer.toml [0-9a-f]{32}$`, status)

	// The operator edits the config and drops a dump; the upgrade keeps both.
	edited := readFile(t, config) + "# edited by the operator\n"
	require.NoError(t, os.WriteFile(config, []byte(edited), 0o640))
	dump := filepath.Join(root, "var/lib/ipfix-balancer/dump/fullflow_0_20260101T000000.ipfix")
	require.NoError(t, os.WriteFile(dump, []byte("x"), 0o640))

	calls = dpkg("--install", deb2)
	assert.Equal(t, []string{
		"getent group ipfix-balancer",
		"groupadd --system ipfix-balancer", // the stub never finds it
		"getent passwd ipfix-balancer",
		"useradd --system --gid ipfix-balancer --home-dir /var/lib/ipfix-balancer --no-create-home --shell /usr/sbin/nologin --comment IPFIX balancer ipfix-balancer",
		"systemctl daemon-reload", // postrm upgrade of the old version
		"chown ipfix-balancer:ipfix-balancer $ROOT/var/lib/ipfix-balancer $ROOT/var/lib/ipfix-balancer/dump",
		"systemctl daemon-reload",
		"ipfix-balancer-restart --if-running",
		"systemctl try-restart ipfix-loader.service",
	}, calls, "upgrade: nothing stopped, the balancer restarted without loss")
	assert.Contains(t, run(t, "dpkg", "--root="+root, "--status", "ipfix-balancer"), "Version: 99.0.0-1\n")
	assert.Equal(t, edited, readFile(t, config), "upgrade keeps the edited config")
	assert.False(t, exists("etc/ipfix-balancer/balancer.toml.dpkg-dist"))
	assert.True(t, exists("var/lib/ipfix-balancer/dump/fullflow_0_20260101T000000.ipfix"))

	calls = dpkg("--remove", "ipfix-balancer")
	assert.Equal(t, []string{
		"systemctl --no-reload disable --now ipfix-loader.service ipfix-balancer.service",
		"systemctl daemon-reload",
	}, calls, "remove: services stopped and disabled")
	assert.False(t, exists("usr/bin/ipfix-balancer"))
	assert.False(t, exists("usr/lib/systemd/system/ipfix-balancer.service"))
	assert.Equal(t, edited, readFile(t, config), "remove keeps the config")
	assert.True(t, exists("var/lib/ipfix-balancer/dump/fullflow_0_20260101T000000.ipfix"), "remove keeps the dumps")

	calls = dpkg("--purge", "ipfix-balancer")
	assert.Equal(t, []string{"systemctl daemon-reload"}, calls, "purge: the user stays")
	assert.False(t, exists("etc/ipfix-balancer/balancer.toml"))
	assert.True(t, exists("var/lib/ipfix-balancer/dump/fullflow_0_20260101T000000.ipfix"), "purge keeps the dumps")
}

// TestMaintainerScripts runs the scripts of the .deb (the RPM holds the same,
// TestRPMContents checks) one by one against a scratch root (DPKG_ROOT), with
// the system commands stubbed: the cases dpkg does not produce, RPM's
// arguments (1 install, 2 upgrade, 0 erase) among them.
func TestMaintainerScripts(t *testing.T) {
	requireTool(t, "dpkg-deb")
	deb, _ := packages(t)
	ctl := t.TempDir()
	run(t, "dpkg-deb", "--control", deb, ctl)

	type result struct {
		calls  []string // stub calls, "name args"
		stderr string
		root   string
	}
	// script runs one maintainer script. systemd: the root has a live systemd.
	// userExists: getent finds the user. restartFails: the wrapper fails.
	script := func(t *testing.T, name string, systemd, userExists, restartFails bool, args ...string) result {
		t.Helper()
		root := extractDeb(t)
		if systemd {
			require.NoError(t, os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755))
		}
		s := newStubs(t, userExists, restartFails)
		cmd := exec.Command("/bin/sh", append([]string{filepath.Join(ctl, name)}, args...)...)
		cmd.Env = append(os.Environ(), "DPKG_ROOT="+root, "PATH="+s.path())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "%s %v: %s%s", name, args, out, stderr.String())
		return result{calls: s.calls(t, root), stderr: stderr.String(), root: root}
	}
	assertDirs := func(t *testing.T, root string) {
		t.Helper()
		for _, d := range []string{"var/lib/ipfix-balancer", "var/lib/ipfix-balancer/dump"} {
			fi, err := os.Stat(filepath.Join(root, d))
			if assert.NoError(t, err) {
				assert.Equal(t, os.ModeDir|0o750, fi.Mode(), d)
			}
		}
	}
	chownDirs := "chown ipfix-balancer:ipfix-balancer $ROOT/var/lib/ipfix-balancer $ROOT/var/lib/ipfix-balancer/dump"
	chownConfig := "chown root:ipfix-balancer $ROOT/etc/ipfix-balancer/balancer.toml"

	t.Run("preinst creates the user", func(t *testing.T) {
		r := script(t, "preinst", false, false, false, "install")
		assert.Equal(t, []string{
			"getent group ipfix-balancer",
			"groupadd --system ipfix-balancer",
			"getent passwd ipfix-balancer",
			"useradd --system --gid ipfix-balancer --home-dir /var/lib/ipfix-balancer --no-create-home --shell /usr/sbin/nologin --comment IPFIX balancer ipfix-balancer",
		}, r.calls)
	})
	t.Run("preinst keeps an existing user", func(t *testing.T) {
		r := script(t, "preinst", false, true, false, "upgrade", "0.9-1")
		assert.Equal(t, []string{"getent group ipfix-balancer", "getent passwd ipfix-balancer"}, r.calls)
	})
	for _, args := range [][]string{{"configure", ""}, {"1"}} {
		t.Run(fmt.Sprintf("postinst first install %q", args), func(t *testing.T) {
			r := script(t, "postinst", true, true, false, args...)
			assert.Equal(t, []string{chownDirs, chownConfig, "systemctl daemon-reload"}, r.calls, "nothing started")
			assertDirs(t, r.root)
		})
	}
	for _, args := range [][]string{{"configure", "0.9-1"}, {"2"}} {
		t.Run(fmt.Sprintf("postinst upgrade %q", args), func(t *testing.T) {
			r := script(t, "postinst", true, true, false, args...)
			assert.Equal(t, []string{
				chownDirs,
				"systemctl daemon-reload",
				"ipfix-balancer-restart --if-running",
				"systemctl try-restart ipfix-loader.service",
			}, r.calls, "config ownership kept, balancer restarted without loss")
			assertDirs(t, r.root)
		})
	}
	t.Run("postinst upgrade with a config the new version refuses", func(t *testing.T) {
		r := script(t, "postinst", true, true, true, "configure", "0.9-1")
		assert.Contains(t, r.calls, "ipfix-balancer-restart --if-running")
		assert.Contains(t, r.stderr, "not restarted, the previous version keeps running")
	})
	t.Run("postinst into a root without systemd", func(t *testing.T) {
		r := script(t, "postinst", false, true, false, "configure", "0.9-1")
		assert.Equal(t, []string{chownDirs}, r.calls, "no service of the host is touched")
	})
	t.Run("postinst abort-upgrade", func(t *testing.T) {
		r := script(t, "postinst", true, true, false, "abort-upgrade", "1.0-1")
		assert.Empty(t, r.calls)
	})
	for _, arg := range []string{"remove", "0"} {
		t.Run("prerm "+arg, func(t *testing.T) {
			r := script(t, "prerm", true, true, false, arg)
			assert.Equal(t, []string{"systemctl --no-reload disable --now ipfix-loader.service ipfix-balancer.service"}, r.calls)
		})
	}
	for _, arg := range []string{"upgrade", "1"} {
		t.Run("prerm "+arg, func(t *testing.T) {
			r := script(t, "prerm", true, true, false, arg, "1.0-1")
			assert.Empty(t, r.calls, "an upgrade stops nothing")
		})
	}
	t.Run("postrm", func(t *testing.T) {
		r := script(t, "postrm", true, true, false, "purge")
		assert.Equal(t, []string{"systemctl daemon-reload"}, r.calls, "user and dumps are kept")
	})
}
