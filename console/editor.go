package console

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/atomicfile"
)

// receiverForm holds the legacy GUI's receiver fields as the operator typed
// them.
type receiverForm struct {
	Action           string // "edit", "add" or "remove"
	Orig             string // the receiver's name before the change ("" for add)
	Base             string // SHA-256 of the file the change was made against
	Stream           string // "Receiver type"
	Proto            string // "Port type"
	Host             string // listen address (the legacy GUI has the port only)
	Port             string
	RotateMinutes    string
	RotateSeconds    string
	RotateFlows      string
	Export           string
	DPI              string
	Mode             string // "Balancer": RoundRobin, All or Disabled
	Subreceivers     string
	SubreceiverProto string
	Auto             string // "Balancer auto": Enabled or Disabled (balancer_auto)
	CPU              string
	Dir              string
}

// formFields are the names of the form's inputs, in order.
var formFields = []string{"stream", "proto", "host", "port", "rotate_minutes", "rotate_seconds", "rotate_flows",
	"export", "dpi", "mode", "subreceivers", "subreceiver_proto", "auto", "cpu", "dir"}

func (f *receiverForm) ptr(name string) *string {
	switch name {
	case "stream":
		return &f.Stream
	case "proto":
		return &f.Proto
	case "host":
		return &f.Host
	case "port":
		return &f.Port
	case "rotate_minutes":
		return &f.RotateMinutes
	case "rotate_seconds":
		return &f.RotateSeconds
	case "rotate_flows":
		return &f.RotateFlows
	case "export":
		return &f.Export
	case "dpi":
		return &f.DPI
	case "mode":
		return &f.Mode
	case "subreceivers":
		return &f.Subreceivers
	case "subreceiver_proto":
		return &f.SubreceiverProto
	case "auto":
		return &f.Auto
	case "cpu":
		return &f.CPU
	case "dir":
		return &f.Dir
	}
	panic("BUG: unknown form field " + name)
}

// Value is the field name's value (for the templates).
func (f receiverForm) Value(name string) string { return *f.ptr(name) }

func formFromRequest(r *http.Request) receiverForm {
	f := receiverForm{Action: r.PostFormValue("action"), Orig: r.PostFormValue("orig"), Base: r.PostFormValue("base")}
	for _, name := range formFields {
		*f.ptr(name) = strings.TrimSpace(r.PostFormValue(name))
	}
	return f
}

// formFromReceiver fills the form with a receiver of the file.
func formFromReceiver(rc config.Receiver) receiverForm {
	f := receiverForm{Action: "edit", Orig: rc.Name(), Stream: rc.Stream, Proto: rc.Proto.String(),
		Host: rc.Listen.Addr().String(), Port: strconv.Itoa(int(rc.Listen.Port())),
		DPI: strconv.Itoa(rc.DPI), Mode: rc.Mode.String(), SubreceiverProto: rc.SubreceiverProto.String(),
		Subreceivers: formatSubs(rc.Subreceivers, rc.SubreceiverProto), Export: formatSubs(rc.Recording.Export, config.TCP),
		Auto: "Disabled", Dir: rc.Recording.Dir}
	if rc.BalancerAuto {
		f.Auto = "Enabled"
	}
	if rc.Mode == config.Recording {
		f.Mode = "Disabled" // the legacy GUI's word
	}
	if len(rc.CPU) > 0 {
		f.CPU = rc.CPU.String()
	}
	f.RotateMinutes = strconv.Itoa(int(rc.Recording.RotateEvery / time.Minute))
	f.RotateSeconds = strconv.Itoa(int(rc.Recording.RotateEvery % time.Minute / time.Second))
	f.RotateFlows = strconv.FormatInt(rc.Recording.RotateRecords, 10)
	return f
}

func formatSubs(subs []config.Subreceiver, proto config.Proto) string {
	list := make([]string, len(subs))
	for i, s := range subs {
		list[i] = s.Addr
		if s.Proto != proto {
			list[i] += "/" + s.Proto.String()
		}
	}
	return strings.Join(list, ", ")
}

