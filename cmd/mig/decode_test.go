package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/migsvc/mig/mig"
)

// Decoded with the default epoch: tick 5955765512 is
// 2026-11-21T07:47:35.120Z; worker 5, sequence 1234.
const (
	goodID     = "99921164441486546"
	goodText   = goodID + "    2026-11-21T07:47:35.120Z  tick=5955765512   worker=5  seq=1234\n"
	goodJSON   = `{"id":"99921164441486546","time":"2026-11-21T07:47:35.120Z","tick":5955765512,"worker":5,"seq":1234}` + "\n"
	maxID      = "9223372036854775807" // 2^63-1: the last tick, worker and sequence
	maxText    = maxID + "  2199-03-19T03:28:58.870Z  tick=549755813887 worker=63 seq=262143\n"
	maxJSON    = `{"id":"9223372036854775807","time":"2199-03-19T03:28:58.870Z","tick":549755813887,"worker":63,"seq":262143}` + "\n"
	zeroText   = "0                    2025-01-01T00:00:00.000Z  tick=0            worker=0  seq=0\n"
	zeroJSON   = `{"id":"0","time":"2025-01-01T00:00:00.000Z","tick":0,"worker":0,"seq":0}` + "\n"
	signBit    = "9223372036854775808"  // 2^63
	tooManyBit = "18446744073709551616" // 2^64
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name   string
		args   []string // after "decode"
		stdin  string
		status int
		stdout string
		stderr []string // the lines of standard error, in order
	}{
		{name: "one argument", args: []string{goodID}, stdout: goodText},
		{name: "one argument json", args: []string{"--json", goodID}, stdout: goodJSON},
		{name: "arguments", args: []string{goodID, "0", maxID}, stdout: goodText + zeroText + maxText},
		{name: "arguments json", args: []string{"-json", goodID, "0", maxID}, stdout: goodJSON + zeroJSON + maxJSON},
		{name: "leading zeros", args: []string{"0000000000000000000000000" + goodID}, stdout: goodText},
		{
			name:   "epoch",
			args:   []string{"--epoch", "2020-01-01T00:00:00Z", goodID},
			stdout: goodID + "    2021-11-20T07:47:35.120Z  tick=5955765512   worker=5  seq=1234\n",
		},
		{
			name:   "epoch with offset",
			args:   []string{"--epoch=2025-01-01T09:00:00+09:00", "--json", goodID},
			stdout: goodJSON,
		},
		{name: "stdin", stdin: goodID + "\n0\n" + maxID + "\n", stdout: goodText + zeroText + maxText},
		{name: "stdin json", args: []string{"--json"}, stdin: goodID + "\n0\n" + maxID, stdout: goodJSON + zeroJSON + maxJSON},
		{name: "stdin whitespace and blank lines", stdin: "\n  " + goodID + "\t\r\n\n \t \r\n0\r\n\n", stdout: goodText + zeroText},
		{name: "empty stdin", stdin: "", stdout: ""},
		{name: "blank stdin", stdin: "\n\n  \n", stdout: ""},
		{name: "arguments win over stdin", args: []string{"0"}, stdin: goodID + "\n", stdout: zeroText},
		{
			name:   "bad arguments among good",
			args:   []string{"abc", goodID, "-1", signBit, tooManyBit, "", "+5", "0", " 1"},
			status: exitFail,
			stdout: goodText + zeroText,
			stderr: []string{
				`mig decode: invalid ID: "abc" is not a decimal number`,
				`mig decode: invalid ID: "-1" is negative`,
				`mig decode: invalid ID: "9223372036854775808" has the sign bit set (IDs are below 2^63)`,
				`mig decode: invalid ID: "18446744073709551616" needs more than 64 bits`,
				`mig decode: invalid ID: empty`,
				`mig decode: invalid ID: "+5" is not a plain decimal number`,
				`mig decode: invalid ID: " 1" is not a decimal number`,
			},
		},
		{
			name:   "bad lines among good",
			args:   []string{"--json"},
			stdin:  "abc\n" + goodID + "\n-1\n\n " + signBit + " \n" + tooManyBit + "\n\n+5\n0\n1 2\n",
			status: exitFail,
			stdout: goodJSON + zeroJSON,
			stderr: []string{
				`mig decode: line 1: invalid ID: "abc" is not a decimal number`,
				`mig decode: line 3: invalid ID: "-1" is negative`,
				`mig decode: line 5: invalid ID: "9223372036854775808" has the sign bit set (IDs are below 2^63)`,
				`mig decode: line 6: invalid ID: "18446744073709551616" needs more than 64 bits`,
				`mig decode: line 8: invalid ID: "+5" is not a plain decimal number`,
				`mig decode: line 10: invalid ID: "1 2" is not a decimal number`,
			},
		},
		{
			name:   "only bad",
			stdin:  "x\n",
			status: exitFail,
			stderr: []string{`mig decode: line 1: invalid ID: "x" is not a decimal number`},
		},
		{
			name:   "binary line",
			stdin:  "\x00\xff\x1b[2J\n0\n",
			status: exitFail,
			stdout: zeroText,
			stderr: []string{`mig decode: line 1: invalid ID: "\x00\xff\x1b[2J" is not a decimal number`},
		},
		{
			name:   "bad epoch",
			args:   []string{"--epoch", "2025-01-01", goodID},
			status: exitUsage,
			stderr: []string{
				`mig decode: invalid value "2025-01-01" for flag -epoch: mig: invalid epoch: "2025-01-01" is not RFC 3339 (like 2025-01-01T00:00:00Z)`,
				`Run 'mig decode --help' for usage.`,
			},
		},
		{
			name:   "epoch not a whole tick",
			args:   []string{"--epoch", "2025-01-01T00:00:00.001Z", goodID},
			status: exitUsage,
			stderr: []string{
				`mig decode: invalid value "2025-01-01T00:00:00.001Z" for flag -epoch: mig: invalid epoch: 2025-01-01T00:00:00.001Z is not a whole number of 10ms after 1970`,
				`Run 'mig decode --help' for usage.`,
			},
		},
		{
			name:   "flag after an ID",
			args:   []string{goodID, "--json"},
			status: exitUsage,
			stderr: []string{`mig decode: flag "--json" after an ID: flags go before the IDs`},
		},
		{
			name:   "bad json value",
			args:   []string{"--json=maybe", goodID},
			status: exitUsage,
			stderr: []string{
				`mig decode: invalid boolean value "maybe" for -json: parse error`,
				`Run 'mig decode --help' for usage.`,
			},
		},
		{name: "double dash", args: []string{"--", "-1"}, status: exitFail, stderr: []string{`mig decode: invalid ID: "-1" is negative`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, status := runMig(t, nil, tt.stdin, append([]string{"decode"}, tt.args...)...)
			if status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
			if stdout != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.stdout)
			}
			if got := lines(stderr); !equal(got, tt.stderr) {
				t.Errorf("stderr:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.stderr, "\n"))
			}
		})
	}
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDecodeLongLines checks that a line longer than maxLine is reported
// and skipped, the lines around it still decoded, and one of maxLine bytes
// accepted.
func TestDecodeLongLines(t *testing.T) {
	padded := strings.Repeat(" ", maxLine-len(goodID)) + goodID // exactly maxLine bytes
	tests := []struct {
		name   string
		stdin  string
		status int
		stdout string
		stderr []string
	}{
		{name: "maxLine bytes", stdin: padded + "\n" + padded, stdout: goodText + goodText},
		{
			name:   "maxLine+1 bytes",
			stdin:  padded + " \n0\n" + " " + padded,
			status: exitFail,
			stdout: zeroText,
			stderr: []string{
				`mig decode: line 1: "                        "... is longer than 1024 bytes`,
				`mig decode: line 3: "                        "... is longer than 1024 bytes`,
			},
		},
		{
			name:   "a megabyte of digits",
			stdin:  "0\n" + strings.Repeat("1234567890", 100_000) + "\n" + goodID + "\n",
			status: exitFail,
			stdout: zeroText + goodText,
			stderr: []string{`mig decode: line 2: "123456789012345678901234"... is longer than 1024 bytes`},
		},
		{
			name:   "a megabyte without newline",
			stdin:  strings.Repeat("\x00", 1<<20),
			status: exitFail,
			stderr: []string{`mig decode: line 1: "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"... is longer than 1024 bytes`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, status := runMig(t, nil, tt.stdin, "decode")
			if status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
			if stdout != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.stdout)
			}
			if got := lines(stderr); !equal(got, tt.stderr) {
				t.Errorf("stderr:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.stderr, "\n"))
			}
		})
	}
}

