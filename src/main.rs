//! The `quarry` command: a thin shell over the library. [`cli`] parses arguments, draws
//! progress and prints summaries; everything it runs is the `quarry` library's.

mod cli;

// Conversion allocates per field on worker threads and frees on the buffering thread;
// jemalloc handles that cross-thread pattern with far less time in free() than glibc.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    // SAFETY: called once at start, before any thread exists; restoring the default SIGPIPE
    // action makes `quarry rules show ... | head` end quietly instead of panicking on a
    // closed stdout.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(cli::main());
}
