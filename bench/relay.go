package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
)

// runRelay is `bench relay`: the baseline the balancer is compared with. It
// knows nothing of IPFIX: one pinned OS thread reads the exporter's connection
// with blocking read(2) into one buffer and writes each read whole, with one
// blocking write(2), to the next sink in turn. Sinks therefore see messages cut
// at arbitrary bytes and must run in raw mode. Blocking writes mean it never
// drops: a slow sink slows it down. It prints {"addr":...} once listening with
// its sinks connected, and exits when stdin closes.
func runRelay(args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to accept the exporter on")
	var to []string
	fs.Func("to", "sink address (repeat for each sink)", func(s string) error { to = append(to, s); return nil })
	cpu := fs.String("cpu", "", "CPU list to pin the relaying thread to (like the balancer's cpu key)")
	readBytes := fs.Int("read-bytes", 1<<20, "read buffer size (the balancer's gnet read buffer is 1 MiB)")
	all := fs.Bool("all", false, "write every read to every sink (the baseline of All mode)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(to) == 0 {
		return errors.New("relay: need at least one -to")
	}
	// The thread that relays is the one pinned: lock first, like a gnet loop.
	if *cpu != "" {
		set, err := affinity.Parse(*cpu)
		if err != nil {
			return err
		}
		if err := affinity.Pin(set); err != nil {
			return err
		}
	}
	var sinks []int
	for _, a := range to {
		c, err := net.Dial("tcp", a)
		if err != nil {
			return err
		}
		fd, err := blockingFD(c)
		if err != nil {
			return err
		}
		sinks = append(sinks, fd)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	out, err := json.Marshal(map[string]string{"addr": ln.Addr().String()})
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	go func() {
		// The harness closes stdin to stop us.
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
		}
		os.Exit(0)
	}()
	buf := make([]byte, *readBytes)
	next := 0
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		fd, err := blockingFD(c)
		if err != nil {
			return err
		}
		next, err = relay(fd, sinks, buf, next, *all)
		_ = unix.Close(fd)
		if err != nil {
			return err
		}
	}
}

// blockingFD returns a blocking duplicate of c's socket and closes c.
func blockingFD(c net.Conn) (int, error) {
	f, err := c.(*net.TCPConn).File()
	_ = c.Close()
	if err != nil {
		return -1, err
	}
	fd, err := unix.Dup(int(f.Fd()))
	_ = f.Close()
	if err != nil {
		return -1, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// relay copies src to the sinks, one whole read per sink in turn (all: to
// every sink), until EOF.
func relay(src int, sinks []int, buf []byte, next int, all bool) (int, error) {
	for {
		n, err := unix.Read(src, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return next, fmt.Errorf("relay: read: %w", err)
		}
		if n == 0 {
			return next, nil
		}
		if all {
			for _, fd := range sinks {
				if err := writeAll(fd, buf[:n]); err != nil {
					return next, err
				}
			}
			continue
		}
		if err := writeAll(sinks[next], buf[:n]); err != nil {
			return next, err
		}
		next = (next + 1) % len(sinks)
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("relay: write: %w", err)
		}
		b = b[n:]
	}
	return nil
}

// relayArgs builds the command line of a relay child.
func relayArgs(cpu string, all bool, sinks []string) []string {
	args := []string{"relay", "-cpu", cpu}
	if all {
		args = append(args, "-all")
	}
	for _, s := range sinks {
		args = append(args, "-to", s)
	}
	return args
}