type failingReader struct{ data io.Reader }

func (r *failingReader) Read(p []byte) (int, error) {
	n, err := r.data.Read(p)
	if err == io.EOF {
		return n, errors.New("disk on fire")
	}
	return n, err
}

func TestDecodeReadError(t *testing.T) {
	stdout, stderr, status := runMigFrom(t, nil, &failingReader{strings.NewReader("0\n" + goodID)}, "decode")
	if status != exitFail {
		t.Errorf("status %d, want %d", status, exitFail)
	}
	// The partial last line is decoded before the error is reported.
	if stdout != zeroText+goodText {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, zeroText+goodText)
	}
	if want := "mig decode: reading standard input: disk on fire\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("pipe closed") }

func TestDecodeWriteError(t *testing.T) {
	for _, args := range [][]string{{"decode", "0"}, {"decode"}, {"decode", "0", "x"}} {
		var stderr strings.Builder
		p := &proc{stdin: strings.NewReader("0\nx\n"), stdout: failingWriter{}, stderr: &stderr, lookupEnv: mapEnv(nil)}
		if status := dispatch(t.Context(), p, args); status != exitFail {
			t.Errorf("%q: status %d, want %d", args, status, exitFail)
		}
		if want := "mig decode: writing standard output: pipe closed\n"; stderr.String() != want {
			t.Errorf("%q: stderr %q, want %q", args, stderr.String(), want)
		}
	}
}

