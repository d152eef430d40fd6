#include "textflag.h"

// func readTSC() uint64
//
// RDTSC, unordered: it may read the counter while instructions before
// it are still in flight (see tscReorder).
TEXT ·readTSC(SB),NOSPLIT,$0-8
	RDTSC
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

// func readTSCOrdered() uint64
//
// RDTSCP reads the counter once every earlier instruction has executed;
// it also writes IA32_TSC_AUX to CX, which is ignored.
TEXT ·readTSCOrdered(SB),NOSPLIT,$0-8
	RDTSCP
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

// func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB),NOSPLIT,$0-24
	MOVL	leaf+0(FP), AX
	MOVL	sub+4(FP), CX
	CPUID
	MOVL	AX, eax+8(FP)
	MOVL	BX, ebx+12(FP)
	MOVL	CX, ecx+16(FP)
	MOVL	DX, edx+20(FP)
	RET
