package secrets

// testBinding is the binding of the values the tests seal.
var testBinding = Binding{Env: "test/env", Path: "value"}
