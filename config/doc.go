// Package config reads the ipfix-balancer configuration: one TOML file (see
// default.toml, embedded as [DefaultTOML]) or a legacy .env of the balancer
// and collector this project replaces.
//
// It turns text into typed values and checks them; it opens no sockets and
// starts nothing. [Load] and [Parse] decode the file onto the defaults, fill
// per-receiver defaults that depend on the stream (port, rotation) or on
// order (dpi), reject every key the decoder did not use (a typo is an error,
// not a silent default) and validate the result, reporting every problem at
// once, in file order, each with the file and the line of its key (or of its
// table, for a default the file does not set):
//
//	balancer.toml:27: unknown key receiver[0].recording.rotate_evry
//	balancer.toml:31: receiver[clickstream/1].subreceivers[2]: "10.0.0.3/34x0": bad port
//	balancer.toml:40: receiver[fullflow/0].mtu: 100: outside 576..65535
//
// A syntax error, or a value of the wrong type, stops the decoder and is
// reported alone: "balancer.toml:3:9: message", the line and a caret.
// [Config.Warnings] lists what is valid but will not work on this machine
// (-check-config prints it).
//
// The balancer gets [Receiver] values holding netip.AddrPort, time.Duration,
// [Mode], [Proto] and affinity.CPUSet; it never parses text. Receiver.Name
// ("fullflow/0") names a receiver in logs, metrics and errors.
//
// [ParseEnv] and [ConvertEnv] import the legacy
// IPFIX_<STREAM>_<PARAM>[N]=value settings; [Config.TOML] prints a Config as
// TOML that parses back to an equal Config (-print-config); convert-config
// prints only what the .env set and what differs from the defaults.
//
// Reloading is the caller's business: parse the new file, and on error keep
// the running Config.
package config
