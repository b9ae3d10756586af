// Command testreport runs `go test -json` and prints its output as go test
// would, keeping the events in a file; given those files it prints a loud
// summary of what was skipped (a skipped test tested nothing), and fails
// when COWVOL_REQUIRE_ROOT=1 and a test skipped that is not an opt-in one.
//
//	testreport [-stream] -o unit.json -- go test -json ./...
//	testreport -summary [-allow-skip REGEXP] unit.json integration.json
//
// `make test` runs every go test through it and ends with the summary,
// whose last line reads "testreport: N passed, N failed, N skipped". Each
// recorded run counts on its own (the integration package runs twice), and
// a package that failed without a "--- FAIL" line counts the tests it
// left unfinished: those its "panic: test timed out" names as running, or
// those running when its test binary died; else the package itself.
package main
