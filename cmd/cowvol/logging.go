package main

import (
	"fmt"
	"io"
	"log/slog"
)

// Log formats of --log-format.
const (
	logFormatText = "text" // logfmt-style key=value lines (the default)
	logFormatJSON = "json" // one JSON object per line, for log shippers
)

// newLogger makes the daemon's logger: records at level and above, written
// to w in format (text or json). An unknown format is a usage error.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case logFormatText:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case logFormatJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want %s or %s", format, logFormatText, logFormatJSON)
}
