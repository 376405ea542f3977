package bounded

import (
	"errors"
	"testing"
	"time"
)

// TestCall: a call that returns is waited for and its result taken; one
// that never returns ends the wait with ErrTimeout.
func TestCall(t *testing.T) {
	v, err := Call(time.Minute, func() (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Fatalf("Call = %d, %v", v, err)
	}
	failed := errors.New("failed")
	if err := Do(time.Minute, func() error { return failed }); err != failed {
		t.Fatalf("Do = %v, want the call's own error", err)
	}
	block := make(chan struct{})
	defer close(block)
	done := make(chan error, 1)
	go func() {
		_, err := Call(10*time.Millisecond, func() (int, error) { <-block; return 1, nil })
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("a call that never returns: %v, want ErrTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait on a call that never returns did not end")
	}
}
