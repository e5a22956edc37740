package ipfix_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

func learn(t *testing.T, c *ipfix.TemplateCache, msg []byte) {
	t.Helper()
	require.NoError(t, ipfix.CheckMessage(msg))
	had, err := c.Learn(msg, fixedNow)
	require.NoError(t, err)
	require.True(t, had)
}

func TestTemplateCacheDefine(t *testing.T) {
	c := ipfix.NewTemplateCache(0)
	ft, ot := fullflowTemplate(256), optionsTemplate(512)
	learn(t, c, mkMessage(7, 0, mkTemplateSet(ft), mkTemplateSet(ot)))

	got := c.Lookup(7, 256)
	require.NotNil(t, got)
	assert.Equal(t, ft.Fields, got.Fields)
	assert.Equal(t, ft.Record, got.Record)
	assert.Equal(t, ft.FixedLength, got.FixedLength)
	assert.False(t, got.Variable)
	assert.False(t, got.Options)

	got = c.Lookup(7, 512)
	require.NotNil(t, got)
	assert.True(t, got.Options)
	assert.Equal(t, uint16(1), got.ScopeFieldCount)
	assert.Equal(t, ot.Record, got.Record)

	assert.Nil(t, c.Lookup(8, 256), "templates are per domain")
	assert.Nil(t, c.Lookup(7, 257))
	assert.Equal(t, []uint32{7}, c.Domains())
	assert.Equal(t, 2, c.Len())

	// A message without template sets reports none.
	had, err := c.Learn(mkMessage(7, 0, mkSet(256, fullflowRecord(nil, 0))), fixedNow)
	require.NoError(t, err)
	assert.False(t, had)
}

func TestTemplateCacheRedefine(t *testing.T) {
	c := ipfix.NewTemplateCache(0)
	learn(t, c, mkMessage(1, 0, mkTemplateSet(fullflowTemplate(256))))
	ct := clickTemplate(256)
	learn(t, c, mkMessage(1, 0, mkTemplateSet(ct)))
	got := c.Lookup(1, 256)
	require.NotNil(t, got)
	assert.Equal(t, ct.Fields, got.Fields)
	assert.True(t, got.Variable)
	assert.Equal(t, 1, c.Len())

	// Same id redefined as an options template replaces it too.
	learn(t, c, mkMessage(1, 0, mkTemplateSet(ipfix.NewOptionsTemplate(256, 1, []ipfix.FieldSpecifier{fieldIANA(144, 4)}))))
	assert.True(t, c.Lookup(1, 256).Options)
}

func TestTemplateCacheWithdraw(t *testing.T) {
	c := ipfix.NewTemplateCache(0)
	learn(t, c, mkMessage(1, 0, mkTemplateSet(fullflowTemplate(256), clickTemplate(257)), mkTemplateSet(optionsTemplate(512), optionsTemplate(513))))
	learn(t, c, mkMessage(2, 0, mkTemplateSet(fullflowTemplate(256))))
	require.Equal(t, 5, c.Len())

	// Withdraw one template (RFC 7011 §8.1: field count 0).
	learn(t, c, mkMessage(1, 0, mkSet(2, be16(257, 0))))
	assert.Nil(t, c.Lookup(1, 257))
	assert.NotNil(t, c.Lookup(1, 256))

	// Withdraw an options template.
	learn(t, c, mkMessage(1, 0, mkSet(3, be16(513, 0))))
	assert.Nil(t, c.Lookup(1, 513))
	assert.NotNil(t, c.Lookup(1, 512))

	// Withdraw all templates of domain 1 (template id 2 in a template set):
	// options templates and other domains stay.
	learn(t, c, mkMessage(1, 0, mkSet(2, be16(2, 0))))
	assert.Nil(t, c.Lookup(1, 256))
	assert.NotNil(t, c.Lookup(1, 512))
	assert.NotNil(t, c.Lookup(2, 256))

	// Withdraw all options templates (id 3 in an options template set).
	learn(t, c, mkMessage(1, 0, mkSet(3, be16(3, 0))))
	assert.Nil(t, c.Lookup(1, 512))
	assert.Equal(t, []uint32{2}, c.Domains())
	assert.Equal(t, 1, c.Len())
}

