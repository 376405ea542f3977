package eval

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher watches a definitions directory and its project directories with
// fsnotify, and the files providers read, and calls rescan with the names of
// the definitions and the paths of the files that changed, once per burst of
// events.
type watcher struct {
	root     string
	debounce time.Duration
	log      *slog.Logger
	rescan   func(names []Name, files []string) error
	fsw      *fsnotify.Watcher
	done     chan struct{}
	wg       sync.WaitGroup

	mu    sync.Mutex
	files map[string]bool // GUARDED_BY(mu): provider files watched, by path
}

func newWatcher(root string, debounce time.Duration, log *slog.Logger, rescan func([]Name, []string) error) (*watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{root: filepath.Clean(root), debounce: debounce, log: log, rescan: rescan, fsw: fsw, done: make(chan struct{}), files: map[string]bool{}}
	if err := fsw.Add(w.root); err != nil {
		fsw.Close()
		return nil, err
	}
	w.addProjects()
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

// addProjects watches every project directory; adding one twice is harmless.
func (w *watcher) addProjects() {
	entries, err := os.ReadDir(w.root)
	if err != nil {
		w.log.Warn("watch", "error", err.Error())
		return
	}
	for _, e := range entries {
		if ignored(e.Name()) || !isDir(w.root, e) {
			continue
		}
		if err := w.fsw.Add(filepath.Join(w.root, e.Name())); err != nil {
			w.log.Warn("watch project", "dir", e.Name(), "error", err.Error())
		}
	}
}

// loop collects events until a quiet period of w.debounce, then rescans.
func (w *watcher) loop() {
	defer w.wg.Done()
	var timer *time.Timer
	var fire <-chan time.Time
	changed := map[Name]bool{}
	changedFiles := map[string]bool{}
	for {
		select {
		case <-w.done:
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if n, ok := w.nameOf(ev.Name); ok {
				changed[n] = true
			}
			if w.watching(ev.Name) {
				changedFiles[ev.Name] = true
			}
			if timer == nil {
				timer = time.NewTimer(w.debounce)
			} else {
				timer.Reset(w.debounce)
			}
			fire = timer.C
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.log.Warn("watch", "error", err.Error())
		case <-fire:
			fire = nil
			w.addProjects() // new project directories
			names := make([]Name, 0, len(changed))
			for n := range changed {
				names = append(names, n)
			}
			clear(changed)
			files := make([]string, 0, len(changedFiles))
			for p := range changedFiles {
				files = append(files, p)
			}
			clear(changedFiles)
			if err := w.rescan(names, files); err != nil {
				w.log.Warn("rescan", "error", err.Error())
			}
		}
	}
}

// nameOf maps the path of an event to the environment a definition there
// would be, if any.
func (w *watcher) nameOf(path string) (Name, bool) {
	rel, err := filepath.Rel(w.root, path)
	if err != nil {
		return Name{}, false
	}
	parts := strings.Split(rel, string(filepath.Separator))
	ext := filepath.Ext(rel)
	if (ext != ".yaml" && ext != ".yml") || len(parts) > 2 || ignored(parts[len(parts)-1]) {
		return Name{}, false
	}
	raw := strings.TrimSuffix(rel, ext)
	if len(parts) == 2 {
		raw = parts[0] + "/" + strings.TrimSuffix(parts[1], ext)
	}
	n, err := ParseName(raw)
	return n, err == nil
}

// watchFiles adds provider files to watch. Their directories are watched,
// so that a file replaced by rename is still seen.
func (w *watcher) watchFiles(paths []string) {
	for _, p := range paths {
		w.mu.Lock()
		seen := w.files[p]
		w.files[p] = true
		w.mu.Unlock()
		if seen {
			continue
		}
		if err := w.fsw.Add(filepath.Dir(p)); err != nil {
			w.log.Warn("watch provider file", "path", p, "error", err.Error())
		}
	}
}

func (w *watcher) watching(path string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.files[path]
}

func (w *watcher) close() error {
	close(w.done)
	err := w.fsw.Close()
	w.wg.Wait()
	return err
}
