package testenv

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// messagesAt encodes one template message and one data message per export
// time, for domain odid.
func messagesAt(t *testing.T, odid uint32, times ...uint32) [][]byte {
	t.Helper()
	tmpl := ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 1, Length: 8}})
	var msgs [][]byte
	enc := ipfix.NewEncoder(odid, 512)
	enc.SetOutput(func(m []byte) { msgs = append(msgs, append([]byte(nil), m...)) })
	for i, et := range times {
		enc.SetExportTime(et)
		if i == 0 {
			enc.AddTemplate(tmpl)
		}
		require.NoError(t, enc.AppendRecord(256, ipfix.AppendUint(nil, uint64(i+1), 8)))
		enc.Flush()
	}
	return msgs
}

// Like IPFIXcol2's TCP input, the collector closes a session on which export
// time goes back in a domain; equal or later times, and other domains, are fine.
func TestCollectorRefusesExportTimeInHistory(t *testing.T) {
	c := StartCollector(t, "tcp")
	conn, err := net.Dial("tcp", c.Addr())
	require.NoError(t, err)
	defer conn.Close()
	var stream []byte
	for _, m := range messagesAt(t, 1, 1000, 1000, 1001) {
		stream = append(stream, m...)
	}
	for _, m := range messagesAt(t, 2, 500) { // another domain has its own clock
		stream = append(stream, m...)
	}
	back := messagesAt(t, 1, 999)
	stream = append(stream, back[len(back)-1]...)
	_, err = conn.Write(stream)
	require.NoError(t, err)

	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the collector closes the session")
	assert.Equal(t, 4, c.Stats().Records, "what came before is kept, the refused message is not")
	assert.Equal(t, 1, c.Stats().Refused)
	assert.Equal(t, []Refusal{{Remote: conn.LocalAddr().String(), ODID: 1, Previous: 1001, Got: 999,
		Reason: ReasonExportTimeInHistory}}, c.Refusals())
}

// Over UDP, going back is allowed within libfds' snapshot lifetime (15 s);
// older messages have their records ignored.
func TestCollectorUDPTooOld(t *testing.T) {
	c := StartCollector(t, "udp")
	conn, err := net.Dial("udp", c.Addr())
	require.NoError(t, err)
	defer conn.Close()
	for _, m := range messagesAt(t, 1, 1000, 990, 984, 1000) {
		_, err := conn.Write(m)
		require.NoError(t, err)
	}
	require.True(t, c.WaitRecords(3, 5*time.Second))
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Messages+c.Stats().TooOld < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	assert.Equal(t, 3, c.Stats().Records)
	assert.Equal(t, 1, c.Stats().TooOld, "984 + 15 < 1000")
	assert.Zero(t, c.Stats().Refused)
}

func TestCollectorExportTimeWraps(t *testing.T) {
	s := newCollectorSession(true)
	msg := make([]byte, ipfix.HeaderLen)
	at := func(et uint32) bool {
		binary.BigEndian.PutUint32(msg[4:8], et)
		ok, _ := s.checkExportTime(msg)
		return ok
	}
	require.True(t, at(0xffff_fff0))
	assert.True(t, at(5), "after the 2106 wrap, serial-number arithmetic")
	assert.False(t, at(0xffff_fff8))
}

// Shutdown loses nothing the sender wrote: a sender that writes as fast as
// it can until it reads the collector's end of stream, then closes, has every
// message it wrote decoded, none cut, and the collector restarts on its port.
func TestCollectorShutdownLosesNothing(t *testing.T) {
	c := StartCollector(t, "tcp")
	conn, err := net.Dial("tcp", c.Addr())
	require.NoError(t, err)
	defer conn.Close()
	msgs := messagesAt(t, 1, 1000)
	_, err = conn.Write(msgs[0]) // the template and a record
	require.NoError(t, err)
	rec := messagesAt(t, 1, 1000, 1000)[1] // a data message only
	eof := make(chan struct{})
	go func() {
		_, _ = conn.Read(make([]byte, 1))
		close(eof)
	}()
	sent := 1
	stopped := make(chan struct{})
	go func() {
		c.WaitRecords(1000, 10*time.Second) // mid-stream (or late: the assertions below still hold)
		c.Shutdown()
		close(stopped)
	}()
	for k := 0; k < 10_000_000; k++ {
		select {
		case <-eof:
			require.NoError(t, conn.Close())
			k = 10_000_000
			continue
		default:
		}
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(rec); err != nil {
			t.Fatalf("write %d: %v", sent, err)
		}
		sent++
	}
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	st := c.Stats()
	assert.Equal(t, sent, st.Records, "records written and decoded")
	assert.Equal(t, sent, st.DataMessages)
	assert.Zero(t, st.Undecoded)
	c.Restart()
	conn2, err := net.Dial("tcp", c.Addr())
	require.NoError(t, err)
	require.NoError(t, conn2.Close())
}
