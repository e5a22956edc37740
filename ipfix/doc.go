// Package ipfix is the IPFIX codec of ipfix-balancer: bytes in, values and
// errors out. It frames TCP streams and UDP datagrams, checks messages, keeps
// the templates of an exporter session, decodes data records, encodes and
// re-splits messages, tracks sequence numbers and reads and writes IPFIX files.
//
// It implements, from RFC 7011 (IPFIX protocol):
//
//   - §3.1 message header: ParseHeader, PutHeader, FrameLength (TCP framing,
//     §10.4.1), SplitDatagram (UDP, §10.3), SequenceTracker (sequence numbers
//     count data records, modulo 2^32), ExportClock (the export time to put on a
//     message made up for a session: the exporter's, never ours, so that it
//     never goes back on the session).
//   - §3.3 sets and padding: Sets, Set.TemplateRecords, CheckMessage;
//     MessageBuilder, the one framing of outgoing messages (sets and records
//     appended up to a maximum size, header finished), behind Encoder, Repack
//     and AppendTemplateMessages.
//   - §3.4 template and options template records, §8 template management:
//     TemplateCache (definition, redefinition, withdrawal and withdraw-all §8.1,
//     template lifetime for UDP §8.4), AppendTemplateMessages to replay them.
//   - §6 data types including reduced-size encoding (§6.2) and §7
//     variable-length fields: Value, Decoder, Encoder, AppendVarLen, AppendUint.
//
// and from RFC 5655 (IPFIX files): FileWriter and FileReader. Information
// elements come from the IANA registry (RFC 7012) plus the enterprise 43823
// elements of the DPI (LookupElement, ElementByName).
//
// It leaves to others: sockets and event loops (package balancer), metrics and
// logs (callers count errors by sentinel), load balancing, file rotation, and
// storage. It imports only the standard library.
//
// # Errors
//
// Malformed input never panics. Every error for malformed input is a
// *ParseError (offset, set id, template id) wrapping one sentinel; branch with
// errors.Is. ErrVersion and ErrMessageLength from FrameLength mean a TCP
// stream lost its framing and must be closed; the other sentinels concern one
// message or one set, which is dropped while the session goes on. Reserved set
// ids (0, 1, 4..255) are ErrSetID, which also matches ErrSetLength.
//
// # Buffers and concurrency
//
// Slices handed out (messages, Set.Body, Value.Raw) alias the input or an
// internal buffer and are valid only as documented (usually until the callback
// returns or the next call). TemplateCache, Decoder, Encoder, SequenceTracker,
// FileWriter and FileReader belong to one goroutine; the element registry and
// templates held by a cache are read-only and may be shared. Decoding and
// framing allocate nothing per message in steady state.
package ipfix
