// Package formattest pins coffer's on-disk format (docs/format.md): a frozen
// version-1 repository every build must restore, and known-answer vectors.
//
// It holds only tests and their testdata; nothing imports it.
package formattest
