package loadtest

import (
	"errors"
	"fmt"
)

// Errors of this package.
var (
	// ErrConfig is wrapped by every error a Config, Dist or CheckConfig
	// Validate returns; the error is a *FieldError naming the field.
	ErrConfig = errors.New("loadtest: invalid configuration")
	// ErrNoClient is returned by Run when the mode's client is missing
	// from Targets (no IDClient for ModeIDs, or a nil one in IDsEach; no
	// SeqClient for ModeSeq).
	ErrNoClient = errors.New("loadtest: no client for the mode")
	// ErrRedis is returned by Run when the Redis of Config.RedisAddr
	// cannot be reached before its phase starts.
	ErrRedis = errors.New("loadtest: redis unreachable")
	// ErrHistoryFull is returned by a Checker's Record methods once
	// CheckConfig.MaxRecords values are held: the answer was not recorded.
	// The runner then stops its load early, and says so in the Result.
	ErrHistoryFull = errors.New("loadtest: checker history full")
	// ErrInvalidAnswer is returned by a Checker's Record methods for an
	// answer that cannot have happened: it returned before it was sent,
	// or was sent before the run started. It is the caller's bug, not the
	// server's, and is not recorded.
	ErrInvalidAnswer = errors.New("loadtest: invalid answer record")
	// ErrRESP is wrapped by the errors of the Redis client when a reply
	// breaks the protocol or is a Redis error reply.
	ErrRESP = errors.New("loadtest: redis protocol error")
)

// FieldError is a configuration field whose value is not allowed. It
// wraps ErrConfig. A plain value. Field is the Go name of the field as a path from the
// struct validated (for example "Clients", "Dist.ZipfS",
// "Check.Tolerance"), so a command can tell which of its flags was wrong.
type FieldError struct {
	Field  string
	Value  any
	Reason string // a phrase such as "must be at least 1"
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("loadtest: %s %v: %s", e.Field, e.Value, e.Reason)
}

func (e *FieldError) Unwrap() error { return ErrConfig }

func fieldErr(field string, value any, reason string, args ...any) error {
	return &FieldError{Field: field, Value: value, Reason: fmt.Sprintf(reason, args...)}
}

// prefixField returns err with prefix+"." before its field, if it is a
// *FieldError; used when a nested config is validated.
func prefixField(prefix string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		c := *fe
		c.Field = prefix + "." + c.Field
		return &c
	}
	return err
}
