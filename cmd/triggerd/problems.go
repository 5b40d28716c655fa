package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/rules"
)

// problem is one thing wrong with the configuration, named by the YAML
// path of the setting (kafka.topics.clickstream), or by the environment
// variable when it names no setting.
type problem struct {
	path, msg string
}

// problems collects every problem of a configuration, so that one start
// reports them all: an operator fixes a file in one round, not one start
// at a time.
type problems []problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, problem{path, fmt.Sprintf(format, args...)})
}

// addErr adds err under path: a processor setting's error under its own
// path below path, a rules file's errors one by one, others as they are.
func (ps *problems) addErr(path string, err error) {
	if err == nil {
		return
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			ps.addErr(path, e)
		}
		return
	}
	var se *processor.SettingError
	var le *rules.LoadError
	switch {
	case errors.As(err, &se):
		p := path
		if se.Path != "" {
			p += "." + se.Path
		}
		ps.add(p, "%s", se.Problem)
	case errors.As(err, &le):
		for _, pe := range le.Errs {
			ps.add(path, "%s:%d:%d: %s", pe.File, pe.Line, pe.Column, pe.Msg)
		}
	default:
		ps.add(path, "%v", err)
	}
}

// err is nil without problems, else a *configError listing them.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &configError{ps}
}

// configError is an invalid configuration: one problem a line, each
// prefixed by its setting's YAML path.
type configError struct {
	problems problems
}

func (e *configError) Error() string {
	var b strings.Builder
	for i, p := range e.problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.path != "" {
			b.WriteString(p.path)
			b.WriteString(": ")
		}
		b.WriteString(p.msg)
	}
	return b.String()
}
