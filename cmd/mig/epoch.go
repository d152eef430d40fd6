package main

import (
	"github.com/migsvc/mig/mig"
)

// epochFlag is a flag.Value holding the ID layout given by an RFC 3339
// epoch. An invalid epoch is refused when the flag is set, so the flag
// package reports it as a usage error naming the flag and the value.
type epochFlag struct {
	text   string
	layout mig.Layout
}

// newEpochFlag returns an epochFlag holding mig.DefaultEpoch.
func newEpochFlag() *epochFlag {
	return &epochFlag{text: mig.DefaultEpoch, layout: mig.DefaultLayout()}
}

func (e *epochFlag) String() string {
	if e == nil {
		return ""
	}
	return e.text
}

func (e *epochFlag) Set(s string) error {
	l, err := mig.ParseLayout(s)
	if err != nil {
		return err
	}
	e.text, e.layout = s, l
	return nil
}
