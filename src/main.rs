//! The `quarry` command: a thin shell over the library (see `quarry::cli`).

fn main() {
    // SAFETY: called once at start, before any thread exists; restoring the default SIGPIPE
    // action makes `quarry rules show ... | head` end quietly instead of panicking on a
    // closed stdout.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(quarry::cli::main());
}
