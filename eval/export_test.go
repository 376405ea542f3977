package eval

// What the external tests of this directory (package eval_test) share with
// its internal ones.
var (
	TestEvaluator = testEvaluator
	EvaluateDir   = evaluate
	CheckDiags    = checkDiags
	CheckSource   = checkSource
)

// WantDiag is an expected diagnostic (see checkDiags).
type WantDiag = wantDiag

// Want returns the expected diagnostic of file (relative to the
// definitions directory) at line:col whose message holds msg.
func Want(file string, line, col int, sev Severity, msg string) WantDiag {
	return wantDiag{file, line, col, sev, msg}
}