// fieldErrors are the problems of a form: by field, and the others.
type fieldErrors struct {
	Fields  map[string]string
	General []string
}

func (e *fieldErrors) add(field, msg string) {
	if e.Fields == nil {
		e.Fields = map[string]string{}
	}
	if old, ok := e.Fields[field]; ok {
		msg = old + "; " + msg
	}
	e.Fields[field] = msg
}

func (e *fieldErrors) empty() bool { return len(e.Fields) == 0 && len(e.General) == 0 }

var numberRE = regexp.MustCompile(`^[0-9]+$`)

// edits turns the form into key edits, checking what only the form knows
// (numbers); config checks the rest.
func (f *receiverForm) edits(errs *fieldErrors) (main, rec []keyEdit) {
	num := func(field, s string, limit int64) int64 {
		if s == "" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if !numberRE.MatchString(s) || err != nil || n > limit {
			errs.add(field, fmt.Sprintf("%q: want a whole number 0..%d", s, limit))
			return 0
		}
		return n
	}
	str := func(s string) *string { return &s }
	dpi := num("dpi", f.DPI, 65535)
	port := num("port", f.Port, 65535)
	if f.Port == "" {
		errs.add("port", "missing")
	}
	host := f.Host
	if host == "" {
		host = "0.0.0.0"
	}
	addr, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		errs.add("host", fmt.Sprintf("%q: want an IP address (0.0.0.0 for all)", f.Host))
	}
	listen := netip.AddrPortFrom(addr, uint16(port)).String()
	minutes := num("rotate_minutes", f.RotateMinutes, 1<<20)
	seconds := num("rotate_seconds", f.RotateSeconds, 1<<20)
	flows := num("rotate_flows", f.RotateFlows, 1<<62)
	mode := f.Mode
	switch mode {
	case "RoundRobin", "All":
	case "Disabled", "Recording":
		mode = "Recording"
	default:
		errs.add("mode", fmt.Sprintf("%q: want RoundRobin, All or Disabled (recording)", f.Mode))
	}
	var auto *string
	switch f.Auto {
	case "", "Disabled":
	case "Enabled":
		auto = str("true")
	default:
		errs.add("auto", fmt.Sprintf("%q: want Enabled or Disabled", f.Auto))
	}
	main = []keyEdit{
		{Key: "stream", Value: str(tomlString(f.Stream))},
		// A receiver's dpi defaults to its position among its stream's: the
		// console spells it out, so that no edit renames another receiver.
		{Key: "dpi", Value: str(strconv.FormatInt(dpi, 10)), Always: true},
		{Key: "listen", Value: str(tomlString(listen))},
		{Key: "proto", Value: str(tomlString(f.Proto)), Keep: `"tcp"`},
		{Key: "mode", Value: str(tomlString(mode))},
		{Key: "subreceivers", Value: list(f.Subreceivers)},
		{Key: "subreceiver_proto", Value: str(tomlString(f.SubreceiverProto)), Keep: `"tcp"`},
		{Key: "cpu", Value: cpuValue(f.CPU)},
		{Key: "balancer_auto", Value: auto},
	}
	if f.SubreceiverProto == "" {
		main[6].Value = nil
	}
	rotate := time.Duration(minutes)*time.Minute + time.Duration(seconds)*time.Second
	var every, records *string
	switch {
	case rotate <= 0:
	case rotate%time.Minute == 0:
		every = str(tomlString(strconv.FormatInt(int64(rotate/time.Minute), 10) + "m"))
	case rotate < time.Minute:
		every = str(tomlString(strconv.FormatInt(int64(rotate/time.Second), 10) + "s"))
	default:
		every = str(tomlString(strconv.FormatInt(int64(rotate/time.Minute), 10) + "m" +
			strconv.FormatInt(int64(rotate%time.Minute/time.Second), 10) + "s"))
	}
	if flows > 0 {
		records = str(strconv.FormatInt(flows, 10))
	}
	var dir *string
	if f.Dir != "" {
		dir = str(tomlString(f.Dir))
	}
	rec = []keyEdit{
		{Key: "dir", Value: dir},
		{Key: "rotate_every", Value: every},
		{Key: "rotate_records", Value: records},
		{Key: "export", Value: list(f.Export)},
	}
	return main, rec
}