func TestTemplateCacheErrors(t *testing.T) {
	ft := fullflowTemplate(256)
	cases := []struct {
		name   string
		msg    []byte
		want   error
		offset int
		tid    uint16
	}{
		{"withdrawal of unknown id", mkMessage(1, 0, mkSet(2, be16(999, 0))), ipfix.ErrUnknownWithdrawal, 20, 999},
		{"truncated template", mkMessage(1, 0, mkSet(2, ft.Record[:len(ft.Record)-2])), ipfix.ErrTemplate, 20, 256},
		{"truncated enterprise number", mkMessage(1, 0, mkSet(2, joinBytes(be16(300, 1), be16(0x8000|1001, 4), be16(0)))), ipfix.ErrTemplate, 20, 300},
		{"scope count above field count", mkMessage(1, 0, mkSet(3, joinBytes(be16(300, 1, 2), be16(144, 4)))), ipfix.ErrTemplate, 20, 300},
		{"scope count zero", mkMessage(1, 0, mkSet(3, joinBytes(be16(300, 1, 0), be16(144, 4)))), ipfix.ErrTemplate, 20, 300},
		{"template id below 256", mkMessage(1, 0, mkSet(2, joinBytes(be16(255, 1), be16(8, 4)))), ipfix.ErrTemplate, 20, 255},
		{"empty records", mkMessage(1, 0, mkSet(2, joinBytes(be16(300, 1), be16(8, 0)))), ipfix.ErrTemplate, 20, 300},
		{"second record bad", mkMessage(1, 0, mkSet(2, ft.Record, joinBytes(be16(300, 2), be16(8, 4)))), ipfix.ErrTemplate, 20 + len(ft.Record), 300},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, ipfix.CheckMessage(tc.msg))
			c := ipfix.NewTemplateCache(0)
			had, err := c.Learn(tc.msg, fixedNow)
			assert.True(t, had)
			require.ErrorIs(t, err, tc.want)
			var pe *ipfix.ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tc.offset, pe.Offset)
			assert.Equal(t, tc.tid, pe.TemplateID)
			assert.Equal(t, uint16(tc.msg[17]), pe.SetID) // the only set
		})
	}
}

func TestTemplateCacheErrorKeepsGoing(t *testing.T) {
	// A bad template set does not stop the next set, and a withdrawal of an
	// unknown id does not stop the rest of its set.
	c := ipfix.NewTemplateCache(0)
	msg := mkMessage(1, 0,
		mkSet(2, joinBytes(be16(300, 5), be16(8, 4))),
		mkSet(2, be16(999, 0), fullflowTemplate(256).Record),
	)
	_, err := c.Learn(msg, fixedNow)
	require.ErrorIs(t, err, ipfix.ErrTemplate)
	assert.NotNil(t, c.Lookup(1, 256))
}

func TestTemplateCachePadding(t *testing.T) {
	// Up to 3 bytes of padding after the last template record are allowed.
	c := ipfix.NewTemplateCache(0)
	learn(t, c, mkMessage(1, 0, mkSet(2, fullflowTemplate(256).Record, []byte{0, 0, 0})))
	assert.Equal(t, 1, c.Len())
}

