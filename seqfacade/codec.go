package seqfacade

import (
	"encoding/binary"
	"fmt"
)

// groupFormat is the first byte of every persisted group value. A value in
// a format this code does not know is refused, never guessed at.
const groupFormat = 1

// encodeGroup returns a group's persisted value: the format byte, then
// each section's max_seq as 8 bytes little-endian, in section order.
// Fixed width keeps the whole 2^32 uid space at defaults to 336 keys of
// 1,025 bytes.
func encodeGroup(maxSeqs []uint64) []byte {
	b := make([]byte, 1, 1+8*len(maxSeqs))
	b[0] = groupFormat
	for _, m := range maxSeqs {
		b = binary.LittleEndian.AppendUint64(b, m)
	}
	return b
}

// decodeGroup parses a value written by encodeGroup for a group of n
// sections. It returns an error wrapping ErrCorrupt for a value of another
// format or length, or with a max_seq above MaxSeq.
func decodeGroup(b []byte, n int) ([]uint64, error) {
	switch {
	case len(b) == 0:
		return nil, fmt.Errorf("%w: empty value", ErrCorrupt)
	case b[0] != groupFormat:
		return nil, fmt.Errorf("%w: unknown format %d", ErrCorrupt, b[0])
	}
	if len(b) != 1+8*n {
		return nil, fmt.Errorf("%w: %d bytes for %d sections, want %d", ErrCorrupt, len(b), n, 1+8*n)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[1+8*i:])
		if out[i] > MaxSeq {
			return nil, fmt.Errorf("%w: section %d's max_seq %d is above %d", ErrCorrupt, i, out[i], uint64(MaxSeq))
		}
	}
	return out, nil
}
