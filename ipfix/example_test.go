package ipfix_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// A TCP reader appends what it reads to a buffer and frames complete messages.
func ExampleFrameLength() {
	msg := mkMessage(1, 0, mkSet(256, []byte{1, 2, 3, 4}))
	stream := append(append([]byte{}, msg...), msg[:10]...) // one message and a half

	for {
		n, err := ipfix.FrameLength(stream)
		if err != nil {
			fmt.Println("close the connection:", err)
			return
		}
		if n == 0 {
			fmt.Println("need more bytes, have", len(stream))
			return
		}
		fmt.Println("message of", n, "bytes")
		stream = stream[n:]
	}
	// Output:
	// message of 24 bytes
	// need more bytes, have 10
}

func ExampleDecoder() {
	// An exporter: one template and two records.
	tmpl := ipfix.NewTemplate(256, []ipfix.FieldSpecifier{
		{ID: 8, Length: 4}, // sourceIPv4Address
		{ID: 2, Length: 4}, // packetDeltaCount, reduced size
		{ID: 1005, Length: ipfix.VariableLength, EnterpriseNumber: ipfix.EnterpriseDPI}, // hostname
	})
	enc := ipfix.NewEncoder(1, 1400)
	var msg []byte
	enc.SetOutput(func(m []byte) { msg = append([]byte(nil), m...) })
	enc.AddTemplate(tmpl)
	for i, host := range []string{"example.com", "example.org"} {
		rec := []byte{192, 0, 2, byte(i + 1)}
		rec = ipfix.AppendUint(rec, uint64(10*(i+1)), 4)
		rec = ipfix.AppendVarLen(rec, []byte(host))
		if err := enc.AppendRecord(256, rec); err != nil {
			panic(err)
		}
	}
	enc.Flush()

	// A collector.
	if err := ipfix.CheckMessage(msg); err != nil {
		panic(err)
	}
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	err := dec.Decode(msg, time.Now(), func(r *ipfix.Record) error {
		for i, v := range r.Values {
			if i > 0 {
				fmt.Print(" ")
			}
			fmt.Printf("%s=%s", v.Element.Name, v)
		}
		fmt.Println()
		return nil
	})
	fmt.Println(err)
	// Output:
	// sourceIPv4Address=192.0.2.1 packetDeltaCount=10 hostname="example.com"
	// sourceIPv4Address=192.0.2.2 packetDeltaCount=20 hostname="example.org"
	// <nil>
}

func ExampleParseError() {
	cache := ipfix.NewTemplateCache(0)
	msg := mkMessage(1, 0, mkSet(300, []byte{1, 2, 3, 4}))
	err := ipfix.NewDecoder(cache).Decode(msg, time.Now(), func(*ipfix.Record) error { return nil })
	fmt.Println(err)
	fmt.Println(errors.Is(err, ipfix.ErrUnknownTemplate))
	// Output:
	// ipfix: offset 16 set 300: unknown template
	// true
}

func ExampleSequenceTracker() {
	var s ipfix.SequenceTracker
	// Sequence numbers count data records: 10 records at 100 mean 110 next.
	fmt.Println(s.Observe(1, 100, 10))
	fmt.Println(s.Observe(1, 115, 5)) // 5 records missing
	fmt.Println(s.Observe(1, 110, 5)) // the late message
	fmt.Println(s.Lost(), s.OutOfOrder())
	// Output:
	// 0 false
	// 5 false
	// 0 true
	// 5 1
}

func ExampleRepack() {
	tmpl := ipfix.NewTemplate(256, []ipfix.FieldSpecifier{{ID: 8, Length: 4}, {ID: 1, Length: 8}})
	enc := ipfix.NewEncoder(1, ipfix.MaxMessageLen)
	var big []byte
	enc.SetOutput(func(m []byte) { big = append([]byte(nil), m...) })
	enc.AddTemplate(tmpl)
	for i := range 1000 {
		_ = enc.AppendRecord(256, ipfix.AppendUint([]byte{10, 0, 0, 1}, uint64(i), 8))
	}
	enc.Flush()

	cache := ipfix.NewTemplateCache(0)
	if _, err := cache.Learn(big, time.Now()); err != nil {
		panic(err)
	}
	n := 0
	err := ipfix.Repack(big, cache, 1400, func(m []byte) {
		h, _ := ipfix.ParseHeader(m)
		if n < 2 {
			fmt.Println("length", h.Length, "sequence", h.SequenceNumber)
		}
		n++
	})
	fmt.Println(len(big), "bytes into", n, "messages", err)
	// Output:
	// length 1392 sequence 0
	// length 1400 sequence 113
	// 12036 bytes into 9 messages <nil>
}
