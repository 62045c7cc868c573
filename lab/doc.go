// Package lab is a throw-away RFC 8572 bootstrap server for testing the
// SZTP agent: a PKI (manufacturer CA and IDevID, bootstrap-server CA and
// trust anchor) written as PEM files, and an HTTPS RESTCONF server that
// answers get-bootstrapping-data from a Definition, records every
// report-progress and serves boot images.
//
// Agent tests use it in-process (Start, then Reports and Requests); the
// sztp-lab command (RunCLI) runs it for manual and scripted labs. Answers
// are unsigned conveyed information, or, with Definition.Signed, signed data
// (RFC 8572 §3): conveyed information signed by an owner certificate, the
// owner-certificate bag and an ownership voucher from a lab MASA, each
// optionally encrypted to the device. The CMS writers (SignData, EncryptTo)
// are the lab's own, independent of the agent's reader in agent/cms.
package lab
