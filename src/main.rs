//! The `god` binary: parse arguments, run the command, turn its outcome into an exit code.

fn main() -> std::process::ExitCode {
    god::cli::main()
}