// changedEdits drops the edits whose value is the original's.
func changedEdits(edits, orig []keyEdit) []keyEdit {
	var out []keyEdit
	for i, e := range edits {
		o := orig[i]
		if e.Always {
			out = append(out, e)
			continue
		}
		if (e.Value == nil && o.Value == nil) || (e.Value != nil && o.Value != nil && *e.Value == *o.Value) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// list is a comma-separated form field as a TOML array; nil when empty.
func list(s string) *string {
	var items []string
	for _, it := range strings.Split(s, ",") {
		if it = strings.TrimSpace(it); it != "" {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return nil
	}
	v := tomlStrings(items)
	return &v
}

func cpuValue(s string) *string {
	if s == "" {
		return nil
	}
	if numberRE.MatchString(s) {
		return &s
	}
	v := tomlString(s)
	return &v
}

// proposal is a checked change of the configuration file.
type proposal struct {
	Form   receiverForm
	Errors fieldErrors
	Old    []byte
	New    []byte
	Diff   []diffLine
	Name   string // the receiver changed, as it will be named
	// Warnings say what the DPI will notice (a receiver restarted or removed).
	Warnings []string
}

// propose applies the form to the file's text and checks the result with
// package config; errors on the changed block's lines go next to their field.
func (c *Console) propose(f receiverForm) (*proposal, error) {
	old, err := os.ReadFile(c.opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	p := &proposal{Form: f, Old: old}
	sum := sha256.Sum256(old)
	if f.Base == "" {
		p.Form.Base = hex.EncodeToString(sum[:])
	} else if f.Base != hex.EncodeToString(sum[:]) {
		p.Errors.General = append(p.Errors.General, "the configuration file changed since this form was opened (by hand or by another operator): check the values and try again")
		p.Form.Base = hex.EncodeToString(sum[:])
		return p, nil
	}
	cur, err := config.Parse(old, c.opts.ConfigPath)
	if err != nil {
		p.Errors.General = append(p.Errors.General, "the configuration file does not load; fix it by hand first: "+err.Error())
		return p, nil
	}
	text := string(old)
	trailingNL := strings.HasSuffix(text, "\n")
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	blocks, err := receiverBlocks(lines)
	if err != nil {
		p.Errors.General = append(p.Errors.General, err.Error())
		return p, nil
	}
	if len(blocks) != len(cur.FileReceivers()) {
		p.Errors.General = append(p.Errors.General, errNotEditable.Error())
		return p, nil
	}
	idx := -1
	for i := range cur.FileReceivers() {
		if cur.FileReceivers()[i].Name() == f.Orig {
			idx = i
		}
	}
	if f.Action != "add" && idx < 0 {
		p.Errors.General = append(p.Errors.General, fmt.Sprintf("receiver %s is not in %s (any more)", f.Orig, c.opts.ConfigPath))
		return p, nil
	}
	var out []string
	var changed span // the new block's lines in out
	switch f.Action {
	case "remove":
		if len(cur.FileReceivers()) == 1 {
			p.Errors.General = append(p.Errors.General, "the last receiver cannot be removed (without receivers the default ones would run)")
			return p, nil
		}
		b := blocks[idx]
		start := b.start
		// Comment lines right above the header describe the receiver.
		for start > 0 && strings.HasPrefix(strings.TrimSpace(lines[start-1]), "#") {
			start--
		}
		end := b.end
		if end < len(lines) && strings.TrimSpace(lines[end]) == "" && (start == 0 || strings.TrimSpace(lines[start-1]) == "") {
			end++
		}
		out = append(append(out, lines[:start]...), lines[end:]...)
		p.Name = f.Orig
	case "add", "edit":
		main, rec := f.edits(&p.Errors)
		if !p.Errors.empty() {
			return p, nil
		}
		if f.Action == "edit" {
			// Only what the operator changed is written: a key the file
			// leaves to its default stays out of it.
			orig := formFromReceiver(cur.FileReceivers()[idx])
			var ignore fieldErrors
			om, or := orig.edits(&ignore)
			main, rec = changedEdits(main, om), changedEdits(rec, or)
		}
		var blk []string
		at, end := len(lines), len(lines)
		if f.Action == "edit" {
			at, end = blocks[idx].start, blocks[idx].end
			blk = lines[at:end]
		} else {
			blk = []string{"[[receiver]]"}
			if len(blocks) > 0 {
				at = blocks[len(blocks)-1].end
				end = at
			}
		}
		nb, err := editBlock(blk, main, rec)
		if err != nil {
			p.Errors.General = append(p.Errors.General, err.Error())
			return p, nil
		}
		if f.Action == "add" {
			nb = append([]string{""}, nb...)
		}
		out = append(append(append(out, lines[:at]...), nb...), lines[end:]...)
		changed = span{at, at + len(nb)}
	default:
		return nil, fmt.Errorf("unknown action %q", f.Action)
	}
	newText := strings.Join(out, "\n")
	if trailingNL {
		newText += "\n"
	}
	p.New = []byte(newText)
	p.Diff = diffLines(lines, out)
	next, err := config.Parse(p.New, c.opts.ConfigPath)
	if err != nil {
		mapErrors(&p.Errors, err, c.opts.ConfigPath)
		return p, nil
	}
	if f.Action != "remove" {
		p.Name = next.FileReceivers()[blockIndex(out, changed.start)].Name()
	}
	switch f.Action {
	case "remove":
		p.Warnings = append(p.Warnings, fmt.Sprintf("receiver %s stops listening: its exporters are disconnected", f.Orig))
	case "edit":
		a, b := cur.FileReceivers()[idx], next.FileReceivers()[blockIndex(out, changed.start)]
		if a.Listen != b.Listen || a.Proto != b.Proto || a.CPU.String() != b.CPU.String() || a.Name() != b.Name() {
			p.Warnings = append(p.Warnings, fmt.Sprintf("receiver %s is restarted (its address, protocol, CPU or name changes): its exporters are disconnected and must reconnect", f.Orig))
		}
	}
	// Receivers without a dpi key are numbered by position: removing or
	// changing one may renumber another, which the diff would not show.
	var before, after []string
	for i, rc := range cur.FileReceivers() {
		if f.Action == "add" || i != idx {
			before = append(before, rc.Name())
		}
	}
	for i, rc := range next.FileReceivers() {
		if f.Action == "remove" || i != blockIndex(out, changed.start) {
			after = append(after, rc.Name())
		}
	}
	for i := range min(len(before), len(after)) {
		if before[i] != after[i] {
			p.Errors.General = append(p.Errors.General, fmt.Sprintf("this change would renumber receiver %s to %s (its dpi is its position among its stream's receivers): set dpi in its block by hand first", before[i], after[i]))
		}
	}
	return p, nil
}

// blockIndex is the index of the receiver whose header is at line at.
func blockIndex(lines []string, at int) int {
	n := 0
	for i := 0; i < at; i++ {
		if receiverHeaderRE.MatchString(lines[i]) {
			n++
		}
	}
	return n
}

// receiverKeyRE reads the key of a problem config reports about a receiver:
// "receiver[fullflow/0].subreceivers[1]: problem".
var receiverKeyRE = regexp.MustCompile(`^receiver\[[^\]]*\]([.\w\[\]]*): (.*)$`)

// keyFields maps a key path (after "receiver[...]") to the form field.
var keyFields = []struct{ prefix, field string }{
	{".subreceiver_proto", "subreceiver_proto"},
	{".subreceivers", "subreceivers"},
	{".stream", "stream"},
	{".dpi", "dpi"},
	{".listen", "port"},
	{".proto", "proto"},
	{".mode", "mode"},
	{".cpu", "cpu"},
	{".balancer_auto", "auto"},
	{".recording.dir", "dir"},
	{".recording.rotate_every", "rotate_minutes"},
	{".recording.rotate_records", "rotate_flows"},
	{".recording.export", "export"},
	{"", "dpi"}, // "receiver[fullflow/0]: duplicate stream and dpi"
}

// mapErrors puts each problem config reports about a receiver next to its
// field; the others are general. The file loaded before the change, so a
// problem about a receiver is one the changed receiver has or makes (a
// duplicate stream and dpi, a listen address already used), wherever config
// reports it.
func mapErrors(fe *fieldErrors, err error, path string) {
	for _, msg := range strings.Split(err.Error(), "\n") {
		if msg == "" {
			continue
		}
		// "FILE:LINE: key: problem"
		rest, ok := strings.CutPrefix(msg, path+":")
		if ok {
			_, rest, ok = strings.Cut(rest, ": ")
		}
		var m []string
		if ok {
			m = receiverKeyRE.FindStringSubmatch(rest)
		}
		if m == nil {
			fe.General = append(fe.General, msg)
			continue
		}
		key, problem := m[1], m[2]
		field := ""
		for _, kf := range keyFields {
			if strings.HasPrefix(key, kf.prefix) {
				field = kf.field
				break
			}
		}
		fe.add(field, problem)
	}
}

// diffLine is one line of a unified-style diff: ' ', '+' or '-'.
type diffLine struct {
	Op   byte
	Text string
}

// diffLines diffs two small texts by their longest common subsequence and
// keeps three lines of context around each change.
func diffLines(a, b []string) []diffLine {
	n, m := len(a), len(b)
	if n*m > 4_000_000 {
		return []diffLine{{'-', fmt.Sprintf("(%d lines)", n)}, {'+', fmt.Sprintf("(%d lines)", m)}}
	}
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var all []diffLine
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			all = append(all, diffLine{' ', a[i]})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			all = append(all, diffLine{'-', a[i]})
			i++
		default:
			all = append(all, diffLine{'+', b[j]})
			j++
		}
	}
	const context = 3
	keep := make([]bool, len(all))
	for k, d := range all {
		if d.Op != ' ' {
			for x := max(0, k-context); x <= min(len(all)-1, k+context); x++ {
				keep[x] = true
			}
		}
	}
	var out []diffLine
	for k, d := range all {
		if keep[k] {
			out = append(out, d)
		} else if k > 0 && keep[k-1] {
			out = append(out, diffLine{'@', "…"})
		}
	}
	return out
}

// writeAtomic replaces path with data: the previous content goes to
// path.bak, then data to a temporary file in the same directory, synced and
// renamed over path, and the directory synced. A reader sees the old file or
// the new one, never a mix.
func writeAtomic(path string, old, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := atomicfile.Replace(path+".bak", old, mode); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return atomicfile.Replace(path, data, mode)
}

// receivers lists the receivers of the configuration file (the legacy GUI's
// receiver table).
func (c *Console) receivers(w http.ResponseWriter, r *http.Request, s *operatorSession) {
	data := map[string]any{"Path": c.opts.ConfigPath, "Flash": r.URL.Query().Get("done")}
	if c.opts.ConfigPath == "" {
		var forms []receiverForm
		for _, rc := range c.status().Config.FileReceivers() {
			forms = append(forms, formFromReceiver(rc))
		}
		data["Forms"] = forms
		data["ReadOnly"] = "the embedded default configuration runs (no -config FILE): nothing to edit"
	} else if cfg, err := config.Load(c.opts.ConfigPath); err != nil {
		data["Error"] = err.Error()
	} else {
		var forms []receiverForm
		for _, rc := range cfg.FileReceivers() {
			forms = append(forms, formFromReceiver(rc))
		}
		data["Forms"] = forms
	}
	c.render(w, r, "receivers", s, http.StatusOK, data)
}

func (c *Console) editForm(w http.ResponseWriter, r *http.Request, s *operatorSession) {
	if s == nil || c.opts.ConfigPath == "" {
		http.Redirect(w, r, "/login?next="+r.URL.RequestURI(), http.StatusSeeOther)
		return
	}
	name := r.URL.Query().Get("receiver")
	f := receiverForm{Action: "add", Proto: "tcp", Host: "0.0.0.0", Mode: "RoundRobin", SubreceiverProto: "tcp", Auto: "Disabled",
		RotateMinutes: "0", RotateSeconds: "0", RotateFlows: "0", DPI: "0"}
	if name != "" {
		cfg, err := config.Load(c.opts.ConfigPath)
		if err != nil {
			c.fail(w, r, s, http.StatusConflict, err.Error())
			return
		}
		found := false
		for _, rc := range cfg.FileReceivers() {
			if rc.Name() == name {
				f, found = formFromReceiver(rc), true
			}
		}
		if !found {
			c.fail(w, r, s, http.StatusNotFound, "no receiver "+name+" in "+c.opts.ConfigPath)
			return
		}
	}
	if old, err := os.ReadFile(c.opts.ConfigPath); err == nil {
		sum := sha256.Sum256(old)
		f.Base = hex.EncodeToString(sum[:])
	}
	c.render(w, r, "edit", s, http.StatusOK, &proposal{Form: f})
}

// check shows the change as a diff, or the form again with its errors.
func (c *Console) check(w http.ResponseWriter, r *http.Request, s *operatorSession) {
	if c.opts.ConfigPath == "" {
		c.fail(w, r, s, http.StatusConflict, "the embedded default configuration runs: nothing to edit")
		return
	}
	p, err := c.propose(formFromRequest(r))
	if err != nil {
		c.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	if !p.Errors.empty() {
		c.render(w, r, "edit", s, http.StatusUnprocessableEntity, p)
		return
	}
	c.render(w, r, "diff", s, http.StatusOK, p)
}

// apply writes the checked change and reloads, all or nothing: when the
// reload is refused the previous file is put back.
func (c *Console) apply(w http.ResponseWriter, r *http.Request, s *operatorSession) {
	if c.opts.ConfigPath == "" || c.opts.Reload == nil {
		c.fail(w, r, s, http.StatusConflict, "the embedded default configuration runs: nothing to edit")
		return
	}
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	f := formFromRequest(r)
	p, err := c.propose(f)
	if err != nil {
		c.m.changes[changeFailed].Inc()
		c.fail(w, r, s, http.StatusInternalServerError, err.Error())
		return
	}
	if !p.Errors.empty() {
		c.m.changes[changeInvalid].Inc()
		c.render(w, r, "edit", s, http.StatusUnprocessableEntity, p)
		return
	}
	log := c.log.With("operator", s.operator, "remote", r.RemoteAddr, "action", f.Action, "receiver", p.Name, "file", c.opts.ConfigPath)
	if err := writeAtomic(c.opts.ConfigPath, p.Old, p.New); err != nil {
		c.m.changes[changeFailed].Inc()
		log.Error("console change not written", "err", err)
		p.Errors.General = append(p.Errors.General, "the file was not changed: "+err.Error())
		c.render(w, r, "edit", s, http.StatusInternalServerError, p)
		return
	}
	if err := c.opts.Reload(); err != nil {
		restore := atomicfile.Replace(c.opts.ConfigPath, p.Old, fileMode(c.opts.ConfigPath))
		c.m.changes[changeFailed].Inc()
		log.Error("console change refused by the reload, file restored", "err", err, "restore_err", restore)
		p.Errors.General = append(p.Errors.General, "the reload refused the change (the running configuration is unchanged and the file restored): "+err.Error())
		c.render(w, r, "edit", s, http.StatusConflict, p)
		return
	}
	c.m.changes[changeApplied].Inc()
	log.Info("configuration changed from the console", "diff_lines", changedLines(p.Diff))
	http.Redirect(w, r, "/receivers?done="+f.Action+"+"+p.Name, http.StatusSeeOther)
}

func fileMode(path string) os.FileMode {
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	return 0o644
}

func changedLines(d []diffLine) int {
	n := 0
	for _, l := range d {
		if l.Op == '+' || l.Op == '-' {
			n++
		}
	}
	return n
}

// Loopback reports whether addr (a listener's) accepts loopback connections
// only.
func Loopback(addr net.Addr) bool {
	if a, ok := addr.(*net.TCPAddr); ok {
		return a.IP.IsLoopback()
	}
	return false
}
