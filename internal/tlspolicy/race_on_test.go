//go:build race

package tlspolicy

// raceSlowdown stretches time bounds: the race detector makes handshakes
// several times slower.
const raceSlowdown = 3
