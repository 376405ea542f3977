package secrets

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"filippo.io/age"
)

// recipients is a validated recipient list: age X25519 recipients and KMS
// key ARNs, each once, in the order given.
type recipients struct {
	list []string        // every recipient, as written
	age  []age.Recipient // the age ones, parsed
	kms  []string        // the KMS key ARNs
}

// parseRecipient checks one recipient: an age X25519 recipient ("age1...")
// or an AWS KMS key or alias ARN. The error does not repeat s when s might be
// a secret key pasted by mistake.
func parseRecipient(s string) (age.Recipient, bool, error) {
	switch {
	case strings.HasPrefix(s, "age1"):
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, false, fmt.Errorf("age recipient %q: %v", s, err)
		}
		return r, false, nil
	case strings.HasPrefix(s, "arn:"):
		if _, ok := kmsRegion(s); !ok {
			return nil, true, fmt.Errorf("%q is not an AWS KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID or :alias/NAME)", s)
		}
		return nil, true, nil
	case strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-"):
		return nil, false, errors.New("an age secret key is no recipient: give its public key (age1...), and keep the secret key out of this file")
	default:
		return nil, false, fmt.Errorf("%q is neither an age recipient (age1...) nor an AWS KMS key ARN (arn:aws:kms:...)", s)
	}
}

// parseRecipients validates list and drops repetitions.
func parseRecipients(list []string) (recipients, error) {
	var rs recipients
	for _, s := range list {
		if slices.Contains(rs.list, s) {
			continue
		}
		r, isKMS, err := parseRecipient(s)
		if err != nil {
			return recipients{}, err
		}
		rs.list = append(rs.list, s)
		if isKMS {
			rs.kms = append(rs.kms, s)
		} else {
			rs.age = append(rs.age, r)
		}
	}
	if len(rs.list) == 0 {
		return recipients{}, errors.New("no recipients")
	}
	if len(rs.list) > maxRecipients {
		return recipients{}, fmt.Errorf("%d recipients: at most %d", len(rs.list), maxRecipients)
	}
	return rs, nil
}

// sameSet reports whether a and b hold the same strings, ignoring order and
// repetition.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
