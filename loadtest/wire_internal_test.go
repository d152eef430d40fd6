package loadtest

import (
	"strconv"
	"testing"
)

// TestRESPParseInt checks the in-place integer parsing against strconv
// (RESP writes no plus sign, which strconv would take).
func TestRESPParseInt(t *testing.T) {
	for _, s := range []string{"0", "42", "-3", "9223372036854775807", "9223372036854775808", "", "-", "4x", "--1", " 1"} {
		want, werr := strconv.ParseInt(s, 10, 64)
		got, ok := parseInt([]byte(s))
		if ok != (werr == nil) || ok && got != want {
			t.Errorf("parseInt(%q) = %d, %v; strconv says %d, %v", s, got, ok, want, werr)
		}
	}
}
