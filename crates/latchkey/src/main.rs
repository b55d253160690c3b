//! The `latchkey` binary: parses the command line and runs it.

fn main() -> std::process::ExitCode {
    latchkey::cli::main()
}