func TestTemplateCacheLifetime(t *testing.T) {
	c := ipfix.NewTemplateCache(30 * time.Minute)
	t0 := fixedNow
	msg := mkMessage(1, 0, mkTemplateSet(fullflowTemplate(256)))
	_, err := c.Learn(msg, t0)
	require.NoError(t, err)
	_, err = c.Learn(mkMessage(1, 0, mkTemplateSet(clickTemplate(257))), t0.Add(20*time.Minute))
	require.NoError(t, err)

	require.Zero(t, c.Expire(t0.Add(30*time.Minute)))
	require.NotNil(t, c.Lookup(1, 256))

	// Lookup hides an expired template before Expire removes it.
	d := ipfix.NewDecoder(c)
	err = d.Decode(mkMessage(1, 0, mkSet(256, fullflowRecord(nil, 0))), t0.Add(31*time.Minute), func(*ipfix.Record) error { return nil })
	require.ErrorIs(t, err, ipfix.ErrUnknownTemplate)
	assert.Nil(t, c.Lookup(1, 256))
	assert.NotNil(t, c.Lookup(1, 257))
	assert.Equal(t, 1, c.Len())

	// A refresh (same template again) restarts the lifetime.
	_, err = c.Learn(mkMessage(1, 0, mkTemplateSet(clickTemplate(257))), t0.Add(49*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, c.Expire(t0.Add(60*time.Minute)))
	assert.NotNil(t, c.Lookup(1, 257))
	require.Equal(t, 1, c.Expire(t0.Add(80*time.Minute)))
	assert.Zero(t, c.Len())
	assert.Empty(t, c.Domains())

	// Without a lifetime nothing expires.
	c = ipfix.NewTemplateCache(0)
	_, err = c.Learn(msg, t0)
	require.NoError(t, err)
	require.Zero(t, c.Expire(t0.Add(1000*time.Hour)))
	require.NotNil(t, c.Lookup(1, 256))
}

func TestAppendTemplateMessages(t *testing.T) {
	c := ipfix.NewTemplateCache(0)
	var ts []*ipfix.Template
	for i := range 40 {
		ts = append(ts, fullflowTemplate(uint16(300+i)), clickTemplate(uint16(400+i)))
	}
	ts = append(ts, optionsTemplate(600), optionsTemplate(601))
	// Learn them in several messages, options templates first.
	learn(t, c, mkMessage(5, 0, mkTemplateSet(ts[80:]...)))
	for i := 0; i < 80; i += 10 {
		learn(t, c, mkMessage(5, 0, mkTemplateSet(ts[i:i+10]...)))
	}
	learn(t, c, mkMessage(6, 0, mkTemplateSet(clickTemplate(256))))

	for _, maxSize := range []int{200, 512, 1400, 65535} {
		out := c.AppendTemplateMessages([]byte("prefix"), 5, 1234, 99, maxSize)
		require.Equal(t, "prefix", string(out[:6]))
		out = out[6:]
		fresh := ipfix.NewTemplateCache(0)
		var order []uint16
		n := 0
		for len(out) > 0 {
			l, err := ipfix.FrameLength(out)
			require.NoError(t, err)
			require.NotZero(t, l)
			m := out[:l]
			out = out[l:]
			n++
			require.LessOrEqual(t, len(m), maxSize)
			require.NoError(t, ipfix.CheckMessage(m))
			h, _ := ipfix.ParseHeader(m)
			assert.Equal(t, ipfix.Header{Version: 10, Length: uint16(l), ExportTime: 1234, SequenceNumber: 99, ObservationDomainID: 5}, h)
			_, err = fresh.Learn(m, fixedNow)
			require.NoError(t, err)
			it := ipfix.Sets(m)
			for {
				s, ok := it.Next()
				if !ok {
					break
				}
				order = append(order, s.ID)
			}
		}
		if maxSize == 65535 {
			assert.Equal(t, 1, n)
		}
		require.Equal(t, len(ts), fresh.Len(), "maxSize %d", maxSize)
		for _, tt := range ts {
			got := fresh.Lookup(5, tt.ID)
			require.NotNil(t, got)
			assert.Equal(t, tt.Record, got.Record)
			assert.Equal(t, tt.Options, got.Options)
		}
		// Templates first, then options templates.
		for i := 1; i < len(order); i++ {
			assert.LessOrEqual(t, order[i-1], order[i])
		}
	}
	assert.Empty(t, c.AppendTemplateMessages(nil, 9, 0, 0, 1400))
}

func TestRecordCount(t *testing.T) {
	ft, ct := fullflowTemplate(256), clickTemplate(257)
	c := ipfix.NewTemplateCache(0)
	learn(t, c, mkMessage(1, 0, mkTemplateSet(ft, ct)))
	var fb, cb []byte
	for i := range 5 {
		fb = fullflowRecord(fb, i)
		cb = clickRecord(cb, i, 300*i)
	}
	fb = append(fb, 0, 0, 0) // padding
	msg := mkMessage(1, 0, mkSet(256, fb), mkSet(257, cb, []byte{0}), mkSet(999, []byte{1}))
	n, err := c.RecordCount(msg)
	require.ErrorIs(t, err, ipfix.ErrUnknownTemplate)
	assert.Equal(t, 10, n)

	n, err = ct.RecordCount(cb[:len(cb)-1])
	require.ErrorIs(t, err, ipfix.ErrFieldLength)
	assert.Equal(t, 4, n)
	assert.Equal(t, 4+4+4+3+8+2+2+6, ct.MinRecordLength())
	assert.Equal(t, ft.FixedLength, ft.MinRecordLength())
}

// A cache with a limit refuses new templates beyond it, counted by the error,
// and still applies redefinitions of those it holds.
func TestTemplateCacheLimit(t *testing.T) {
	c := ipfix.NewTemplateCache(0)
	c.SetLimit(2)
	e := ipfix.NewEncoder(1, ipfix.MaxMessageLen)
	var msgs [][]byte
	e.SetOutput(func(m []byte) { msgs = append(msgs, append([]byte(nil), m...)) })
	for id := uint16(256); id < 259; id++ {
		e.AddTemplate(ipfix.NewTemplate(id, []ipfix.FieldSpecifier{{ID: 1, Length: 8}}))
	}
	e.AddTemplate(ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 2, Length: 4}})) // a redefinition
	e.Flush()
	require.Len(t, msgs, 1)
	_, err := c.Learn(msgs[0], time.Time{})
	require.ErrorIs(t, err, ipfix.ErrTooManyTemplates)
	assert.Equal(t, 2, c.Len())
	assert.Nil(t, c.Lookup(1, 258))
	require.NotNil(t, c.Lookup(1, 256))
	assert.Equal(t, 4, c.Lookup(1, 256).FixedLength, "the redefinition applies")
}
