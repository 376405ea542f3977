package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/pulumi/esc"
)

// MaxTokenSize bounds what is read from a token file: far above any JWT a
// cloud accepts (STS takes up to 20,000 characters).
const MaxTokenSize = 1 << 20

// SubjectToken returns the token of a login form that proves its identity
// with one (an OIDC token, a JWT): the form's token input, or the content
// of its tokenFile input, by default the file that the environment
// variable envVar names (AWS_WEB_IDENTITY_TOKEN_FILE,
// AZURE_FEDERATED_TOKEN_FILE, ...). The file is reported to the evaluation
// (ReportFile), as its token is rotated. envVar "" means no default. Errors name the file, never the
// token.
//
// When the evaluation is for a Kubernetes pod (WithPodTokens), the pod's
// service-account token is the default instead, before envVar's file: the
// one token, or the one whose audience is among audiences.
func SubjectToken(ctx context.Context, in map[string]esc.Value, envVar string, audiences ...string) (string, error) {
	token, err := String(in, "token")
	if err != nil {
		return "", err
	}
	file, err := String(in, "tokenFile")
	if err != nil {
		return "", err
	}
	switch {
	case token != "" && file != "":
		return "", errors.New("give token or tokenFile, not both")
	case token != "":
		if token = strings.TrimSpace(token); token == "" {
			return "", errors.New("token is blank")
		}
		return token, nil
	case file == "":
		// A pod's own token, when the evaluation is for a pod (the CSI
		// provider), comes before the process's default file.
		if t, ok, err := podToken(ctx, audiences); ok || err != nil {
			return t, err
		}
		if envVar == "" {
			return "", errors.New("no token: set token or tokenFile")
		}
		if file = os.Getenv(envVar); file == "" {
			return "", fmt.Errorf("no token: set token or tokenFile, or %s", envVar)
		}
	}
	// The file's token changes as it is rotated, and a missing file may
	// appear: either way the environment is worth evaluating again.
	ReportFile(ctx, file)
	b, err := ReadLimited(file, MaxTokenSize)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	if token = strings.TrimSpace(string(b)); token == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return token, nil
}

// ReadLimited reads the file at path, failing if it holds more than limit
// bytes. Its errors name the path.
func ReadLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err // an *os.PathError
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// RequiredString returns the string input at key, failing if it is absent
// or empty.
func RequiredString(in map[string]esc.Value, key string) (string, error) {
	s, err := String(in, key)
	if err == nil && s == "" {
		err = fmt.Errorf("%s is required", key)
	}
	return s, err
}

// KnownObject returns the object input at key (nil if absent), failing if
// it holds an input not in known.
func KnownObject(inputs map[string]esc.Value, key string, known ...string) (map[string]esc.Value, error) {
	in, err := Object(inputs, key)
	if err != nil || in == nil {
		return in, err
	}
	if err := CheckKnown(in, known); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return in, nil
}

// StringList returns the array of strings at key, or nil if it is absent
// or null.
func StringList(in map[string]esc.Value, key string) ([]string, error) {
	v, ok := in[key]
	if !ok || v.Value == nil {
		return nil, nil
	}
	items, ok := v.Value.([]esc.Value)
	if !ok {
		return nil, fmt.Errorf("input %q must be an array of strings", key)
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		s, ok := item.Value.(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("input %q: item %d must be a non-empty string", key, i)
		}
		out = append(out, s)
	}
	return out, nil
}

// IsSecret reports whether the input at key is marked secret. The registry
// scrubs a secret input, and a URL's host, from a provider's errors
// (Scrubbed); a provider that prints something else built from one (a
// path with segments inserted) names it by key instead.
func IsSecret(in map[string]esc.Value, key string) bool {
	v, ok := in[key]
	return ok && v.Secret
}

// podTokensKey is the context key of a pod's service-account tokens.
type podTokensKey struct{}

// WithPodTokens returns a context whose evaluation is for a pod holding
// tokens (audience -> token), as the Secrets Store CSI Driver hands them
// over: login forms without token or tokenFile use them.
func WithPodTokens(ctx context.Context, tokens map[string]string) context.Context {
	return context.WithValue(ctx, podTokensKey{}, tokens)
}

// podToken returns the pod's token for one of audiences (or its only
// token), if the evaluation is for a pod.
func podToken(ctx context.Context, audiences []string) (string, bool, error) {
	tokens, _ := ctx.Value(podTokensKey{}).(map[string]string)
	if len(tokens) == 0 {
		return "", false, nil
	}
	for _, a := range audiences {
		if t, ok := tokens[a]; ok {
			return t, true, nil
		}
	}
	if len(tokens) == 1 {
		for _, t := range tokens {
			return t, true, nil
		}
	}
	names := make([]string, 0, len(tokens))
	for a := range tokens {
		names = append(names, a)
	}
	slices.Sort(names)
	return "", false, fmt.Errorf("the pod has tokens for several audiences (%s) and none this login uses (%s): set token or tokenFile", strings.Join(names, ", "), strings.Join(audiences, ", "))
}
