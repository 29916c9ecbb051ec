//! `tocsin`: serve the API, manage tokens, send events, suppress, and manage plugins.
//!
//! ```text
//! main                    the allocator, then cli::main
//! cli                     arguments (clap derive), logging, one module per command:
//!   serve                 the local server, composed by tocsin_server
//!   token                 tokens, straight on the database (tocsin_api::auth)
//!   migrate               the schema, as a deploy step
//!   send, suppress, plugin  clients of a running server's HTTP API
//!   database              the --database-url option of serve and token
//! ```
//!
//! Dependencies point down the list: plugin reuses suppress's HTTP client, serve,
//! token and migrate share database, and nothing names cli's root from below. The binary is a
//! runner: it parses, opens what a command needs, and calls the same core functions as
//! the API.

mod cli;

// Parsing a batch allocates many small strings per event; mimalloc handles that
// pattern markedly faster than the system allocator across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
