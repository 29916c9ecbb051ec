//! `tocsin`: serve the API, manage tokens, send events.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
