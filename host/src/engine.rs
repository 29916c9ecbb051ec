//! The one wasmtime `Engine` every plugin runs on, configured in one place. Each choice
//! below is a sandboxing or speed decision; the limits a deployment may tune are in
//! [`Limits`].

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A call's deadline is counted in these ticks, so a
/// deadline is honoured to within one tick. 5 ms, not 1: the ticker thread then wakes
/// 200 times a second instead of 1,000, which steadies the cost of a call on a small
/// machine (docs/benchmarks.md, plugins).
pub const TICK: Duration = Duration::from_millis(5);

/// The limits every plugin call runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time one call may take before it is interrupted.
    pub deadline: Duration,
    /// Linear memory one instance may use, in bytes.
    pub memory: usize,
    /// Largest component accepted for upload, in bytes.
    pub max_component: usize,
    /// Wasm stack one call may use, in bytes (deep recursion traps past it).
    pub stack: usize,
    /// Most events a transformer may return from one call.
    pub max_events: usize,
    /// Most bytes of sections a collector may return from one call.
    pub max_sections_bytes: usize,
    /// Instances that may run at once (pipeline, ingest and test calls together).
    pub concurrent: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(50),
            memory: 64 << 20,
            max_component: 64 << 20,
            stack: 512 << 10,
            max_events: 10_000,
            max_sections_bytes: 256 << 10,
            concurrent: 128,
        }
    }
}

impl Limits {
    /// The limits of a process that serves one invocation at a time (a Lambda function):
    /// the pooling allocator reserves slots for 4 instances, not 128. An `api`
    /// invocation runs one transformer call, a `pipeline` invocation one filter call at a
    /// time and a `notify` invocation one collector call at a time; the spare slots
    /// cover a test call and an instance still being torn down. Fewer slots mean less
    /// address space reserved and less to set up at init.
    pub fn one_invocation() -> Self {
        Self {
            concurrent: 4,
            ..Self::default()
        }
    }

    /// The deadline in epoch ticks (at least one).
    pub fn deadline_ticks(&self) -> u64 {
        (self.deadline.as_millis() / TICK.as_millis()).max(1) as u64
    }
}

/// Builds the engine and starts its epoch ticker (a thread that stops when the engine
/// is dropped).
pub fn build(limits: &Limits) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    // Components only: plugins are WIT worlds, never bare core modules.
    config.wasm_component_model(true);
    // Epoch interruption, not fuel: it costs a load and compare at loop heads and
    // function entries, where fuel costs a counter update per basic block. The ticker
    // thread advances the epoch; each call's store sets its deadline in ticks.
    config.epoch_interruption(true);
    // Deep recursion becomes a clean "call stack exhausted" trap of that call.
    config.max_wasm_stack(limits.stack);
    // Plugins are compiled once per upload and run millions of times: optimise.
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // The pooling allocator: instance, memory and table slots are reserved up front
    // and reused, so a fresh instance per call costs microseconds, not an mmap each.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.concurrent)
        // Rust guests instantiate a few core modules (the program and WIT shims);
        // componentize-py's Python links a dozen or so.
        .max_core_instances_per_component(64)
        .total_core_instances(limits.concurrent * 16)
        .max_memories_per_component(4)
        .total_memories(limits.concurrent * 2)
        .max_tables_per_component(16)
        .total_tables(limits.concurrent * 8)
        // Python's interpreter has tens of thousands of functions in its table.
        .table_elements(100_000)
        // The pool's own cap on a memory: the same as the per-instance limit, so a
        // grow past it fails in the pool even if the limiter were bypassed.
        .max_memory_size(limits.memory)
        .max_core_instance_size(8 << 20)
        .max_component_instance_size(1 << 20)
        .table_keep_resident(64 << 10);
    // A fresh instance per call means a memory slot is reset after every call. Where
    // the kernel has PAGEMAP_SCAN (Linux 6.7+), Wasmtime finds the pages the call
    // dirtied and resets them with memset, keeping them resident: no madvise, no TLB
    // shootdown, no page faults on the next call. That halves the cost of a call
    // (docs/benchmarks.md, plugins). 2 MiB covers a Rust guest's stack, data and a batch's heap. Without
    // the ioctl, memset would clear the whole region blindly, so keep only the first
    // 64 KiB resident and let madvise do the rest.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(2 << 20);
    } else {
        pool.linear_memory_keep_resident(64 << 10);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("tocsin-plugin-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .map_err(|e| wasmtime::format_err!("cannot start the epoch ticker: {e}"))?;
    Ok(engine)
}
