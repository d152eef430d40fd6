// Package mig is the message ID: its 64-bit layout and the lock-free
// generator that issues it for one worker.
//
//	63 | 62 ..................... 24 | 23 ...... 18 | 17 .......... 0
//	 0 | timestamp: 39 bits, 10 ms  | worker: 6    | sequence: 18
//	   | ticks since the epoch      | 0..63        | 0..262143
//
// The epoch is configuration ([Layout]); decoding an ID needs the same
// epoch it was made with, so it is a value passed around, never a global.
package mig
