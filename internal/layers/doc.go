// Package layers holds no code: its test pins which of coffer's packages may
// import which, the rules docs/architecture.md draws as a map.
package layers
