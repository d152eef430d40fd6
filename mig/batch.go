package mig

// Batch is a block of IDs reserved by one NextN call: Len consecutive
// (tick, sequence) slots of one worker. Within a tick the IDs are
// consecutive integers; where the block crosses into the next tick the
// integers jump, so a Batch is read as runs ([Batch.Runs]) or expanded
// ([Batch.AppendIDs]). A Batch is an immutable value, safe for concurrent
// use.
type Batch struct {
	first      uint64 // packed tick<<SeqBits | seq
	n          uint32
	workerBits uint64
}

// Run is Count consecutive IDs starting at First.
type Run struct {
	First ID
	Count uint32
}

// Len returns the number of IDs in the batch.
func (b Batch) Len() int { return int(b.n) }

func (b Batch) id(slot uint64) ID {
	return ID(slot>>SeqBits<<tickShift | b.workerBits | slot&MaxSeq)
}

// First returns the smallest ID of the batch, or 0 for an empty batch.
func (b Batch) First() ID {
	if b.n == 0 {
		return 0
	}
	return b.id(b.first)
}

// Last returns the largest ID of the batch, or 0 for an empty batch.
func (b Batch) Last() ID {
	if b.n == 0 {
		return 0
	}
	return b.id(b.first + uint64(b.n) - 1)
}

// Runs appends the batch's runs to dst, in increasing order, and returns
// the extended slice. A batch of at most MaxBatch IDs has at most 2 runs.
func (b Batch) Runs(dst []Run) []Run {
	slot, left := b.first, uint64(b.n)
	for left > 0 {
		inTick := min(left, MaxSeq+1-slot&MaxSeq)
		dst = append(dst, Run{First: b.id(slot), Count: uint32(inTick)})
		slot += inTick
		left -= inTick
	}
	return dst
}

// AppendIDs appends every ID of the batch to dst in increasing order.
func (b Batch) AppendIDs(dst []ID) []ID {
	for i := range uint64(b.n) {
		dst = append(dst, b.id(b.first+i))
	}
	return dst
}
