// Package jwttest is the token issuer of the cloud simulations (gcptest,
// azuretest, vaulttest): it signs JWTs (HS256, with a key of its own) and
// verifies them as a service verifies an identity provider's tokens, so
// that a forged or altered token is refused; and it makes their opaque
// access tokens.
package jwttest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// IssuerURL is the iss claim of every token an Issuer signs.
const IssuerURL = "https://oidc.escfs.test"

// Errors of Verify.
var (
	ErrMalformed = errors.New("not a JWT")
	ErrSignature = errors.New("signature does not verify")
)

// Claims are the claims the simulations check.
type Claims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Exp int64  `json:"exp"`
}

// Expired reports whether the token's exp has passed.
func (c Claims) Expired() bool { return time.Now().Unix() >= c.Exp }

// Issuer signs and verifies tokens with a key of its own.
type Issuer struct{ key []byte }

// New returns an issuer with a new random key.
func New() *Issuer {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	return &Issuer{key: key}
}

// Token returns a JWT from IssuerURL for sub with audience aud, issued now
// and expiring after ttl (negative: already expired).
func (i *Issuer) Token(sub, aud string, ttl time.Duration) string {
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"iss": IssuerURL, "sub": sub, "aud": aud, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix()})
	signing := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64(claims)
	return signing + "." + b64(i.sign(signing))
}

// Verify checks token's signature and returns its claims; the caller
// checks issuer, audience, subject and expiry, as each service words it.
func (i *Issuer) Verify(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, ErrMalformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, i.sign(parts[0]+"."+parts[1])) {
		return Claims{}, ErrSignature
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c Claims
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return Claims{}, ErrMalformed
	}
	return c, nil
}

func (i *Issuer) sign(text string) []byte {
	m := hmac.New(sha256.New, i.key)
	m.Write([]byte(text))
	return m.Sum(nil)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// Opaque returns a new opaque token (an access token, an accessor, an
// ID): prefix and 32 random hex digits.
func Opaque(prefix string) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}
