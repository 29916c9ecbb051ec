//! The plugin's own key/value state, kept by the host across calls, versions and
//! restarts. Writes of a call that fails are discarded; a dry run (`tocsin plugin
//! test`) reads the state but its writes are never kept.

use crate::bindings::tocsin::plugin::host;

/// The value of `key`, if set.
pub fn get(key: &str) -> Option<Vec<u8>> {
    host::get(key)
}

/// The value of `key` as UTF-8 text, if set and text.
pub fn get_str(key: &str) -> Option<String> {
    host::get(key).and_then(|v| String::from_utf8(v).ok())
}

/// Sets `key` (at most 256 bytes) to `value` (at most 64 KiB); a plugin holds at most
/// 10,000 keys.
pub fn set(key: &str, value: &[u8]) -> Result<(), String> {
    host::set(key, value)
}

/// Removes `key`.
pub fn delete(key: &str) {
    host::delete(key);
}
