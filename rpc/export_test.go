package rpc

// DecodeNextIDs is decodeNextIDs.
var DecodeNextIDs = decodeNextIDs

// TwirpError is twirpError.
var TwirpError = twirpError
