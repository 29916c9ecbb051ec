//! `tocsin`: serve the API, manage tokens, send events.

mod cli;

// Parsing a batch allocates many small strings per event; mimalloc handles that
// pattern markedly faster than the system allocator across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
