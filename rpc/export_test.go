package rpc

// DecodeNextIDs is decodeNextIDs.
var DecodeNextIDs = decodeNextIDs
