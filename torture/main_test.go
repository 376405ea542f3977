//go:build torture

package torture

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escfs/escfs/internal/escfstest"
)

// The groups of the suite, in the order of the table.
const (
	groupHostile   = "hostile"
	groupLayouts   = "layouts"
	groupRaces     = "edit races"
	groupLifecycle = "lifecycle"
	groupSecrets   = "secrets"
	groupAttacks   = "attacks"
)

var groupOrder = []string{groupHostile, groupLayouts, groupRaces, groupLifecycle, groupSecrets, groupAttacks}

// tally is one group's row of the table.
type tally struct {
	cases, survived, crashes int
	bytesLost, leaked        int
	notes                    []string
}

// results collects every case's outcome, from any test goroutine.
var results = struct {
	sync.Mutex
	groups map[string]*tally
}{groups: map[string]*tally{}}

// record changes group's row under the lock.
func record(group string, f func(*tally)) {
	results.Lock()
	defer results.Unlock()
	g := results.groups[group]
	if g == nil {
		g = &tally{}
		results.groups[group] = g
	}
	f(g)
}

// note adds a remark to group's notes column.
func note(group, format string, args ...any) {
	record(group, func(g *tally) { g.notes = append(g.notes, fmt.Sprintf(format, args...)) })
}

// printTable writes the results table to w.
func printTable(w io.Writer) {
	results.Lock()
	defer results.Unlock()
	const format = "%-11s %6v %9v %8v %11v %15v  %s"
	row := func(w io.Writer, args ...any) { fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf(format, args...), " ")) }
	row(w, "group", "cases", "survived", "crashes", "bytes lost", "secrets leaked", "notes")
	var total tally
	for _, name := range groupOrder {
		g := results.groups[name]
		if g == nil {
			row(w, name, 0, 0, 0, 0, 0, "not run")
			continue
		}
		row(w, name, g.cases, g.survived, g.crashes, g.bytesLost, g.leaked, strings.Join(g.notes, "; "))
		total.cases += g.cases
		total.survived += g.survived
		total.crashes += g.crashes
		total.bytesLost += g.bytesLost
		total.leaked += g.leaked
	}
	row(w, "TOTAL", total.cases, total.survived, total.crashes, total.bytesLost, total.leaked, "")
}

// TestMain runs the suite and prints the table, whatever the outcome. A
// watchdog kills every escfs this process started shortly before
// -test.timeout: a reader blocked on a hung mount cannot be interrupted, so
// without it the test binary could never exit.
func TestMain(m *testing.M) {
	flag.Parse()
	if d, _ := time.ParseDuration(flag.Lookup("test.timeout").Value.String()); d > time.Minute {
		watchdog := time.AfterFunc(d-30*time.Second, func() {
			fmt.Fprintln(os.Stderr, "torture: -test.timeout is near: killing every escfs this suite started")
			escfstest.KillChildren()
		})
		defer watchdog.Stop()
	}
	code := m.Run()
	fmt.Println()
	printTable(os.Stdout)
	os.Exit(code)
}
