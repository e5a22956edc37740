package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Source is what the console shows: *balancer.Balancer.
type Source interface {
	Status() balancer.Status
}

var _ Source = (*balancer.Balancer)(nil)

// Options are the console's dependencies.
type Options struct {
	// ConfigPath is the configuration file the editor changes; "" (the
	// embedded default runs) makes the editor read-only.
	ConfigPath string
	// Reload applies ConfigPath as SIGHUP does; the editor calls it after
	// writing the file.
	Reload func() error
	// Logs is the ring the logs page shows (nil: no logs page).
	Logs *LogRing
	// Logger receives the console's own lines (changes and who made them).
	Logger *slog.Logger
	// Loopback says the listener accepts loopback connections only: the
	// read-only pages are then open without login.
	Loopback bool
	// SampleEvery is the sampling period of the plots (default 5s); the
	// samples cover the last hour.
	SampleEvery time.Duration
	// Version is shown in the page footer.
	Version string
}

// sampleWindow is how far back the plots go.
const sampleWindow = time.Hour

// sessionLifetime bounds an operator's login.
const sessionLifetime = 12 * time.Hour

// cookieName is the session cookie.
const cookieName = "ipfix_console"

// Console serves the web console. New is inert; Run samples until its
// context ends; Handler serves the pages.
type Console struct {
	src     Source
	opts    Options
	log     *slog.Logger
	samples *samples
	set     *metrics.Set
	m       *consoleMetrics
	pages   map[string]*template.Template
	static  http.Handler

	mu       sync.Mutex
	sessions map[string]*operatorSession // by cookie value
	applyMu  sync.Mutex                  // one configuration change at a time
}

// operatorSession is a logged-in operator.
type operatorSession struct {
	operator string
	token    [32]byte // the token's hash, as configured at login
	csrf     string
	expires  time.Time
}

// New checks opts and parses the embedded templates.
func New(src Source, opts Options) (*Console, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = 5 * time.Second
	}
	c := &Console{
		src:      src,
		opts:     opts,
		log:      opts.Logger.With("component", "console"),
		samples:  newSamples(opts.SampleEvery, sampleWindow),
		pages:    make(map[string]*template.Template),
		sessions: make(map[string]*operatorSession),
		set:      metrics.NewSet(),
	}
	c.m = newConsoleMetrics(c.set)
	for _, page := range []string{"overview", "plots", "logs", "receivers", "edit", "diff", "login", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", page, err)
		}
		c.pages[page] = t
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix("/static/", http.FileServerFS(static))
	return c, nil
}

// Run samples the balancer every SampleEvery until ctx ends; the console's
// metrics are registered meanwhile.
func (c *Console) Run(ctx context.Context) error {
	metrics.RegisterSet(c.set)
	defer metrics.UnregisterSet(c.set, false)
	c.samples.run(ctx, c.src)
	return nil
}

// Metrics is the console's own metric set (registered while Run runs).
func (c *Console) Metrics() *metrics.Set { return c.set }

// Handler serves the console's pages; mount it at "/".
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", c.static)
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.logout)
	mux.Handle("GET /{$}", c.read(c.overview))
	mux.Handle("GET /plots", c.read(c.plots))
	mux.Handle("GET /plot.svg", c.read(c.plotSVG))
	mux.Handle("GET /logs", c.read(c.logsPage))
	mux.Handle("GET /logs.json", c.read(c.logsJSON))
	mux.Handle("GET /receivers", c.read(c.receivers))
	mux.Handle("GET /receivers/edit", c.read(c.editForm))
	mux.Handle("POST /receivers/check", c.change(c.check))
	mux.Handle("POST /receivers/apply", c.change(c.apply))
	return securityHeaders(mux)
}

// securityHeaders keeps the pages out of frames and other hosts' scripts.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// status is the balancer's state as last sampled: pages never ask the event
// loops themselves, so that however many browsers refresh, the loops run one
// short task per receiver per SampleEvery.
func (c *Console) status() balancer.Status {
	if st := c.samples.status(); st != nil {
		return *st
	}
	st := c.src.Status() // before the first sample (Run starts with one)
	return st
}

// maxSessions bounds the logged-in sessions kept.
const maxSessions = 1000

// session returns the logged-in operator of r, or nil.
func (c *Console) session(r *http.Request) *operatorSession {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[ck.Value]
	if s == nil {
		return nil
	}
	if time.Now().After(s.expires) || !c.stillOperator(s) {
		delete(c.sessions, ck.Value)
		return nil
	}
	return s
}

// stillOperator reports whether the running configuration still has s's
// operator with the same token: removing an operator (and reloading) ends
// their sessions.
func (c *Console) stillOperator(s *operatorSession) bool {
	cfg := c.status().Config.Console
	for i := range cfg.Operators {
		if name, sum, err := cfg.Operator(i); err == nil && name == s.operator && sum == s.token {
			return true
		}
	}
	return false
}

