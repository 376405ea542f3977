package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/escfs/escfs/internal/kumotest"
)

// kmsProxy stands in front of kumo's KMS: a kumotest.Recorder (every
// call, by operation and key, with the region it is signed for and its
// encryption context) that answers Decrypt for the keys in deny with AWS's
// AccessDeniedException.
type kmsProxy struct {
	*kumotest.Recorder

	mu   sync.Mutex
	seen []kumotest.Call // GUARDED_BY(mu): the calls taken from the recorder
	deny map[string]bool // GUARDED_BY(mu); KeyIds whose Decrypt is denied
}

func newKMSProxy(t *testing.T, kumo string) *kmsProxy {
	t.Helper()
	next := kumotest.ProxyTo(t, kumo)
	p := &kmsProxy{deny: map[string]bool{}}
	p.Recorder = kumotest.NewRecorder(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req struct{ KeyId string }
		json.Unmarshal(body, &req)
		p.mu.Lock()
		denied := kumotest.Operation(r) == "Decrypt" && p.deny[req.KeyId]
		p.mu.Unlock()
		if denied {
			kumotest.AWSError(http.StatusBadRequest, "AccessDeniedException", "User: arn:aws:iam::000000000000:user/ci is not authorized to perform: kms:Decrypt on resource: "+req.KeyId)(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}))
	return p
}

// calls returns the calls since the last reset.
func (p *kmsProxy) calls() []kumotest.Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, p.Take()...)
	return slices.Clone(p.seen)
}

// reset forgets the calls so far.
func (p *kmsProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Take()
	p.seen = nil
}

// count returns how many op calls (for key, or for any key if "") were made.
func (p *kmsProxy) count(op, key string) int {
	n := 0
	for _, c := range p.calls() {
		_, o, _ := strings.Cut(c.Target, ".")
		if id, _ := c.Body["KeyId"].(string); o == op && (key == "" || id == key) {
			n++
		}
	}
	return n
}

func (p *kmsProxy) denyDecrypt(arn string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deny[arn] = true
}

// kmsEnv starts kumo, puts a kmsProxy in front of it and points the SDK's
// KMS calls (and only those) at the proxy with dummy credentials, in a
// region other than the keys'. It returns the proxy and a client that
// manages keys in kumo directly.
func kmsEnv(t *testing.T) (*kmsProxy, *kms.Client) {
	t.Helper()
	kumo := kumotest.Start(t)
	proxy := newKMSProxy(t, kumo)
	kumotest.Env(t, kumotest.ClosedURL(t)) // any call but KMS fails
	t.Setenv("AWS_ENDPOINT_URL_KMS", proxy.URL)
	t.Setenv("AWS_REGION", "eu-west-3") // the keys are in kumo's us-east-1: the ARN's region must win
	admin := kms.New(kms.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(kumo),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAKUMOTEST", "kumo-test-secret", ""),
	})
	return proxy, admin
}

// createKey makes a symmetric key in kumo, with an alias, and returns its
// ARN.
func createKey(t *testing.T, admin *kms.Client, alias string) string {
	t.Helper()
	ctx := context.Background()
	out, err := admin.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("escfs test " + alias)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/" + alias), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// TestKMSRoundTrip: values sealed to a KMS key decrypt with a fresh Keyring
// that has no age identity, over real HTTP to kumo, with one KMS Encrypt for
// the Sealer and one KMS Decrypt for all its values, signed for the key's
// region.
func TestKMSRoundTrip(t *testing.T) {
	ctx := context.Background()
	proxy, admin := kmsEnv(t)
	arn := createKey(t, admin, "escfs-roundtrip")

	sealer, err := newKeyring(t, KeyringOptions{}).NewSealer(ctx, []string{arn})
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	var values [][]byte
	for i := range n {
		v, err := sealer.For(testBinding).Encrypt(ctx, fmt.Appendf(nil, "kms-value-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, v)
	}
	if got := proxy.count("Encrypt", arn); got != 1 {
		t.Fatalf("%d values sealed: %d KMS Encrypt calls, want 1", n, got)
	}
	if recs, _ := EnvelopeRecipients(values[0]); len(recs) != 1 || recs[0] != arn {
		t.Fatalf("EnvelopeRecipients = %v", recs)
	}

	k := newKeyring(t, KeyringOptions{})
	for i, v := range values {
		got, err := k.Decrypt(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("kms-value-%d", i); string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if got := proxy.count("Decrypt", ""); got != 1 {
		t.Fatalf("%d values of one Sealer: %d KMS Decrypt calls, want 1", n, got)
	}
	for _, c := range proxy.calls() {
		if c.Region != "us-east-1" {
			t.Errorf("a call signed for %s, want the key's region us-east-1 only", c.Region)
		}
		if _, op, _ := strings.Cut(c.Target, "."); op != "Encrypt" && op != "Decrypt" {
			continue
		}
		if ctx, _ := c.Body["EncryptionContext"].(map[string]any); ctx["escfs"] != "age-file-key" || len(ctx) != 1 {
			t.Errorf("encryption context %v, want escfs=age-file-key", c.Body["EncryptionContext"])
		}
	}
}

// TestKMSErrors: a denied key, a disabled key and an unreachable endpoint
// each fail with AWS's code and message (or what went wrong) and the key's
// ARN, in bounded time, and never with the plaintext.
func TestKMSErrors(t *testing.T) {
	ctx := context.Background()
	proxy, admin := kmsEnv(t)
	denied := createKey(t, admin, "escfs-denied")
	disabled := createKey(t, admin, "escfs-disabled")
	unreachable := createKey(t, admin, "escfs-unreachable")
	sealed := map[string][]byte{}
	for _, arn := range []string{denied, disabled, unreachable} {
		sealed[arn] = seal(t, []string{arn}, "do-not-leak")[0]
	}
	proxy.denyDecrypt(denied)
	if _, err := admin.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(disabled)}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		arn      string
		endpoint string   // for AWS_ENDPOINT_URL_KMS, "" for the proxy
		code     string   // the KMSError's code
		want     []string // in the message
	}{
		{"access denied", denied, "", "AccessDeniedException", []string{"kms:Decrypt: AccessDeniedException: User: arn:aws:iam::000000000000:user/ci is not authorized"}},
		{"disabled key", disabled, "", "DisabledException", []string{"kms:Decrypt: DisabledException: ", "is disabled"}},
		{"unreachable endpoint", unreachable, kumotest.ClosedURL(t), "", []string{"kms:Decrypt: endpoint unreachable", "connection refused", "gave up after"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.endpoint != "" {
				t.Setenv("AWS_ENDPOINT_URL_KMS", tt.endpoint)
			}
			start := time.Now()
			_, err := newKeyring(t, KeyringOptions{}).Decrypt(ctx, sealed[tt.arn])
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("took %v", took)
			}
			var kmsErr *KMSError
			if !errors.Is(err, ErrNoMatchingKey) || !errors.As(err, &kmsErr) {
				t.Fatalf("err = %v, want ErrNoMatchingKey holding a *KMSError", err)
			}
			if kmsErr.Code != tt.code || kmsErr.KeyARN != tt.arn || kmsErr.Op != "kms:Decrypt" {
				t.Errorf("KMSError %+v, want code %q for %s", kmsErr, tt.code, tt.arn)
			}
			msg := err.Error()
			for _, want := range append(tt.want, "AWS KMS key "+tt.arn+": ", "encrypted to "+tt.arn) {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not hold %q", msg, want)
				}
			}
			if strings.Contains(msg, "do-not-leak") {
				t.Errorf("error holds the plaintext: %s", msg)
			}
		})
	}

	t.Run("sealing to a disabled key", func(t *testing.T) {
		_, err := newKeyring(t, KeyringOptions{}).NewSealer(ctx, []string{disabled})
		var kmsErr *KMSError
		if !errors.As(err, &kmsErr) || kmsErr.Code != "DisabledException" || kmsErr.Op != "kms:Encrypt" || !strings.Contains(err.Error(), disabled) {
			t.Fatalf("err = %v, want a kms:Encrypt DisabledException for %s", err, disabled)
		}
	})
}

// TestKMSAndAge: with age and KMS recipients, an age identity is tried
// first (no KMS call), a foreign age identity or a broken one does not stop
// KMS, and any one KMS key of several decrypts when another is denied.
func TestKMSAndAge(t *testing.T) {
	ctx := context.Background()
	proxy, admin := kmsEnv(t)
	arn1 := createKey(t, admin, "escfs-one")
	arn2 := createKey(t, admin, "escfs-two")
	idPath, rec := newIdentity(t)
	foreignPath, _ := newIdentity(t)

	tests := []struct {
		name        string
		recipients  []string
		deny        []string
		opts        KeyringOptions
		wantErr     bool
		wantDecrypt int // KMS Decrypt calls
	}{
		{"age identity matches: KMS is not asked", []string{rec, arn1}, nil,
			KeyringOptions{IdentitiesFile: idPath}, false, 0},
		{"age identity matches, KMS key denied", []string{arn1, rec}, []string{arn1},
			KeyringOptions{IdentitiesFile: idPath}, false, 0},
		{"foreign age identity: KMS decrypts", []string{rec, arn1}, nil,
			KeyringOptions{IdentitiesFile: foreignPath}, false, 1},
		{"broken extra identity: KMS decrypts", []string{rec, arn1}, nil,
			KeyringOptions{IdentitiesFile: foreignPath, Identities: []age.Identity{&failingIdentity{}}}, false, 1},
		{"first KMS key denied: the second decrypts", []string{arn1, arn2}, []string{arn1},
			KeyringOptions{}, false, 2},
		{"every key fails", []string{rec, arn1, arn2}, []string{arn1, arn2},
			KeyringOptions{IdentitiesFile: foreignPath}, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := seal(t, tt.recipients, "both")[0]
			proxy.reset()
			proxy.mu.Lock()
			clear(proxy.deny)
			proxy.mu.Unlock()
			for _, arn := range tt.deny {
				proxy.denyDecrypt(arn)
			}
			got, err := newKeyring(t, tt.opts).Decrypt(ctx, inner)
			if n := proxy.count("Decrypt", ""); n != tt.wantDecrypt {
				t.Errorf("%d KMS Decrypt calls, want %d", n, tt.wantDecrypt)
			}
			if !tt.wantErr {
				if err != nil || string(got) != "both" {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			}
			var nm *NoMatchingKeyError
			if !errors.As(err, &nm) || len(nm.Failures) != 2 {
				t.Fatalf("err = %v, want a NoMatchingKeyError with two KMS failures", err)
			}
			for _, want := range []string{rec, arn1, arn2, "AccessDeniedException", "no age identity in " + displayPath(foreignPath) + " matches"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not hold %q", err, want)
				}
			}
		})
	}
}

// TestKMSRegionClients: one client per region, made once.
func TestKMSRegionClients(t *testing.T) {
	var asked []string
	k := newKeyring(t, KeyringOptions{AWSConfig: func(_ context.Context, region string) (aws.Config, error) {
		asked = append(asked, region)
		return aws.Config{Region: region}, nil
	}})
	for _, region := range []string{"eu-west-1", "us-east-1", "eu-west-1"} {
		c, err := k.kmsClient(context.Background(), region)
		if err != nil || c.Options().Region != region {
			t.Fatalf("%s: %v, %v", region, c, err)
		}
	}
	if strings.Join(asked, ",") != "eu-west-1,us-east-1" {
		t.Fatalf("configurations loaded for %v", asked)
	}
	for arn, want := range map[string]string{
		"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab": "eu-west-1",
		"arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234":                  "us-gov-west-1",
		"arn:aws:kms:ap-south-2:111122223333:alias/team/prod":                         "ap-south-2",
		"arn:aws:kms:eu-west-1:1111:key/x":                                            "",
		"arn:aws:s3:::bucket":                                                         "",
	} {
		if got, _ := kmsRegion(arn); got != want {
			t.Errorf("kmsRegion(%s) = %q, want %q", arn, got, want)
		}
	}
}
