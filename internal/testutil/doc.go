// Package testutil holds the plumbing the end-to-end tests of several
// packages share: building a binary once per TestMain, picking a free
// loopback port, polling a condition or an HTTP endpoint under a deadline,
// reading the "listening ..." line of a server and the service table of
// `wardgate up`, starting a `wardgate gateway` and reading its listening
// log line, a DNS server (miekg/dns) whose answers a test changes for the
// gateway's discover: upstreams, reading stored (optionally gzipped)
// NDJSON blobs, and stopping a child with SIGTERM.
//
// It is hand-written because each piece is a few lines over the standard
// library and the tests need their exact failure messages and generous,
// load-tolerant deadlines; a general assertion library would add a
// dependency without removing code. There is no package-level mutable
// state: a TestMain keeps what Build returns.
//
// Helpers that fail a test take testing.TB; helpers used from TestMain (no
// testing.TB yet) return errors.
package testutil
