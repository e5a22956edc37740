package main

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testStream is a byte stream of IPFIX messages: a template-only message, data
// messages of several sizes, and header-only (16 and 17 byte) messages, the
// edge cases of the framer's prefix collection.
func testStream() (stream []byte, messages, data int64) {
	msg := func(size int, firstSet uint16) {
		m := make([]byte, size)
		binary.BigEndian.PutUint16(m[0:], 10)
		binary.BigEndian.PutUint16(m[2:], uint16(size))
		if size >= 20 {
			binary.BigEndian.PutUint16(m[16:], firstSet)
			binary.BigEndian.PutUint16(m[18:], uint16(size-16))
		}
		stream = append(stream, m...)
		messages++
		if size >= 18 && firstSet >= 256 {
			data++
		}
	}
	msg(60, 2)
	msg(1400, 256)
	msg(16, 0)
	msg(17, 0)
	msg(20, 300)
	msg(18, 0)
	msg(333, 256)
	msg(19, 3)
	return stream, messages, data
}

func TestFramerSplitEverywhere(t *testing.T) {
	stream, messages, data := testStream()
	for i := 0; i <= len(stream); i++ {
		for j := i; j <= len(stream); j += 13 {
			var f framer
			require.NoError(t, f.feed(stream[:i]))
			require.NoError(t, f.feed(stream[i:j]))
			require.NoError(t, f.feed(stream[j:]))
			assert.Equal(t, messages, f.messages, "split at %d,%d", i, j)
			assert.Equal(t, data, f.data, "split at %d,%d", i, j)
			assert.Equal(t, int64(len(stream)), f.bytes)
			assert.Zero(t, f.rem)
			assert.Zero(t, f.pn)
		}
	}
}

func TestFramerByteByByte(t *testing.T) {
	stream, messages, data := testStream()
	var f framer
	for i := range stream {
		require.NoError(t, f.feed(stream[i:i+1]))
	}
	assert.Equal(t, messages, f.messages)
	assert.Equal(t, data, f.data)
}

func TestFramerLostFraming(t *testing.T) {
	f := func(in []byte) {
		t.Helper()
		var fr framer
		require.ErrorIs(t, fr.feed(in), errFraming)
	}
	f([]byte{0, 9, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // version 9
	f([]byte{0, 10, 0, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})      // length < 16
	f([]byte{0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})             // length 0, slow path
}

func TestParseSample(t *testing.T) {
	s, ok := parseSample(`ipfix_balancer_dropped_messages_total{stream="fullflow",dpi="0",reason="queue_full"} 12`)
	require.True(t, ok)
	assert.Equal(t, "ipfix_balancer_dropped_messages_total", s.name)
	assert.Equal(t, "queue_full", s.labels["reason"])
	assert.Equal(t, 12.0, s.value)
	s, ok = parseSample(`go_goroutines 7`)
	require.True(t, ok)
	assert.Equal(t, 7.0, s.value)
	_, ok = parseSample(`# HELP x y`)
	assert.False(t, ok)
}
