package eval

import (
	"sync/atomic"
	"time"

	"github.com/pulumi/esc"
)

// Snapshot is the immutable result of one evaluation of an environment and
// its renderings. Callers must not modify it or the slices it holds, so it
// can be shared with any number of readers without copying or locking.
type Snapshot struct {
	Serial      uint64      // unique to this snapshot in this process: a new version has a new serial
	Name        Name        // the environment
	Path        string      // its definition file
	EvaluatedAt time.Time   // when the evaluation started
	ExpiresAt   time.Time   // when the earliest credential in it expires; zero if none does
	Opened      bool        // the evaluation opened a provider (its failures may be transient)
	Watched     []string    // local files providers read (e.g. stack checkpoints): a change to one invalidates the snapshot
	Diagnostics Diagnostics // errors and warnings; with errors, nothing below is set
	Deps        []Name      // every environment the evaluation read or tried to read, itself included

	Values     esc.Value // all values, secrets marked
	Vars       []Var     // the variables, sorted by name, files entries included
	Env        []byte    // POSIX shell: export NAME='value' lines
	Dotenv     []byte    // NAME=value lines for dotenv loaders and docker --env-file
	ValuesJSON []byte    // all values with secrets revealed, as esc open -f json
	Files      []File    // the files entries, sorted by name
	Secrets    []string  // every secret string in the values, longest first, for redaction
}

// serials numbers snapshots; 0 is never used.
var serials atomic.Uint64

// nextSerial returns a serial no other snapshot of this process has.
func nextSerial() uint64 { return serials.Add(1) }

// Var is one environment variable of a snapshot.
type Var struct {
	Name   string
	Value  string
	Secret bool
	File   bool // the variable holds the path of one of the snapshot's files
}

// File is one files entry: its name is also the variable that holds its path.
type File struct {
	Name    string
	Content []byte
	Secret  bool
}

// Err returns the snapshot's errors as a *DiagnosticsError, or nil.
func (s *Snapshot) Err() error { return s.Diagnostics.Err() }

// File returns the files entry called name.
func (s *Snapshot) File(name string) (File, bool) {
	for _, f := range s.Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}
