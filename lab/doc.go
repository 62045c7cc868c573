// Package lab is a throw-away RFC 8572 bootstrap server for testing the
// SZTP agent: a PKI (manufacturer CA and IDevID, bootstrap-server CA and
// trust anchor) written as PEM files, and an HTTPS RESTCONF server that
// answers get-bootstrapping-data from a Definition, records every
// report-progress and serves boot images.
//
// Agent tests use it in-process (Start, then Reports and Requests); the
// sztp-lab command (RunCLI) runs it for manual and scripted labs. It only
// produces unsigned conveyed information for now; signed and encrypted
// answers, vouchers and owner certificates are meant to join Definition
// later without changing what exists.
package lab
