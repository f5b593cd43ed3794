package salesbot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrInstructionsFile is matched (errors.Is) by the errors of reading or
// saving bot.instructions_file.
var ErrInstructionsFile = errors.New("bot.instructions_file")

// maxInstructionsBytes keeps a runaway file out of every prompt.
const maxInstructionsBytes = 64 << 10

// instructions is the operator's instructions file, read again when its
// size or modification time changes.
type instructions struct {
	path string

	mu      sync.Mutex
	text    string
	modTime time.Time
	size    int64
	loaded  bool
}

// get returns the instructions; a missing file is empty instructions.
func (in *instructions) get() (string, error) {
	if in.path == "" {
		return "", nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	fi, err := os.Stat(in.path)
	if errors.Is(err, fs.ErrNotExist) {
		in.text, in.loaded = "", false
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("salesbot: %w: %w", ErrInstructionsFile, err)
	}
	if fi.IsDir() {
		return "", fmt.Errorf("salesbot: %w: %s is a directory", ErrInstructionsFile, in.path)
	}
	if in.loaded && fi.ModTime().Equal(in.modTime) && fi.Size() == in.size {
		return in.text, nil
	}
	if fi.Size() > maxInstructionsBytes {
		return "", fmt.Errorf("salesbot: %w: %s is %d bytes, at most %d", ErrInstructionsFile, in.path, fi.Size(), maxInstructionsBytes)
	}
	b, err := os.ReadFile(in.path)
	if err != nil {
		return "", fmt.Errorf("salesbot: %w: %w", ErrInstructionsFile, err)
	}
	in.text, in.modTime, in.size, in.loaded = string(b), fi.ModTime(), fi.Size(), true
	return in.text, nil
}

// set replaces the file's content atomically (a temporary file renamed over
// it), so a reader never sees half of it.
func (in *instructions) set(text string) error {
	if in.path == "" {
		return errors.New("salesbot: no bot.instructions_file is set: nowhere to save the instructions")
	}
	if len(text) > maxInstructionsBytes {
		return fmt.Errorf("salesbot: the instructions are %d bytes, at most %d", len(text), maxInstructionsBytes)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	dir := filepath.Dir(in.path)
	f, err := os.CreateTemp(dir, ".instructions-*")
	if err != nil {
		return fmt.Errorf("salesbot: save the instructions: %w", err)
	}
	tmp := f.Name()
	_, werr := f.WriteString(text)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("salesbot: save the instructions: %w", err)
	}
	if err := os.Rename(tmp, in.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("salesbot: save the instructions: %w", err)
	}
	in.loaded = false
	return nil
}

// Instructions returns the operator's instructions as the model gets them.
func (s *Service) Instructions() (string, error) { return s.instr.get() }

// SetInstructions saves new instructions to bot.instructions_file; the next
// reply uses them.
func (s *Service) SetInstructions(text string) error { return s.instr.set(text) }

// InstructionsFile is the path of bot.instructions_file ("" when unset).
func (s *Service) InstructionsFile() string { return s.instr.path }
