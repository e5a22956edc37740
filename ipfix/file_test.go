package ipfix_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// recordSession encodes a session of two domains: the templates go out in the
// first messages only, as over TCP.
func recordSession(t *testing.T) (msgs [][]byte) {
	for odid := uint32(1); odid <= 2; odid++ {
		var recs []taggedRecord
		for i := range 200 {
			recs = append(recs, taggedRecord{256, fullflowRecord(nil, i)}, taggedRecord{257, clickRecord(nil, i, i)})
		}
		msgs = append(msgs, encodeAll(t, odid, 1400, []*ipfix.Template{fullflowTemplate(256), clickTemplate(257)}, recs)...)
	}
	return msgs
}

func TestFileRoundTrip(t *testing.T) {
	msgs := recordSession(t)
	// The session's cache has seen every message; the file starts in the middle
	// of the session (after rotation), so its templates come from the cache.
	cache := ipfix.NewTemplateCache(0)
	for _, m := range msgs {
		_, err := cache.Learn(m, fixedNow)
		require.NoError(t, err)
	}
	var tail [][]byte
	for _, m := range msgs {
		if h, _ := ipfix.ParseHeader(m); h.SequenceNumber > 0 {
			tail = append(tail, m)
		}
	}
	path := filepath.Join(t.TempDir(), "dump.ipfix")
	f, err := os.Create(path)
	require.NoError(t, err)
	bw := bufio.NewWriter(f)
	fw := ipfix.NewFileWriter(bw, cache)
	for _, m := range tail {
		require.NoError(t, fw.WriteMessage(m))
	}
	require.NoError(t, bw.Flush())
	require.NoError(t, f.Close())
	assert.Equal(t, int64(len(tail)+2), fw.Messages(), "one template message per domain")
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, st.Size(), fw.Bytes())

	f, err = os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	fr := ipfix.NewFileReader(f)
	var got [][]byte
	var offsets []int64
	for {
		m, err := fr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		got = append(got, append([]byte(nil), m...))
		offsets = append(offsets, fr.Offset())
	}
	require.Len(t, got, len(tail)+2)
	assert.Equal(t, int64(0), offsets[0])
	// The file decodes alone to the records of the messages written.
	want := decodeAll(t, cache, tail...)
	assert.Equal(t, want, decodeAll(t, ipfix.NewTemplateCache(0), got...))
	// Each domain's templates come first; the messages written are byte-exact.
	d1 := len(tail) / 2
	assert.Equal(t, tail[:d1], got[1:1+d1])
	assert.Equal(t, tail[d1:], got[2+d1:])
	assert.Equal(t, cache.AppendTemplateMessages(nil, 2, 1700000000, 0, 65535)[16:], got[1+d1][16:])
	_, err = fr.Next()
	require.Equal(t, io.EOF, err)
}

func TestFileTornTail(t *testing.T) {
	msgs := recordSession(t)[:5]
	var buf bytes.Buffer
	fw := ipfix.NewFileWriter(&buf, nil)
	for _, m := range msgs {
		require.NoError(t, fw.WriteMessage(m))
	}
	full := buf.Bytes()
	lastOff := len(full) - len(msgs[4])
	for _, cut := range []int{1, 10, 16, 17, len(msgs[4]) - 1} {
		fr := ipfix.NewFileReader(bytes.NewReader(full[:lastOff+cut]))
		for i := range 4 {
			m, err := fr.Next()
			require.NoError(t, err)
			require.Equal(t, msgs[i], m)
		}
		_, err := fr.Next()
		require.ErrorIs(t, err, ipfix.ErrShortMessage, "cut %d", cut)
		var pe *ipfix.ParseError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, lastOff, pe.Offset)
		_, err2 := fr.Next()
		assert.Equal(t, err, err2, "sticky")
	}
}

func TestFileReaderErrors(t *testing.T) {
	good := mkMessage(1, 0, mkSet(256, []byte{1, 2, 3, 4}))
	badSet := mkMessage(1, 0, be16(256, 2)) // framed, but a bad set
	var pe *ipfix.ParseError

	fr := ipfix.NewFileReader(bytes.NewReader(joinBytes(good, badSet, good)))
	_, err := fr.Next()
	require.NoError(t, err)
	_, err = fr.Next()
	require.ErrorIs(t, err, ipfix.ErrSetLength)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, len(good)+16, pe.Offset)
	m, err := fr.Next()
	require.NoError(t, err, "a bad set does not lose the framing")
	assert.Equal(t, good, m)
	assert.Equal(t, int64(len(good)+len(badSet)), fr.Offset())

	fr = ipfix.NewFileReader(bytes.NewReader(joinBytes(good, []byte{0, 9}, make([]byte, 30))))
	_, err = fr.Next()
	require.NoError(t, err)
	_, err = fr.Next()
	require.ErrorIs(t, err, ipfix.ErrVersion)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, len(good), pe.Offset)

	fw := ipfix.NewFileWriter(io.Discard, nil)
	require.ErrorIs(t, fw.WriteMessage(badSet), ipfix.ErrSetLength)

	errDisk := errors.New("disk")
	fr = ipfix.NewFileReader(io.MultiReader(bytes.NewReader(good[:5]), iotestErrReader{errDisk}))
	_, err = fr.Next()
	require.ErrorIs(t, err, errDisk)
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }
