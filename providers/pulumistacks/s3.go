package pulumistacks

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/escfs/escfs/internal/safehttp"
	"github.com/escfs/escfs/providers"
	"github.com/escfs/escfs/providers/awsclient"
)

// s3Store is the store of an s3:// backend: a bucket, or a prefix in one.
type s3Store struct {
	client *s3.Client
	bucket string
	prefix string // "" or ending in "/"
}

// newS3Backend opens s3://BUCKET[/PREFIX] with the query parameters the
// Pulumi CLI (through gocloud) accepts: region, profile, endpoint (a URL, or
// a host with disableSSL/disable_https for plain HTTP), and
// s3ForcePathStyle/use_path_style. Without an endpoint parameter the SDK's
// own configuration applies (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, ...).
// With any custom endpoint, addressing is path-style unless
// s3ForcePathStyle=false.
func newS3Backend(ctx context.Context, raw string) (Backend, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", raw, err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("backend %s: no bucket", raw)
	}
	q := u.Query()
	endpoint := q.Get("endpoint")
	if endpoint != "" && !strings.Contains(endpoint, "://") {
		scheme := "https://"
		if truthy(q.Get("disableSSL")) || truthy(q.Get("disable_https")) {
			scheme = "http://"
		}
		endpoint = scheme + endpoint
	}
	cfg, err := awsclient.Load(ctx, awsclient.Options{Region: q.Get("region"), Profile: q.Get("profile")})
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", raw, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	custom := endpoint != "" || cfg.BaseEndpoint != nil ||
		os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	pathStyle := custom
	for _, name := range []string{"s3ForcePathStyle", "use_path_style"} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("backend %s: %s=%q: want true or false", raw, name, v)
			}
			pathStyle = b
		}
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
		// S3-compatible stores (MinIO, emulators) may send no checksums: no log line per read.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &diyBackend{url: raw, store: &s3Store{client: client, bucket: u.Host, prefix: prefix}}, nil
}

func truthy(s string) bool {
	b, _ := strconv.ParseBool(s)
	return b
}

func (s *s3Store) key(k string) string { return s.prefix + k }

func (s *s3Store) where(k string) string { return "s3://" + s.bucket + "/" + s.key(k) }

func (s *s3Store) watch(context.Context, string) {}

// modTimes lists the keys under the longest common prefix of keys, as the
// CLI does to pick a checkpoint's compression variant. If listing is not
// allowed, it assumes the first key exists, as the CLI does, and reading it
// tells.
func (s *s3Store) modTimes(ctx context.Context, keys []string) (map[string]time.Time, error) {
	prefix := keys[0]
	for _, k := range keys[1:] {
		for !strings.HasPrefix(k, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	want := map[string]string{}
	for _, k := range keys {
		want[s.key(k)] = k
	}
	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	out, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.key(prefix)),
	})
	if err != nil {
		if awsclient.ErrorCode(err) == "NoSuchBucket" {
			return nil, awsclient.Describe("s3:ListObjectsV2", err)
		}
		return map[string]time.Time{keys[0]: {}}, nil
	}
	times := map[string]time.Time{}
	for _, o := range out.Contents {
		if k, ok := want[aws.ToString(o.Key)]; ok {
			times[k] = aws.ToTime(o.LastModified)
		}
	}
	return times, nil
}

func (s *s3Store) read(ctx context.Context, k string) ([]byte, error) {
	ctx, cancel := providers.WithCallTimeout(ctx)
	defer cancel()
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.key(k)),
	})
	if err != nil {
		if awsclient.ErrorCode(err) == "NoSuchKey" {
			return nil, notExist{awsclient.Describe("s3:GetObject", err)}
		}
		return nil, awsclient.Describe("s3:GetObject", err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxCheckpointBytes+1))
	if err != nil {
		return nil, awsclient.Describe("s3:GetObject", err)
	}
	if len(data) > maxCheckpointBytes {
		return nil, fmt.Errorf("larger than %d MiB", maxCheckpointBytes>>20)
	}
	return data, nil
}

// notExist is an error of a missing object: it keeps the AWS message and
// is os.ErrNotExist.
type notExist struct{ err error }

func (e notExist) Error() string        { return e.err.Error() }
func (e notExist) Is(target error) bool { return target == os.ErrNotExist }

// checkNamedBackend refuses a backend URL that a definition names (rather
// than the user's PULUMI_BACKEND_URL or login) when it would send the
// user's AWS credentials to an endpoint the user did not configure: an
// s3:// URL's endpoint parameter must be a host the user allowed
// (ESCFS_ALLOW_HOSTS, --allow-host) or the one their AWS configuration
// names (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL), and plain HTTP only on
// loopback. Pulumi Cloud URLs are pulumiaccount.Current's to check (the
// token goes only to the configured Cloud).
func checkNamedBackend(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "s3") {
		return nil
	}
	q := u.Query()
	endpoint := q.Get("endpoint")
	if endpoint == "" {
		return nil
	}
	if !strings.Contains(endpoint, "://") {
		scheme := "https://"
		if truthy(q.Get("disableSSL")) || truthy(q.Get("disable_https")) {
			scheme = "http://"
		}
		endpoint = scheme + endpoint
	}
	e, err := url.Parse(endpoint)
	if err != nil || e.Host == "" {
		return fmt.Errorf("backend %s: endpoint %q is not a URL", u.Redacted(), endpoint)
	}
	if err := safehttp.CheckScheme(e); err != nil {
		return fmt.Errorf("backend %s: %w", u.Redacted(), err)
	}
	if safehttp.Allowed(e) {
		return nil
	}
	for _, v := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		if c, err := url.Parse(os.Getenv(v)); err == nil && c.Host != "" && safehttp.Origin(c) == safehttp.Origin(e) {
			return nil
		}
	}
	return fmt.Errorf("backend %s: refused to send your AWS credentials to %s, an endpoint only the definition names: allow it with --allow-host %s (or %s) if it is yours, or configure it as AWS_ENDPOINT_URL_S3",
		u.Redacted(), safehttp.Origin(e), e.Host, safehttp.AllowHostsEnv)
}
