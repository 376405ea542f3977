package secrets

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
)

// IdentitiesEnv names the variable that, when set, is the age identities
// file.
const IdentitiesEnv = "ESCFS_AGE_IDENTITIES"

// DefaultIdentitiesPath returns the age identities file: $ESCFS_AGE_IDENTITIES
// if set, else os.UserConfigDir()/escfs/age/identities.txt
// (~/.config/escfs/age/identities.txt on Linux).
func DefaultIdentitiesPath() (string, error) {
	if p := os.Getenv(IdentitiesEnv); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no age identities file: set %s (%v)", IdentitiesEnv, err)
	}
	return filepath.Join(dir, "escfs", "age", "identities.txt"), nil
}

// Keygen makes a new age X25519 identity, appends it to the identities file
// at path in age-keygen's format (# created, # public key, AGE-SECRET-KEY-1...)
// and returns its recipient (the public key, age1...). It creates the file
// 0600 and missing parent directories 0700, and refuses a file that its
// group or others can access.
func Keygen(path string) (recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	// Checked on the open file, whatever path led to it.
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s is accessible by group or others (mode %04o): refusing to add a secret key to it; chmod 600 it first", path, perm)
	}
	sep, err := separator(f, info.Size())
	if err != nil {
		return "", err
	}
	rec := id.Recipient().String()
	entry := fmt.Sprintf("%s# created: %s\n# public key: %s\n%s\n", sep, time.Now().Format(time.RFC3339), rec, id)
	if _, err := f.WriteString(entry); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return rec, nil
}

// separator returns "\n" if the file of that size does not end with one, so
// that the appended identity starts on a line of its own.
func separator(f *os.File, size int64) (string, error) {
	if size == 0 {
		return "", nil
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if last[0] == '\n' {
		return "", nil
	}
	return "\n", nil
}

// IdentitiesFileWarning returns a warning if the identities file at path
// can be read by its group or by others (as ssh refuses such a private
// key), or "" if it cannot or does not exist.
func IdentitiesFileWarning(path string) string {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("the age identities file %s is accessible to its group or to others (mode %04o): anyone who reads it decrypts every secret encrypted to it; chmod 600 %s", displayPath(path), fi.Mode().Perm(), path)
}
