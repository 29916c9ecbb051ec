//! Lines for Tocsin's log, tagged with the plugin and its team. At most 100 lines of
//! 4 KiB are kept per call; `println!` and `eprintln!` land there too.

use crate::bindings::tocsin::plugin::host::{self, Level};

/// Logs at error level.
pub fn error(message: &str) {
    host::log(Level::Error, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    host::log(Level::Warn, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    host::log(Level::Info, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    host::log(Level::Debug, message);
}
