package providers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// CallTimeout bounds one provider's calls to its service, retries included.
const CallTimeout = 30 * time.Second

// WithCallTimeout bounds ctx by CallTimeout.
func WithCallTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, CallTimeout)
}

// MaxMessage bounds a service's message quoted in an error: an answer is
// not a place to print pages from.
const MaxMessage = 512

// Bound returns s cut to MaxMessage bytes (on a rune boundary, with "...").
func Bound(s string) string {
	if len(s) <= MaxMessage {
		return s
	}
	return strings.ToValidUTF8(s[:MaxMessage], "") + "..."
}

// DescribeTransport describes an error that never reached the service,
// "OP: endpoint unreachable: ..." or "OP: no answer within 30s", and
// returns nil for any other error.
func DescribeTransport(op string, err error) error {
	var netErr *net.OpError
	switch {
	case errors.As(err, &netErr):
		return fmt.Errorf("%s: endpoint unreachable: %v", op, netErr)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: no answer within %v", op, CallTimeout)
	}
	return nil
}