// FuzzDecodeInput feeds arbitrary bytes to `mig decode` on standard input,
// with --json and without, and checks the outcome line by line against
// mig.ParseID: every line that is an ID is decoded, in order, into parts
// consistent with the layout, and every other non-blank line is reported
// on standard error with its text; the status is 1 exactly when some line
// was bad.
func FuzzDecodeInput(f *testing.F) {
	for _, s := range []string{
		"", "\n", goodID, goodID + "\n0\n" + maxID + "\n",
		"abc\n-1\n" + signBit + "\n" + tooManyBit + "\n\n+5\n",
		" \t12\r\n\r\n", "1 2\n", "0x10\n", "١٢٣\n", "\xff\xfe\n", "\u00a01\u0085\n",
		strings.Repeat("9", maxLine) + "\n" + strings.Repeat("9", maxLine+1) + "\n1",
	} {
		f.Add([]byte(s))
	}
	layout := mig.DefaultLayout()
	f.Fuzz(func(t *testing.T, in []byte) {
		// The reference: what each line should give.
		type want struct {
			line int
			id   mig.ID // when ok
			ok   bool
			text string // the text the report must quote, when !ok
		}
		var wants []want
		split := strings.Split(string(in), "\n")
		if split[len(split)-1] == "" {
			split = split[:len(split)-1]
		}
		for i, l := range split {
			if len(l) > maxLine {
				wants = append(wants, want{line: i + 1})
				continue
			}
			l = strings.TrimSpace(l)
			if l == "" {
				continue
			}
			id, err := mig.ParseID(l)
			wants = append(wants, want{line: i + 1, id: id, ok: err == nil, text: l})
		}

		jsonOut, jsonErr, jsonStatus := runMig(t, nil, string(in), "decode", "--json")
		textOut, textErr, textStatus := runMig(t, nil, string(in), "decode")
		if jsonErr != textErr || jsonStatus != textStatus {
			t.Fatalf("--json changed the errors: status %d, %d; stderr:\n%s\nand:\n%s", jsonStatus, textStatus, jsonErr, textErr)
		}
		outJSON, outText, errLines := lines(jsonOut), lines(textOut), lines(jsonErr)
		if len(outJSON) != len(outText) {
			t.Fatalf("%d JSON lines but %d text lines", len(outJSON), len(outText))
		}
		nbad := 0
		for _, w := range wants {
			if w.ok {
				if len(outJSON) == 0 {
					t.Fatalf("line %d: ID %d not decoded", w.line, w.id)
				}
				checkDecoded(t, layout, w.id, outJSON[0], outText[0])
				outJSON, outText = outJSON[1:], outText[1:]
				continue
			}
			nbad++
			if len(errLines) == 0 {
				t.Fatalf("line %d (%q) not reported", w.line, w.text)
			}
			report := errLines[0]
			errLines = errLines[1:]
			prefix := "mig decode: line " + strconv.Itoa(w.line) + ": "
			if !strings.HasPrefix(report, prefix) {
				t.Fatalf("report %q, want it to start with %q", report, prefix)
			}
			if w.text == "" { // too long
				if !strings.HasSuffix(report, "is longer than "+strconv.Itoa(maxLine)+" bytes") {
					t.Fatalf("report %q does not say the line is too long", report)
				}
			} else if !strings.Contains(report, strconv.Quote(w.text)) {
				t.Fatalf("report %q does not quote the text %q", report, w.text)
			}
		}
		if len(outJSON) != 0 || len(errLines) != 0 {
			t.Fatalf("unexpected output %q, reports %q", outJSON, errLines)
		}
		if wantStatus := map[bool]int{false: exitOK, true: exitFail}[nbad > 0]; jsonStatus != wantStatus {
			t.Fatalf("status %d with %d bad lines, want %d", jsonStatus, nbad, wantStatus)
		}
	})
}

