package cloud

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/escfs/escfs/eval"
)

// closeWait bounds how long Close waits for a poll in progress: the
// client's retries of a failing GET sleep through cancellation.
const closeWait = 2 * time.Second

// Watch polls the service every poll interval until Close: it asks for the
// latest revision of every environment opened so far (and of every one
// those import), lists the organization again, and delivers the listing
// with the environments whose revision moved. A poll that fails keeps what
// the source knew; the next one asks again.
func (s *Source) Watch(deliver func(eval.Update)) error {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	if s.watching {
		s.mu.Unlock()
		cancel()
		return errors.New("pulumi cloud: already watching")
	}
	s.watching, s.stop, s.cancel, s.done = true, make(chan struct{}), cancel, make(chan struct{})
	stop, done := s.stop, s.done
	s.mu.Unlock()
	go func() {
		defer close(done)
		ticker := time.NewTicker(s.poll)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
			names := s.pollRevisions(ctx)
			select {
			case <-stop:
				return
			default:
			}
			tree, err := s.Scan(ctx)
			if err != nil {
				s.log.Warn("pulumi cloud: listing failed", "org", s.org, "error", err.Error())
				continue
			}
			deliver(eval.Update{Tree: tree, Names: names})
		}
	}()
	return nil
}

// pollRevisions asks for the latest revision of every polled environment,
// a few at a time, records the new ones and returns their environments.
func (s *Source) pollRevisions(ctx context.Context) []eval.Name {
	s.mu.Lock()
	var names []eval.Name
	for n, t := range s.tracked {
		if t.polled {
			names = append(names, n)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(names, func(a, b eval.Name) int { return strings.Compare(a.String(), b.String()) })

	revs := make([]int, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, pollParallelism)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, s.timeout)
			defer cancel()
			revs[i], errs[i] = s.client.GetRevisionNumber(rctx, s.org, n.Project, n.Env, "")
		})
	}
	wg.Wait()

	var changed []eval.Name
	var failed error
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, n := range names {
		t := s.tracked[n]
		var err error
		if errs[i] != nil {
			err = s.requestError("poll the revision of "+n.Short(), errs[i])
		}
		switch {
		case isStatus(err, http.StatusNotFound):
			// Deleted: the listing the Store asks for next drops it.
		case err != nil:
			failed = firstErr(failed, err)
		case t == nil:
			// Gone from the listing meanwhile.
		case revs[i] != t.rev:
			t.rev = revs[i]
			changed = append(changed, n)
		}
	}
	switch {
	case failed != nil && s.pollErr != failed.Error():
		s.pollErr = failed.Error()
		s.log.Warn("pulumi cloud: polling revisions failed; keeping what is known", "org", s.org, "error", failed.Error())
	case failed == nil && s.pollErr != "":
		s.pollErr = ""
		s.log.Info("pulumi cloud: polling revisions works again", "org", s.org)
	}
	if len(changed) > 0 {
		short := make([]string, len(changed))
		for i, n := range changed {
			short[i] = n.Short()
		}
		s.log.Info("pulumi cloud: new revisions", "org", s.org, "environments", strings.Join(short, " "))
	}
	return changed
}

// firstErr keeps the first error.
func firstErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

// Close stops polling, waiting a little for a poll in progress.
func (s *Source) Close() error {
	s.mu.Lock()
	stop, cancel, done := s.stop, s.cancel, s.done
	s.stop = nil
	s.mu.Unlock()
	if stop == nil {
		return nil
	}
	close(stop)
	cancel()
	select {
	case <-done:
	case <-time.After(closeWait):
	}
	return nil
}
