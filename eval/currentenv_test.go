package eval

import (
	"strings"
	"testing"
)

// TestCurrentEnvironmentNameIsCanonical: ${context.currentEnvironment.name}
// is "project/env" in every environment of an evaluation, imported ones
// too, however the import is written; ${imports.base} keeps the key as
// written, and an escaped $${...} stays literal.
func TestCurrentEnvironmentNameIsCanonical(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"base.yaml": "values:\n  baseName: ${context.currentEnvironment.name}\n  baseRoot: ${context.rootEnvironment.name}\n" +
			"  quoted: \"at ${context.currentEnvironment.name}!\"\n  escaped: $${context.currentEnvironment.name}\n  dollars4: $$$${context.currentEnvironment.name}\n  dollars5: $$$$${context.currentEnvironment.name}\n",
		"proj/svc.yaml": "values:\n  svcName: \"${context.currentEnvironment.name}\"\n",
		"app.yaml": "imports:\n  - base\n  - proj/svc\nvalues:\n  appName: ${context.currentEnvironment.name}\n" +
			"  viaImports: ${imports.base.baseName}\n  svcViaImports: ${imports[\"proj/svc\"].svcName}\n",
	})
	snap, err := evaluate(t, testEvaluator(), dir, "app")
	if err != nil {
		t.Fatal(err)
	}
	got := compactJSON(t, snap.ValuesJSON)
	for _, want := range []string{
		`"appName":"default/app"`,
		`"baseName":"default/base"`,
		`"baseRoot":"default/app"`,
		`"quoted":"at default/base!"`,
		`"escaped":"${context.currentEnvironment.name}"`,
		`"dollars4":"$${context.currentEnvironment.name}"`,
		`"dollars5":"$$default/base"`,
		`"svcName":"proj/svc"`,
		`"viaImports":"default/base"`,
		`"svcViaImports":"proj/svc"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("values lack %s:\n%s", want, got)
		}
	}
}
