package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress shows one updating line on a terminal while a step takes over a second, and clears
// it when the step ends. On anything but a terminal it writes nothing.
type progress struct {
	w     io.Writer
	fd    int
	on    bool
	delay time.Duration
	tick  time.Duration
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, delay: time.Second, tick: 250 * time.Millisecond}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.on, p.fd = true, int(f.Fd())
	}
	return p
}

// start begins a step; the returned func ends it and returns once the line is cleared.
func (p *progress) start(label string) (stop func()) {
	if !p.on {
		return func() {}
	}
	begin := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		timer := time.NewTimer(p.delay)
		defer timer.Stop()
		select {
		case <-done:
			return
		case <-timer.C:
		}
		ticker := time.NewTicker(p.tick)
		defer ticker.Stop()
		for {
			line := fmt.Sprintf("embargo: %s %s", label, time.Since(begin).Truncate(time.Second))
			if width, _, err := term.GetSize(p.fd); err == nil && width > 1 && len(line) >= width {
				line = line[:width-1] // a wrapped line cannot be rewritten with \r
			}
			fmt.Fprint(p.w, "\r"+line+"\x1b[K")
			select {
			case <-done:
				fmt.Fprint(p.w, "\r\x1b[K")
				return
			case <-ticker.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