// checkDecoded checks a line of `mig decode --json` and one of `mig decode`
// against the parts of id.
func checkDecoded(t *testing.T, layout mig.Layout, id mig.ID, jsonLine, textLine string) {
	t.Helper()
	var got struct {
		ID     string `json:"id"`
		Time   string `json:"time"`
		Tick   int64  `json:"tick"`
		Worker uint32 `json:"worker"`
		Seq    uint32 `json:"seq"`
	}
	dec := json.NewDecoder(strings.NewReader(jsonLine))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("%q: %v", jsonLine, err)
	}
	gotID, err := mig.ParseID(got.ID)
	if err != nil || gotID != id {
		t.Fatalf("%q: id %q, want %q", jsonLine, got.ID, id.String())
	}
	parts, err := layout.Decompose(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tick != parts.Tick || got.Worker != parts.Worker || got.Seq != parts.Seq {
		t.Fatalf("%q: parts %d/%d/%d, want %+v", jsonLine, got.Tick, got.Worker, got.Seq, parts)
	}
	tm, err := time.Parse(time.RFC3339, got.Time)
	if err != nil || !tm.Equal(layout.Time(id)) || len(got.Time) != len("2006-01-02T15:04:05.000Z") || !strings.HasSuffix(got.Time, "Z") {
		t.Fatalf("%q: time %q, want %s in UTC with milliseconds", jsonLine, got.Time, layout.Time(id))
	}
	wantFields := []string{got.ID, got.Time, "tick=" + strconv.FormatInt(got.Tick, 10),
		"worker=" + strconv.Itoa(int(got.Worker)), "seq=" + strconv.Itoa(int(got.Seq))}
	if f := strings.Fields(textLine); !equal(f, wantFields) {
		t.Fatalf("text line %q, want fields %q", textLine, wantFields)
	}
}

func Example_decode() {
	// As run does, with an empty environment.
	p := &proc{stdin: strings.NewReader(""), stdout: os.Stdout, stderr: os.Stdout, lookupEnv: mapEnv(nil)}
	dispatch(context.Background(), p, []string{"decode", goodID})
	dispatch(context.Background(), p, []string{"decode", "--json", goodID})
	dispatch(context.Background(), p, []string{"decode", "--epoch", "2020-01-01T00:00:00Z", goodID, "12x"})
	// Output:
	// 99921164441486546    2026-11-21T07:47:35.120Z  tick=5955765512   worker=5  seq=1234
	// {"id":"99921164441486546","time":"2026-11-21T07:47:35.120Z","tick":5955765512,"worker":5,"seq":1234}
	// 99921164441486546    2021-11-20T07:47:35.120Z  tick=5955765512   worker=5  seq=1234
	// mig decode: invalid ID: "12x" is not a decimal number
}
