package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// parseFlags parses a command's args with fs, and is how every command and
// subcommand reads its command line, so that all behave alike:
//
//   - Flags may come before, between and after the positional arguments
//     ("triggerd state get ID --addr URL"). Go's flag package stops at the
//     first positional argument and would take "--addr" for a second ID;
//     here the flags are picked out first. A flag that takes a value takes
//     the next argument unless written --flag=value.
//   - "--" ends the flags: what follows is positional even if it starts
//     with "-" (a customer ID "-1").
//   - -h, -help and --help print usage, followed by the flags, to stdout
//     and return flag.ErrHelp: the caller exits 0.
//   - An unknown flag or a bad value returns a *usageError: the caller
//     prints it with usage to stderr and exits 2.
//
// fs.Args() holds the positional arguments afterwards.
func parseFlags(fs *flag.FlagSet, usage string, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard) // errors are returned, usage printed here
	fs.Usage = func() {}
	usage = usageWithFlags(fs, usage)
	var flags, positional []string
	help, missing := false, ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		f := fs.Lookup(name)
		if f == nil && (name == "h" || name == "help") {
			help = true
			continue
		}
		flags = append(flags, a)
		if f != nil && !hasValue && !isBoolFlag(f) {
			if i+1 == len(args) {
				missing = a
				break
			}
			i++
			flags = append(flags, args[i])
		}
	}
	if help {
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	}
	if missing != "" {
		return &usageError{msg: fmt.Sprintf("%s: flag needs an argument: %s", fs.Name(), missing), usage: usage}
	}
	if err := fs.Parse(append(append(flags, "--"), positional...)); err != nil {
		return &usageError{msg: fs.Name() + ": " + err.Error(), usage: usage}
	}
	return nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// usageWithFlags appends fs's flags to usage, one a line with its value's
// name and default.
func usageWithFlags(fs *flag.FlagSet, usage string) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		value, text := flag.UnquoteUsage(f)
		left := "--" + f.Name
		if value != "" {
			left += " " + value
		}
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			text += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(&b, "  %-20s %s\n", left, text)
	})
	if b.Len() == 0 {
		return usage
	}
	return usage + "\nFlags (before or after the arguments):\n" + b.String()
}

// usageError is a command line that cannot be run as written: the caller
// prints it, then usage, to stderr, and exits 2.
type usageError struct {
	msg, usage string
}

func (e *usageError) Error() string { return e.msg }

// usageErrorf is a usage error of a command whose usage is usage, and whose
// flags, listed after it, are fs's (nil: none).
func usageErrorf(fs *flag.FlagSet, usage, format string, args ...any) error {
	if fs != nil {
		usage = usageWithFlags(fs, usage)
	}
	return &usageError{msg: fmt.Sprintf(format, args...), usage: usage}
}

// exitCode reports err on stderr as the command line tools do, and returns
// the process's exit code: 0 for none (or help asked for), 2 for a command
// line that cannot be run, 1 for a failure.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "triggerd: %s\n\n%s", ue.msg, ue.usage)
		return 2
	default:
		fmt.Fprintln(stderr, "triggerd:", err)
		return 1
	}
}
