package main

import (
	"io"
	"sync"
)

// syncWriter makes a writer safe for the concurrent log writes of a daemon.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
