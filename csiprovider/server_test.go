package csiprovider_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/escfs/escfs/cloud"
	"github.com/escfs/escfs/cloud/cloudtest"
	"github.com/escfs/escfs/csiprovider"
	"github.com/escfs/escfs/csiprovider/csitest"
	"github.com/escfs/escfs/eval"
	"github.com/escfs/escfs/internal/filetree"
	"github.com/escfs/escfs/providers/gcpclient/gcptest"
)

const authzRules = `allow:
  - namespace: prod
    serviceAccount: web
    environments: [prod/*]
  - namespace: prod
    serviceAccount: batch
    environments: [prod/app]
`

const appDef = `values:
  creds:
    fn::open::token: {ttl: 1h}
  db:
    password: {fn::secret: hunter2}
    port: 5432
  files:
    KUBECONFIG: "apiVersion: v1\nkind: Config\n"
  environmentVariables:
    TOKEN: ${creds.token}
    DB_PASSWORD: ${db.password}
`

var web = csitest.Pod{Namespace: "prod", ServiceAccount: "web"}

func TestVersion(t *testing.T) {
	w := csitest.Start(t, map[string]string{"prod/app.yaml": appDef}, authzRules)
	v, err := w.Client.Version(context.Background(), &v1alpha1.VersionRequest{Version: "v1alpha1"})
	if err != nil || v.RuntimeName != "escfs" || v.RuntimeVersion != "1.2.3" {
		t.Fatalf("Version = %+v, %v", v, err)
	}
}

