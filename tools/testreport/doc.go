// Command testreport runs `go test -json` and prints its output as go test
// would, keeping the events in a file; given those files it prints a loud
// summary of what was skipped (a skipped test tested nothing), and fails
// when COWVOL_REQUIRE_ROOT=1 and a test skipped that is not an opt-in one.
//
//	testreport [-stream] -o unit.json -- go test -json ./...
//	testreport -summary [-allow-skip REGEXP] unit.json integration.json
//
// `make test` runs every go test through it and ends with the summary,
// whose last line reads "testreport: N passed, N failed, N skipped".
package main