// read guards a read-only page: open on loopback, an operator beyond.
func (c *Console) read(h func(http.ResponseWriter, *http.Request, *operatorSession)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.session(r)
		if s == nil && !c.opts.Loopback {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, s)
	})
}

// change guards a POST that changes something: a logged-in operator, the
// session's CSRF token, and a same-origin request.
func (c *Console) change(h func(http.ResponseWriter, *http.Request, *operatorSession)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := sameOrigin(r); err != nil {
			c.m.refused[refusedCrossSite].Inc()
			c.log.Warn("console request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
			c.fail(w, r, nil, http.StatusForbidden, err.Error())
			return
		}
		s := c.session(r)
		if s == nil {
			c.m.refused[refusedUnauthenticated].Inc()
			c.log.Warn("console change refused: no operator logged in", "remote", r.RemoteAddr, "path", r.URL.Path)
			c.fail(w, r, nil, http.StatusUnauthorized, "a change needs an operator: log in first")
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
			c.m.refused[refusedCSRF].Inc()
			c.log.Warn("console change refused: bad csrf token", "remote", r.RemoteAddr, "operator", s.operator, "path", r.URL.Path)
			c.fail(w, r, s, http.StatusForbidden, "the form is stale or came from another site: reload the page and try again")
			return
		}
		h(w, r, s)
	})
}

// sameOrigin refuses cross-site requests: by Sec-Fetch-Site, else by Origin.
func sameOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return fmt.Errorf("cross-site request refused (Sec-Fetch-Site: %s)", r.Header.Get("Sec-Fetch-Site"))
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("cross-site request refused (Origin %q is not %q)", o, r.Host)
		}
	}
	return nil
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "login", nil, http.StatusOK, map[string]any{"Next": safeNext(r.URL.Query().Get("next")), "Operators": len(c.status().Config.Console.Operators)})
}

// login checks a token against [console] operators (SHA-256, constant time,
// every operator compared) and opens a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin(r); err != nil {
		c.m.refused[refusedCrossSite].Inc()
		c.log.Warn("console request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
		c.fail(w, r, nil, http.StatusForbidden, err.Error())
		return
	}
	sum := sha256.Sum256([]byte(r.PostFormValue("token")))
	cfg := c.status().Config.Console
	name := ""
	for i := range cfg.Operators {
		n, h, err := cfg.Operator(i)
		if err == nil && subtle.ConstantTimeCompare(sum[:], h[:]) == 1 {
			name = n
		}
	}
	if name == "" {
		// Slows down guessing (the token's entropy is what protects).
		time.Sleep(500 * time.Millisecond)
	}
	next := safeNext(r.PostFormValue("next"))
	if name == "" {
		c.m.refused[refusedLogin].Inc()
		c.log.Warn("console login refused", "remote", r.RemoteAddr)
		c.render(w, r, "login", nil, http.StatusUnauthorized, map[string]any{"Next": next, "Error": "unknown token", "Operators": len(cfg.Operators)})
		return
	}
	id, csrf := randomHex(), randomHex()
	c.mu.Lock()
	now := time.Now()
	for k, s := range c.sessions {
		if now.After(s.expires) {
			delete(c.sessions, k)
		}
	}
	if len(c.sessions) >= maxSessions {
		// The oldest goes.
		oldest := ""
		for k, s := range c.sessions {
			if oldest == "" || s.expires.Before(c.sessions[oldest].expires) {
				oldest = k
			}
		}
		delete(c.sessions, oldest)
	}
	c.sessions[id] = &operatorSession{operator: name, token: sum, csrf: csrf, expires: now.Add(sessionLifetime)}
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: int(sessionLifetime.Seconds())})
	c.log.Info("console login", "operator", name, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin(r); err != nil {
		c.fail(w, r, nil, http.StatusForbidden, err.Error())
		return
	}
	if ck, err := r.Cookie(cookieName); err == nil {
		c.mu.Lock()
		delete(c.sessions, ck.Value)
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// safeNext keeps a redirect target on this site.
func safeNext(next string) string {
	if len(next) == 0 || next[0] != '/' || (len(next) > 1 && (next[1] == '/' || next[1] == '\\')) {
		return "/"
	}
	return next
}

func randomHex() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("BUG: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// page is what every template gets.
type page struct {
	Title    string
	Path     string
	Operator string
	CSRF     string
	Editable bool // an operator is logged in and there is a file to edit
	Version  string
	Now      time.Time
	Data     any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, name string, s *operatorSession, code int, data any) {
	p := page{Title: name, Path: r.URL.Path, Version: c.opts.Version, Now: time.Now(), Data: data}
	if s != nil {
		p.Operator, p.CSRF = s.operator, s.csrf
		p.Editable = c.opts.ConfigPath != ""
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if err := c.pages[name].Execute(w, p); err != nil && !errors.Is(err, net.ErrClosed) {
		c.log.Warn("console page", "page", name, "err", err)
	}
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *operatorSession, code int, msg string) {
	c.render(w, r, "error", s, code, map[string]any{"Code": code, "Message": msg})
}
