//! The `qdbg` command: parse the command line, dispatch, map errors to exit codes
//! (2 for bad input or usage, 1 for qdbg's own failures).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // `qdbg ... | head` closes our stdout early: die quietly, as other command-line tools
    // do, instead of panicking on the failed write (Rust ignores SIGPIPE by default).
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    cli::main()
}
