//go:build race

package client

// raceEnabled shrinks the long-running test: the race detector makes each
// round several times slower.
const raceEnabled = true
