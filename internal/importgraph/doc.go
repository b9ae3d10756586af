// Package importgraph holds no code: its test checks that the module's
// import graph stays one-way, cmd -> (metrics ->) control, fusefs and the
// other front ends -> cow ->
// cow/lineage -> the leaves (cow/snapfmt, cow/snapstore, meta, kms), so
// that the snapshot format and the stores never come to depend on the
// engine, nor the engine on its front ends.
package importgraph
