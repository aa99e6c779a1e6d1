//go:build !race

package tlspolicy

// raceSlowdown stretches time bounds under the race detector only.
const raceSlowdown = 1
