//! `shell`: Ballast's admin shell. A thin main over [`ballast::shell::cli::main`], which
//! returns the exit code (0 ok, 1 failed, 2 usage, 3 unreachable, 4 unsafe, 5 timeout).

fn main() {
    std::process::exit(ballast::shell::cli::main());
}
