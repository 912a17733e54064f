//! Ballast's integration tests, in one binary (one build, one link): in-process clusters
//! on 127.0.0.1:0 driven by the real `shell` binary, real `meta-server` and
//! `replica-server` processes, golden transcripts, and pseudo-terminal tests of the REPL.

mod util;

mod binaries;
mod completions;
mod data;
mod golden;
mod meta_api;
mod meta_group;
mod pty;
mod safety;
mod scale;
mod scale_in;
mod shell_cli;
