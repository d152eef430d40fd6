package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// Exit statuses of every subcommand.
const (
	exitOK    = 0 // success
	exitFail  = 1 // the command failed, or some of its input was bad
	exitUsage = 2 // unknown command, bad flag or bad flag value
)

// commands is the table of subcommands, in the order `mig help` lists them.
// To add one, write its file (serve.go, loadtest.go) with a command value
// and add that value here.
func commands() []command {
	return []command{
		serveCommand,
		statusCommand,
		seqRaiseCommand,
		decodeCommand,
		loadtestCommand,
		versionCommand,
	}
}

// A command is one subcommand of mig.
type command struct {
	name     string // what the user types after mig
	synopsis string // the arguments after "mig <name>" in the usage line
	summary  string // one line for `mig help`
	about    string // what `mig <name> --help` says above the flags

	// flags defines the command's flags on fs and returns the function
	// that runs the command. main parses the command line and the
	// environment into fs before it calls that function with the
	// arguments left after the flags. The function returns the exit
	// status (exitOK, exitFail, exitUsage). flags itself must do nothing
	// else: `mig help <name>` calls it only to list the flags.
	flags func(fs *flag.FlagSet) func(ctx context.Context, p *proc, args []string) int
}

// proc is what a command sees of its process: standard streams and the
// environment. Commands read these from here, never from package os, so
// tests run them in-process with buffers and a fake environment.
type proc struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookupEnv      lookupFunc
}

// run runs the mig command line args (without the program name) and returns
// the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	p := &proc{stdin: stdin, stdout: stdout, stderr: stderr, lookupEnv: os.LookupEnv}
	// Commands that must stop on a signal (serve) derive their own context
	// with signal.NotifyContext; doing it here would keep Ctrl-C from
	// ending a command that does not watch the context.
	return dispatch(context.Background(), p, args)
}

// dispatch finds the command named by args[0] and runs it.
func dispatch(ctx context.Context, p *proc, args []string) int {
	if len(args) == 0 {
		printUsage(p.stderr)
		return exitUsage
	}
	switch name := args[0]; name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(args) > 1 {
			c, ok := lookupCommand(args[1])
			if !ok {
				return unknownCommand(p, args[1])
			}
			fs, _ := c.flagSet()
			c.printUsage(p.stdout, fs)
			return exitOK
		}
		printUsage(p.stdout)
		return exitOK
	case "--version", "-version":
		args = []string{"version"}
	}
	c, ok := lookupCommand(args[0])
	if !ok {
		return unknownCommand(p, args[0])
	}
	return c.run(ctx, p, args[1:])
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func unknownCommand(p *proc, name string) int {
	fmt.Fprintf(p.stderr, "mig: unknown command %q\nRun 'mig help' for the list of commands.\n", name)
	return exitUsage
}

// printUsage writes the list of commands.
func printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("mig issues message IDs and per-user sequences.\n\nUsage: mig <command> [flags] [arguments]\n\nCommands:\n")
	width := 0
	for _, c := range commands() {
		width = max(width, len(c.name))
	}
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.name, c.summary)
	}
	b.WriteString("\nRun 'mig <command> --help' for a command's flags. Every flag can also be set\n" +
		"from an environment variable, MIG_ and the flag's name in capitals with\n" +
		"dashes as underscores (--epoch: MIG_EPOCH); the command line wins.\n")
	io.WriteString(w, b.String())
}

// versionFlag is the flag every command takes to print mig's version
// instead of running. It has no environment variable: MIG_VERSION set for
// some other purpose must not turn every command into `mig version`.
const versionFlag = "version"

// flagSet returns the command's flags and the function that runs it.
func (c command) flagSet() (*flag.FlagSet, func(context.Context, *proc, []string) int) {
	fs := flag.NewFlagSet("mig "+c.name, flag.ContinueOnError)
	// The flag package's own messages and usage are replaced by ours.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	runFn := c.flags(fs)
	fs.Bool(versionFlag, false, "print mig's version (as 'mig version' does) and exit")
	return fs, runFn
}

// run parses the command's flags from args and the environment, then runs it.
func (c command) run(ctx context.Context, p *proc, args []string) int {
	fs, runFn := c.flagSet()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printUsage(p.stdout, fs)
			return exitOK
		}
		fmt.Fprintf(p.stderr, "mig %s: %v\nRun 'mig %s --help' for usage.\n", c.name, err, c.name)
		return exitUsage
	}
	if fs.Lookup(versionFlag).Value.String() == "true" {
		printVersion(p.stdout, readBuild(), false)
		return exitOK
	}
	if err := setFromEnv(fs, p.lookupEnv); err != nil {
		fmt.Fprintf(p.stderr, "mig %s: %v\n", c.name, err)
		return exitUsage
	}
	return runFn(ctx, p, fs.Args())
}

// printUsage writes the command's help: usage line, description, flags.
func (c command) printUsage(w io.Writer, fs *flag.FlagSet) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: mig %s %s\n\n%s\n", c.name, c.synopsis, strings.TrimSpace(c.about))
	if hasFlags(fs) {
		b.WriteString("\nFlags:\n")
		printFlags(&b, fs)
	}
	io.WriteString(w, b.String())
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}
