//go:build race

package main

// raceEnabled tells the binary-building tests to build with -race too: the
// packages are then in the build cache already, and only linking is left.
const raceEnabled = true