// TestMountEverything: without objects, the renderings and every files
// entry, each with a content-hash version and the request's mode.
func TestMountEverything(t *testing.T) {
	w := csitest.Start(t, map[string]string{"prod/app.yaml": appDef}, authzRules)
	resp, err := w.Mount(t, web, map[string]string{"environment": "prod/app"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := csitest.Files(resp)
	for _, p := range []string{"env", "dotenv", "values.json", "files/KUBECONFIG"} {
		if got[p] == nil || got[p].Mode != 0o644 {
			t.Errorf("%s: %+v", p, got[p])
		}
	}
	if !strings.Contains(string(got["env"].Contents), "export DB_PASSWORD='hunter2'") ||
		!strings.Contains(string(got["env"].Contents), "export KUBECONFIG='"+csiprovider.DefaultFilesDir+"/KUBECONFIG'") {
		t.Errorf("env:\n%s", got["env"].Contents)
	}
	if string(got["files/KUBECONFIG"].Contents) != "apiVersion: v1\nkind: Config\n" {
		t.Errorf("KUBECONFIG: %q", got["files/KUBECONFIG"].Contents)
	}
	v := csitest.Versions(resp)
	if len(v) != 4 || len(v["env"]) != 24 || v["env"] == v["dotenv"] {
		t.Errorf("versions %v: want a content hash per file", v)
	}
}

// TestObjects: property paths to file names, with modes; and refusals of
// what the driver would refuse to write.
func TestObjects(t *testing.T) {
	w := csitest.Start(t, map[string]string{"prod/app.yaml": appDef}, authzRules)
	objects := `
- render: dotenv
  path: app.env
  mode: "0400"
- property: db.password
  path: db/password
  mode: "0440"
- property: db
  path: db.json
- file: KUBECONFIG
  path: kube/config
`
	resp, err := w.Mount(t, web, map[string]string{"environment": "prod/app", "objects": objects}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := csitest.Files(resp)
	want := map[string]struct {
		content string
		mode    int32
	}{
		"db/password": {"hunter2", 0o440},
		"db.json":     {`{"password":"hunter2","port":5432}`, 0o644},
		"kube/config": {"apiVersion: v1\nkind: Config\n", 0o644},
	}
	for p, w := range want {
		if got[p] == nil || string(got[p].Contents) != w.content || got[p].Mode != w.mode {
			t.Errorf("%s = %+v, want %q mode %o", p, got[p], w.content, w.mode)
		}
	}
	if got["app.env"] == nil || got["app.env"].Mode != 0o400 || len(got) != 4 {
		t.Errorf("files %v", got)
	}
	for name, objects := range map[string]string{
		"traversal":     "- render: env\n  path: ../../etc/cron.d/x\n",
		"absolute":      "- render: env\n  path: /etc/passwd\n",
		"twice":         "- render: env\n  path: a\n- render: dotenv\n  path: a\n",
		"two kinds":     "- render: env\n  file: KUBECONFIG\n",
		"unknown field": "- render: env\n  owner: root\n",
		"bad mode":      "- render: env\n  mode: rwx\n",
	} {
		_, err := w.Mount(t, web, map[string]string{"environment": "prod/app", "objects": objects}, nil)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	_, err = w.Mount(t, web, map[string]string{"environment": "prod/app", "objects": "- property: db.nope\n  path: x\n"}, nil)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), `no value at property path "db.nope"`) {
		t.Errorf("a missing property: %v", err)
	}
}

// TestAuthorization: only what the rules allow mounts; refusals are clear
// PermissionDenied errors, and cost no evaluation.
func TestAuthorization(t *testing.T) {
	files := map[string]string{"prod/app.yaml": appDef, "prod/admin.yaml": appDef, "dev/app.yaml": appDef}
	w := csitest.Start(t, files, authzRules)
	for _, tc := range []struct {
		p   csitest.Pod
		env string
		ok  bool
	}{
		{web, "prod/app", true},
		{web, "prod/admin", true},
		{csitest.Pod{Namespace: "prod", ServiceAccount: "batch"}, "prod/app", true},
		{csitest.Pod{Namespace: "prod", ServiceAccount: "batch"}, "prod/admin", false},
		{csitest.Pod{Namespace: "dev", ServiceAccount: "web"}, "prod/app", false},
		{web, "dev/app", false},
		{csitest.Pod{Namespace: "prod", ServiceAccount: "default"}, "prod/app", false},
	} {
		resp, err := w.Mount(t, tc.p, map[string]string{"environment": tc.env}, nil)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s/%s %s: %v", tc.p.Namespace, tc.p.ServiceAccount, tc.env, err)
		case !tc.ok && (status.Code(err) != codes.PermissionDenied || len(resp.GetFiles()) != 0):
			t.Errorf("%s/%s %s: %v, want PermissionDenied and no files", tc.p.Namespace, tc.p.ServiceAccount, tc.env, err)
		case !tc.ok && !strings.Contains(err.Error(), "service account "+tc.p.Namespace+"/"+tc.p.ServiceAccount+" may not mount environment "+tc.env):
			t.Errorf("refusal %q does not say who and what", err)
		}
	}
	if n := w.Server.Evaluations(); n != 3 {
		t.Errorf("%d evaluations, want 3 (one per allowed service account and environment)", n)
	}
	// Without rules, nothing mounts.
	none := csitest.Start(t, files, "")
	if _, err := none.Mount(t, web, map[string]string{"environment": "prod/app"}, nil); status.Code(err) != codes.PermissionDenied {
		t.Errorf("no rules: %v, want PermissionDenied", err)
	}
}

// TestOneEvaluationPerServiceAccount: 100 pods of one service account cost
// one evaluation; another service account its own.
func TestOneEvaluationPerServiceAccount(t *testing.T) {
	w := csitest.Start(t, map[string]string{"prod/app.yaml": appDef}, authzRules)
	var first string
	for i := range 100 {
		resp, err := w.Mount(t, web, map[string]string{"environment": "prod/app"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v := csitest.Versions(resp)["env"]; i == 0 {
			first = v
		} else if v != first {
			t.Fatalf("mount %d got another evaluation's env", i)
		}
	}
	if n := w.Server.Evaluations(); n != 1 {
		t.Errorf("%d evaluations for 100 pods of one service account, want 1", n)
	}
	resp, err := w.Mount(t, csitest.Pod{Namespace: "prod", ServiceAccount: "batch"}, map[string]string{"environment": "prod/app"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := w.Server.Evaluations(); n != 2 || csitest.Versions(resp)["env"] == first {
		t.Errorf("another service account: %d evaluations, same env %v; want its own", n, csitest.Versions(resp)["env"] == first)
	}
}

// TestRotation: the driver's rotation polls get the same versions while
// the credentials are fresh, new ones after their refresh point, and never
// expired credentials, over 3 lifetimes.
func TestRotation(t *testing.T) {
	const ttl = 3 * time.Second
	def := strings.Replace(appDef, "ttl: 1h", "ttl: 3s", 1) + "    EXPIRES: ${creds.expiresAt}\n"
	w := csitest.Start(t, map[string]string{"prod/app.yaml": def}, authzRules)
	current := map[string]string{}
	seen := map[string]bool{}
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		at := time.Now()
		resp, err := w.Mount(t, web, map[string]string{"environment": "prod/app", "objects": "- render: dotenv\n"}, current)
		if err != nil {
			t.Fatal(err)
		}
		var expires time.Time
		for _, line := range strings.Split(string(csitest.Files(resp)["dotenv"].Contents), "\n") {
			if v, ok := strings.CutPrefix(line, "EXPIRES="); ok {
				expires, _ = time.Parse(time.RFC3339Nano, strings.Trim(v, `'"`))
			}
		}
		if !expires.After(at) {
			t.Fatalf("a Mount at %v returned credentials that expire at %v", at, expires)
		}
		// Renewed at two thirds of their life: a pod never gets less than
		// a third (less the Mount's own time) to last until the next poll.
		if left := expires.Sub(at); left < ttl/4 {
			t.Fatalf("a Mount returned credentials with %v left of %v", left, ttl)
		}
		current = csitest.Versions(resp)
		seen[current["dotenv"]] = true
	}
	if len(seen) < 3 {
		t.Errorf("%d versions over 3 lifetimes, want a renewal in each", len(seen))
	}
}

// TestDefinitionChanges: an edit reaches the next Mount; a definition that
// breaks fails the Mount (the driver then leaves the pod's files as they
// were) with the located error.
func TestDefinitionChanges(t *testing.T) {
	w := csitest.Start(t, map[string]string{"prod/app.yaml": appDef}, authzRules)
	params := map[string]string{"environment": "prod/app", "objects": "- property: db.port\n  path: port\n"}
	resp, err := w.Mount(t, web, params, nil)
	if err != nil || string(csitest.Files(resp)["port"].Contents) != "5432" {
		t.Fatalf("first mount: %v", err)
	}
	path := filepath.Join(w.Dir, "prod/app.yaml")
	os.WriteFile(path, []byte(strings.Replace(appDef, "5432", "6432", 1)), 0o644)
	waitFor(t, func() bool {
		resp, err := w.Mount(t, web, params, nil)
		return err == nil && string(csitest.Files(resp)["port"].Contents) == "6432"
	})
	os.WriteFile(path, []byte("values: {broken: ${nope}\n"), 0o644)
	waitFor(t, func() bool {
		_, err := w.Mount(t, web, params, nil)
		return err != nil
	})
	_, err = w.Mount(t, web, params, nil)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), path+":1:") {
		t.Errorf("a broken definition: %v, want its located error", err)
	}
}

// TestPodIdentity: the pod's service-account token is the subject token of
// gcp-login's oidc form (no token or tokenFile in the definition): each
// pod's own token reaches STS, and the result is cached per service account.
func TestPodIdentity(t *testing.T) {
	g := gcptest.New(t)
	g.AddProvider("k8s", "cluster")
	g.AllowImpersonation("web@acme.iam.gserviceaccount.com")
	g.SetEnv(t)
	t.Setenv("GOOGLE_OIDC_TOKEN_FILE", "")
	def := `values:
  gcp:
    fn::open::gcp-login:
      project: 123456789
      oidc: {workloadPoolId: k8s, providerId: cluster, serviceAccount: web@acme.iam.gserviceaccount.com}
  environmentVariables:
    TOKEN: ${gcp.accessToken}
`
	w := csitest.Start(t, map[string]string{"prod/gcp.yaml": def}, authzRules)
	audience := "https:" + g.Audience("k8s", "cluster")
	webToken := g.SubjectToken("k8s", "cluster", "system:serviceaccount:prod:web", "", time.Hour)
	batchToken := g.SubjectToken("k8s", "cluster", "system:serviceaccount:prod:batch", "", time.Hour)
	for _, p := range []csitest.Pod{
		{Namespace: "prod", ServiceAccount: "web", Tokens: map[string]string{audience: webToken, "vault": "other-audience-token"}},
		{Namespace: "prod", ServiceAccount: "web", Tokens: map[string]string{audience: webToken}},
		{Namespace: "prod", ServiceAccount: "batch", Tokens: map[string]string{audience: batchToken}},
	} {
		if _, err := w.Mount(t, p, map[string]string{"environment": "prod/gcp"}, nil); (err == nil) != (p.ServiceAccount == "web") {
			t.Errorf("%s: %v", p.ServiceAccount, err)
		}
	}
	subjects := g.Subjects()
	if len(subjects) != 1 || subjects[0] != webToken {
		t.Errorf("STS saw %d subject tokens, want web's once (batch may not mount prod/gcp)", len(subjects))
	}
	// Without the pod's token there is nothing to log in with.
	if _, err := w.Mount(t, csitest.Pod{Namespace: "prod", ServiceAccount: "web-2"}, map[string]string{"environment": "prod/gcp"}, nil); status.Code(err) != codes.PermissionDenied {
		t.Errorf("web-2: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
	}
}

// TestConfigMapLayout: definitions in a ConfigMap volume (as the provider's
// DaemonSet mounts them): each publish the kubelet makes (a new timestamped
// directory, ..data swapped) reaches the next Mount.
func TestConfigMapLayout(t *testing.T) {
	w := csitest.Start(t, nil, authzRules)
	cm := &filetree.ConfigMap{Dir: filepath.Join(w.Dir, "prod")}
	params := map[string]string{"environment": "prod/app", "objects": "- property: db.port\n  path: port\n"}
	for _, port := range []string{"5432", "6432", "7432"} {
		cm.Publish(t, map[string]string{"app.yaml": strings.Replace(appDef, "5432", port, 1)})
		waitFor(t, func() bool {
			resp, err := w.Mount(t, web, params, nil)
			return err == nil && string(csitest.Files(resp)["port"].Contents) == port
		})
	}
}

// TestCloud: with Pulumi Cloud as the source (escfs --cloud csi-provider),
// Mounts serve the Store's snapshots, one evaluation (an open at the
// service) for every pod, and the authorization rules still hold.
func TestCloud(t *testing.T) {
	sim := cloudtest.Start(t, cloudtest.Options{})
	sim.Put("acme", "prod/app", "values:\n  db: {port: 5432}\n  environmentVariables:\n    PORT: ${db.port}\n")
	src, err := cloud.New(context.Background(), cloud.Config{URL: sim.URL, Token: sim.Token(), Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	store, err := eval.NewStore(eval.StoreOptions{Source: src, FilesDir: func(eval.Name) string { return csiprovider.DefaultFilesDir }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	w := csitest.Serve(t, csiprovider.New(csiprovider.Options{Store: store, Shared: true, Authz: csitest.Authz(t, authzRules)}))
	for _, sa := range []string{"web", "batch"} {
		resp, err := w.Mount(t, csitest.Pod{Namespace: "prod", ServiceAccount: sa}, map[string]string{"environment": "prod/app"}, nil)
		if err != nil || !strings.Contains(string(csitest.Files(resp)["dotenv"].Contents), "PORT=5432") {
			t.Fatalf("%s: %v", sa, err)
		}
	}
	if n := sim.Requests(cloudtest.Open); n != 1 {
		t.Errorf("%d opens at the service for 2 service accounts, want 1", n)
	}
	if _, err := w.Mount(t, csitest.Pod{Namespace: "dev", ServiceAccount: "web"}, map[string]string{"environment": "prod/app"}, nil); status.Code(err) != codes.PermissionDenied {
		t.Errorf("dev/web: %v, want PermissionDenied", err)
	}
}
