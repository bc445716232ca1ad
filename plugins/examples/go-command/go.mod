// A Prism generator plugin in Go: a WASI command module (GOOS=wasip1), standard library only.
module prism.dev/plugins/go-command

go 1.26.0
