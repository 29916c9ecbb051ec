//! A filter that misbehaves on request, for the host's sandbox tests. The filter's
//! `mode` param picks what it does; the probes report what they saw as the drop
//! reason so the test can check that the sandbox gave them nothing.

use std::hint::black_box;

use tocsin_plugin::{Batch, Config, Filter, Verdict, log, state};

struct Chaos;

fn recurse(n: u64) -> u64 {
    // black_box keeps the compiler from turning this into a loop.
    black_box(n) + if n == 0 { 0 } else { recurse(black_box(n + 1)) }
}

fn report(batch: &Batch, text: String) -> Vec<Verdict> {
    batch
        .events()
        .map(|_| Verdict::Drop(text.clone()))
        .collect()
}

impl Filter for Chaos {
    fn filter(batch: &Batch, config: &Config) -> Result<Vec<Verdict>, String> {
        let mode = config.str("mode").unwrap_or("keep");
        Ok(match mode {
            "keep" => batch.events().map(|_| Verdict::Keep).collect(),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                // Reserve without touching: the limit, not the deadline, must stop it.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = Vec::with_capacity(4 << 20);
                    chunk.push(1u8);
                    hoard.push(black_box(chunk));
                }
            }
            "recurse" => report(batch, recurse(1).to_string()),
            "flood" => batch
                .events()
                .map(|_| Verdict::Drop("x".repeat(8 << 20)))
                .collect(),
            "miscount" => (0..batch.len() + 5).map(|_| Verdict::Keep).collect(),
            "panic" => panic!("chaos asked to panic"),
            "error" => return Err("chaos asked to fail".into()),
            "file" => report(
                batch,
                format!(
                    "file: {:?}",
                    std::fs::read_to_string("/etc/passwd").map(|s| s.len())
                ),
            ),
            "dir" => report(
                batch,
                format!("dir: {:?}", std::fs::read_dir("/").map(|d| d.count())),
            ),
            "env" => report(
                batch,
                format!(
                    "env: {} vars, args {}",
                    std::env::vars().count(),
                    std::env::args().count()
                ),
            ),
            "net" => {
                let port = config.str("port").unwrap_or("80");
                let result =
                    std::net::TcpStream::connect(format!("127.0.0.1:{port}")).map(|_| "connected");
                report(batch, format!("net: {result:?}"))
            }
            "clock" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                report(batch, format!("clock: {now}"))
            }
            "log" => {
                log::info("hello from chaos");
                println!("stdout line");
                eprintln!("stderr line");
                batch.events().map(|_| Verdict::Keep).collect()
            }
            "forge" => {
                // A log line that tries to end itself and print a forged one, in colour.
                let forged = config.str("line").unwrap_or("forged");
                log::error(&format!("real\n{forged}\r\u{1b}[31mred\u{1b}[0m"));
                println!("out\u{1b}]0;title\u{7}");
                batch.events().map(|_| Verdict::Keep).collect()
            }
            "count" => {
                let n = state::get_str("calls")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    + 1;
                state::set("calls", n.to_string().as_bytes())?;
                report(batch, format!("calls: {n}"))
            }
            other => return Err(format!("unknown mode {other}")),
        })
    }
}

tocsin_plugin::export_filter!(Chaos);
