package awsclient

import (
	"context"
	"strings"
	"testing"
)

// TestRegionsCannotMoveRequests: a region a definition names must be a
// region name; one that would make the SDK's host another (a '#' or '/'
// ending the host, a dot adding labels, a port) is refused before any
// request.
func TestRegionsCannotMoveRequests(t *testing.T) {
	for _, tt := range []struct {
		region string
		ok     bool
	}{
		{"us-east-1", true},
		{"us-gov-west-1", true},
		{"eu-isoe-west-1", true},
		{"evil.example.com#", false},
		{"evil.example.com", false},
		{"a/b", false},
		{"127.0.0.1:9", false},
		{"US-EAST-1", false},
		{"-us", false},
		{"us--east", false},
		{strings.Repeat("a", 64), false},
	} {
		if got := ValidRegion(tt.region); got != tt.ok {
			t.Errorf("ValidRegion(%q) = %v, want %v", tt.region, got, tt.ok)
		}
		_, err := Load(context.Background(), Options{Region: tt.region, Anonymous: true})
		if (err == nil) != tt.ok {
			t.Errorf("Load(region %q): %v", tt.region, err)
		}
		if err != nil && !strings.Contains(err.Error(), "is not an AWS region name") {
			t.Errorf("Load(region %q): %v", tt.region, err)
		}
	}
}
