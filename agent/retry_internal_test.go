package agent

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sztp-agent/sztp-agent/agent/restconf"
)

func TestRetryAfterFoundInJoinedErrors(t *testing.T) {
	err := joinErrors([]error{
		fmt.Errorf("a: %w", &restconf.StatusError{StatusCode: 503, RetryAfter: 30 * time.Second}),
		errors.New("b: connection refused"),
		fmt.Errorf("c: %w", joinErrors([]error{&restconf.StatusError{StatusCode: 429, RetryAfter: 2 * time.Minute}, errors.New("x")})),
	})
	if got := retryAfter(err); got != 2*time.Minute {
		t.Errorf("retryAfter = %v, want the longest, 2m", got)
	}
	if got := retryAfter(errors.New("plain")); got != 0 {
		t.Errorf("retryAfter of a plain error = %v", got)
	}
}
