//! The `qdbg` command: parse the command line, dispatch, map errors to exit codes
//! (2 for bad input or usage, 1 for qdbg's own failures).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
