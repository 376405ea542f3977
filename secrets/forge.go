package secrets

import (
	"bytes"
	"crypto/rand"
	"fmt"

	"filippo.io/age"
)

// stanzaRecipient is an age recipient that writes the stanzas it is given:
// how an attacker forges an envelope of KMS stanzas for keys of their
// choosing (only public information is needed).
type stanzaRecipient struct{ stanzas []*age.Stanza }

func (r stanzaRecipient) Wrap([]byte) ([]*age.Stanza, error) { return r.stanzas, nil }

// ForgeKMSEnvelope returns what anyone who can write a definition can
// write, for the tests and the torture suite that prove it harmless: a
// version-2 envelope bound to b whose wrapped key holds n escfs-awskms
// stanzas for made-up key ARNs in us-east-1 (each listed repeat times),
// which no key opens.
func ForgeKMSEnvelope(b Binding, n, repeat int) ([]byte, error) {
	var stanzas []*age.Stanza
	var arns []string
	for i := range n {
		arn := fmt.Sprintf("arn:aws:kms:us-east-1:666666666666:key/%08d-aaaa-bbbb-cccc-000000000000", i)
		arns = append(arns, arn)
		for range repeat {
			body := make([]byte, 8)
			rand.Read(body)
			stanzas = append(stanzas, &age.Stanza{Type: kmsStanzaType, Args: []string{arn}, Body: body})
		}
	}
	var wrapped bytes.Buffer
	w, err := age.Encrypt(&wrapped, stanzaRecipient{stanzas})
	if err != nil {
		return nil, fmt.Errorf("forge: %w", err)
	}
	w.Write(make([]byte, dataKeySize))
	w.Close()
	listed := arns[:min(len(arns), maxRecipients)]
	inner := appendBinding(appendHeader(nil, listed, wrapped.Bytes()), b)
	return append(inner, make([]byte, nonceSize+tagSize+4)...), nil
}
