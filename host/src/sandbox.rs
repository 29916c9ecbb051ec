//! What a plugin call's store holds: a deny-all WASI context, the memory limiter, the
//! log lines it writes, and its view of the plugin's key/value state. The `host`
//! interface of the WIT is implemented here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::world::host::{self, Level};

/// Longest log line kept, in bytes.
const MAX_LINE: usize = 4 << 10;
/// Log lines kept per call.
const MAX_LINES: usize = 100;
/// Bytes of stdout and of stderr kept per call; a guest writing more fails its call.
pub const STDIO_CAPACITY: usize = 64 << 10;
/// Longest state key, in bytes.
const MAX_KEY: usize = 256;
/// Largest state value, in bytes.
const MAX_VALUE: usize = 64 << 10;
/// Most keys in one plugin's state.
pub const MAX_KEYS: usize = 10_000;

/// A plugin's key/value state, shared by its calls and persisted by the registry.
#[derive(Debug, Default)]
pub struct State {
    inner: Mutex<StateInner>,
}

#[derive(Debug, Default)]
struct StateInner {
    values: HashMap<String, Vec<u8>>,
    /// Keys changed since the last save: `None` means deleted.
    dirty: HashMap<String, Option<Vec<u8>>>,
}

impl State {
    /// State as loaded from the store.
    pub fn loaded(values: Vec<(String, Vec<u8>)>) -> Self {
        Self {
            inner: Mutex::new(StateInner {
                values: values.into_iter().collect(),
                dirty: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StateInner> {
        // A panic while holding the lock cannot leave the map half-written: every
        // update is one insert or remove.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.lock().values.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().values.get(key).cloned()
    }

    /// Applies the writes of a call that succeeded.
    fn apply(&self, writes: HashMap<String, Option<Vec<u8>>>) {
        let mut inner = self.lock();
        for (key, value) in writes {
            match &value {
                Some(v) => inner.values.insert(key.clone(), v.clone()),
                None => inner.values.remove(&key),
            };
            inner.dirty.insert(key, value);
        }
    }

    /// Takes the changes not saved yet: (puts, deletes).
    pub fn take_dirty(&self) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
        let dirty = std::mem::take(&mut self.lock().dirty);
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for (key, value) in dirty {
            match value {
                Some(v) => puts.push((key, v)),
                None => deletes.push(key),
            }
        }
        (puts, deletes)
    }

    /// Puts back changes whose save failed, unless a newer change superseded them.
    pub fn restore_dirty(&self, puts: Vec<(String, Vec<u8>)>, deletes: Vec<String>) {
        let mut inner = self.lock();
        for (key, value) in puts {
            inner.dirty.entry(key).or_insert(Some(value));
        }
        for key in deletes {
            inner.dirty.entry(key).or_insert(None);
        }
    }
}

/// A clock stopped at the epoch: plugins get no clock (events carry their times).
struct Stopped;

impl HostWallClock for Stopped {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Stopped {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The data of one call's store.
pub struct Ctx {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    log: Vec<(Level, String)>,
    dropped_lines: usize,
    state: Arc<State>,
    writes: HashMap<String, Option<Vec<u8>>>,
    keys: usize,
}

impl Ctx {
    /// A fresh context: no files, no environment, no arguments, no network, no clock,
    /// stdin closed, stdout and stderr captured.
    pub fn new(state: Arc<State>, memory_limit: usize) -> Self {
        let stdout = MemoryOutputPipe::new(STDIO_CAPACITY);
        let stderr = MemoryOutputPipe::new(STDIO_CAPACITY);
        let mut builder = WasiCtx::builder();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(Stopped)
            .monotonic_clock(Stopped);
        let keys = state.len();
        Self {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                memory: memory_limit,
                denied: false,
            },
            stdout,
            stderr,
            log: Vec::new(),
            dropped_lines: 0,
            state,
            writes: HashMap::new(),
            keys,
        }
    }

    /// The limiter the store consults on every memory and table growth.
    pub fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }

    /// Whether a growth was refused for the memory limit.
    pub fn memory_denied(&self) -> bool {
        self.limiter.denied
    }

    /// Makes this call's state writes permanent (the call succeeded and is not a dry
    /// run).
    pub fn commit_state(&mut self) {
        let writes = std::mem::take(&mut self.writes);
        if !writes.is_empty() {
            self.state.apply(writes);
        }
    }

    /// The call's log: its `log` lines, then what it wrote to stdout and stderr.
    pub fn take_log(&mut self) -> Vec<(Level, String)> {
        let mut lines = std::mem::take(&mut self.log);
        for (pipe, level) in [(&self.stdout, Level::Info), (&self.stderr, Level::Warn)] {
            let bytes = pipe.contents();
            for line in String::from_utf8_lossy(&bytes).lines() {
                if lines.len() >= MAX_LINES {
                    self.dropped_lines += 1;
                    continue;
                }
                lines.push((level, cut(line)));
            }
        }
        if self.dropped_lines > 0 {
            lines.push((
                Level::Warn,
                format!("{} more log lines were dropped", self.dropped_lines),
            ));
        }
        lines
    }
}

/// A plugin's log line as Tocsin logs and shows it: cut at [`MAX_LINE`] bytes, with
/// every control character escaped (`\n`, `\u{1b}`), so that a plugin can neither end
/// its line and forge one of Tocsin's nor colour or retitle an operator's terminal.
/// Unicode's bidirectional overrides are escaped too: they reorder what a reader sees.
fn cut(line: &str) -> String {
    let mut end = line.len().min(MAX_LINE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 8);
    for c in line[..end].chars() {
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if end < line.len() {
        out.push('…');
    }
    out
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Refuses memory beyond the per-instance limit, and remembers that it did so the
/// failure can be reported as a memory breach rather than a generic trap.
pub struct Limiter {
    memory: usize,
    denied: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.denied = true;
            // An error, not `Ok(false)`: the call stops here instead of the guest's
            // allocator aborting somewhere later with a less useful message.
            return Err(wasmtime::format_err!(
                "memory limit: the plugin asked for {desired} bytes, the limit is {}",
                self.memory
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl crate::world::types::Host for Ctx {}

impl host::Host for Ctx {
    fn log(&mut self, level: Level, message: String) {
        if self.log.len() >= MAX_LINES {
            self.dropped_lines += 1;
            return;
        }
        self.log.push((level, cut(&message)));
    }

    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        match self.writes.get(&key) {
            Some(value) => value.clone(),
            None => self.state.get(&key),
        }
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        if key.len() > MAX_KEY {
            return Err(format!(
                "key of {} bytes: the limit is {MAX_KEY}",
                key.len()
            ));
        }
        if value.len() > MAX_VALUE {
            return Err(format!(
                "value of {} bytes: the limit is {MAX_VALUE}",
                value.len()
            ));
        }
        let exists = match self.writes.get(&key) {
            Some(value) => value.is_some(),
            None => self.state.get(&key).is_some(),
        };
        if !exists {
            if self.keys >= MAX_KEYS {
                return Err(format!("the state holds {MAX_KEYS} keys, the limit"));
            }
            self.keys += 1;
        }
        self.writes.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: String) {
        let exists = match self.writes.get(&key) {
            Some(value) => value.is_some(),
            None => self.state.get(&key).is_some(),
        };
        if exists {
            self.keys -= 1;
        }
        self.writes.insert(key, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_cannot_end_itself_or_drive_the_terminal() {
        assert_eq!(
            cut("ok\n{\"level\":\"ERROR\"}\r\u{1b}[31m\u{202e}x"),
            "ok\\n{\"level\":\"ERROR\"}\\r\\u{1b}[31m\\u{202e}x"
        );
        assert_eq!(cut("héllo wörld"), "héllo wörld", "printable text is kept");
        let long = "é".repeat(MAX_LINE);
        let cut_line = cut(&long);
        assert!(cut_line.ends_with('…') && cut_line.len() <= MAX_LINE + '…'.len_utf8());
    }
}
