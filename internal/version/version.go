// Package version holds the build's version string, stamped at link time:
//
//	go build -ldflags "-X github.com/sztp-agent/sztp-agent/internal/version.Version=$(git describe)"
package version

import "time"

// Version is the agent's version. "dev" means an unstamped build.
var Version = "dev"

// BuildTime is the build's time as RFC 3339, stamped at link time. The agent
// treats a system clock earlier than this as implausible.
var BuildTime = ""

// UserAgent is what the agent sends as its HTTP User-Agent.
func UserAgent() string { return "sztp-agent/" + Version }

// Built returns BuildTime parsed, or the zero time when it is unset or bad.
func Built() time.Time {
	t, err := time.Parse(time.RFC3339, BuildTime)
	if err != nil {
		return time.Time{}
	}
	return t
}
