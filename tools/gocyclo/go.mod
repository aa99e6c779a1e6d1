// Pins gocyclo for scripts/test.sh, in a module of its own so that its
// dependencies never enter coffer's build nor another linter's.
module github.com/coffer-backup/coffer/tools/gocyclo

go 1.26.8

tool github.com/fzipp/gocyclo/cmd/gocyclo

require github.com/fzipp/gocyclo v0.6.0 // indirect
