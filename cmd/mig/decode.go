package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/migsvc/mig/mig"
)

var decodeCommand = command{
	name:     "decode",
	synopsis: "[--epoch RFC3339] [--json] [ID...]",
	summary:  "print the time, worker and sequence of message IDs",
	about: `
Decode prints the parts of each message ID: the start of its 10 ms tick
(RFC 3339, UTC, milliseconds), the tick since the epoch, the worker and the
sequence. With no ID arguments it reads IDs from standard input, one a line;
whitespace around an ID is ignored and blank lines are skipped.

An input that is not an ID is reported on standard error and the others are
still decoded. Exit status: 0 when every input was an ID, 1 when one was not,
2 for a usage error.`,
	flags: decodeFlags,
}

// maxLine is the longest line decode reads from standard input, without
// its line terminator. An ID has at most 19 digits; the rest is room for
// whitespace. A longer line is reported as bad input and skipped without
// being held in memory, so piping a stray binary file in does no harm.
const maxLine = 1024

// timeFormat is RFC 3339 with exactly three fractional digits; IDs are in
// 10 ms ticks, so milliseconds are exact.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func decodeFlags(fs *flag.FlagSet) func(context.Context, *proc, []string) int {
	epoch := newEpochFlag()
	fs.Var(epoch, "epoch", "the `RFC3339` epoch the IDs were made with")
	asJSON := fs.Bool("json", false, "print one JSON object a line, with fields id (a string), time, tick, worker, seq")
	return func(_ context.Context, p *proc, args []string) int {
		for _, a := range args {
			// The flag package stops at the first ID, so a flag after
			// one would otherwise be reported as a negative number.
			if len(a) > 1 && a[0] == '-' && (a[1] < '0' || a[1] > '9') {
				fmt.Fprintf(p.stderr, "mig decode: flag %q after an ID: flags go before the IDs\n", a)
				return exitUsage
			}
		}
		d := &decoder{layout: epoch.layout, json: *asJSON, out: bufio.NewWriter(p.stdout), stderr: p.stderr}
		var err error
		if len(args) > 0 {
			for _, a := range args {
				if err = d.decode(a, ""); err != nil {
					break
				}
			}
		} else {
			err = readLines(p.stdin, func(n int, line []byte, tooLong bool) error {
				where := "line " + strconv.Itoa(n) + ": "
				if tooLong {
					return d.bad(where, fmt.Errorf("%q... is longer than %d bytes", line[:min(len(line), 24)], maxLine))
				}
				line = bytes.TrimSpace(line)
				if len(line) == 0 {
					return nil
				}
				return d.decode(string(line), where)
			})
			if err != nil && d.werr == nil {
				err = fmt.Errorf("reading standard input: %w", err)
			}
		}
		if ferr := d.flush(); err == nil {
			err = ferr
		}
		switch {
		case err != nil:
			fmt.Fprintf(p.stderr, "mig decode: %v\n", err)
			return exitFail
		case d.nbad > 0:
			return exitFail
		}
		return exitOK
	}
}

// decoder prints decoded IDs on out and bad inputs on stderr.
type decoder struct {
	layout mig.Layout
	json   bool
	out    *bufio.Writer
	stderr io.Writer
	nbad   int   // inputs that were not IDs
	werr   error // the first error writing out; nothing is written after it
}

// decodedID is one line of `mig decode --json`. The ID is a string because
// JSON readers in JavaScript and Lua lose integers above 2^53.
type decodedID struct {
	ID     string `json:"id"`
	Time   string `json:"time"`
	Tick   int64  `json:"tick"`
	Worker uint32 `json:"worker"`
	Seq    uint32 `json:"seq"`
}

// decode prints the parts of the ID text, or reports it as bad input with
// where ("line 3: ", or "" for an argument) before the error. It returns
// only errors writing the output (d.werr).
func (d *decoder) decode(text, where string) error {
	id, err := mig.ParseID(text)
	if err != nil {
		return d.bad(where, err)
	}
	parts, err := d.layout.Decompose(id)
	if err != nil {
		return d.bad(where, err) // unreachable: ParseID refuses the sign bit
	}
	// Every value below 2^63 has a tick within 0..MaxTick, and the layout
	// guarantees the time of every such tick is representable.
	t := d.layout.TickTime(parts.Tick).Format(timeFormat)
	if d.json {
		err = json.NewEncoder(d.out).Encode(decodedID{
			ID: id.String(), Time: t, Tick: parts.Tick, Worker: parts.Worker, Seq: parts.Seq,
		})
	} else {
		_, err = fmt.Fprintf(d.out, "%-19s  %s  tick=%-12d worker=%-2d seq=%d\n", id, t, parts.Tick, parts.Worker, parts.Seq)
	}
	if err != nil {
		d.werr = fmt.Errorf("writing standard output: %w", err)
	}
	return d.werr
}

// bad reports a bad input. Output so far is flushed first so that, on a
// terminal, the report appears beside the input it is about.
func (d *decoder) bad(where string, err error) error {
	d.nbad++
	if werr := d.flush(); werr != nil {
		return werr
	}
	// The error's own "mig: " prefix would stutter after ours.
	fmt.Fprintf(d.stderr, "mig decode: %s%s\n", where, strings.TrimPrefix(err.Error(), "mig: "))
	return nil
}

// flush writes out what is buffered, and returns d.werr.
func (d *decoder) flush() error {
	if err := d.out.Flush(); err != nil && d.werr == nil {
		d.werr = fmt.Errorf("writing standard output: %w", err)
	}
	return d.werr
}

// readLines calls fn with every line of r, numbered from 1, without its
// "\n". A line longer than maxLine bytes is skipped, and fn gets its first
// maxLine bytes with tooLong set. readLines stops at the first error fn
// returns, and returns it or r's first error other than io.EOF. The line
// passed to fn is valid only until fn returns.
func readLines(r io.Reader, fn func(n int, line []byte, tooLong bool) error) error {
	// One byte more than maxLine holds a line of maxLine bytes and its "\n".
	br := bufio.NewReaderSize(r, maxLine+1)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		tooLong := errors.Is(err, bufio.ErrBufferFull)
		if tooLong {
			if ferr := fn(n, line[:maxLine], true); ferr != nil {
				return ferr
			}
			for errors.Is(err, bufio.ErrBufferFull) { // skip the rest of the line
				_, err = br.ReadSlice('\n')
			}
		} else if len(line) > 0 {
			if ferr := fn(n, bytes.TrimSuffix(line, []byte("\n")), false); ferr != nil {
				return ferr
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
	}
}
