//! Nagios and Icinga passive check results, as their external command file lines:
//!
//! ```text
//! [1700000000] PROCESS_SERVICE_CHECK_RESULT;web-1;HTTP;2;CRITICAL - connection refused
//! [1700000000] PROCESS_HOST_CHECK_RESULT;web-1;0;PING OK
//! ```
//!
//! Return code 0 (OK) is healthy; 1 (WARNING) and 3 (UNKNOWN) are unhealthy at low
//! priority; 2 (CRITICAL) is unhealthy at high priority. Host checks use the monitor
//! `host-alive`. Every query parameter of the ingest URL becomes a label
//! (`/v1/ingest/nagios?service=shop&region=eu`).

use tocsin_plugin::{Config, Event, Priority, RawInput, Status, Transformer};

struct Nagios;

fn monitor_name(service: &str) -> String {
    service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.:/-".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(128)
        .collect()
}

fn event(
    monitor: &str,
    host: &str,
    code: &str,
    output: &str,
    time: Option<i64>,
) -> Result<Event, String> {
    let (status, priority) = match code.trim() {
        "0" => (Status::Healthy, Priority::Low),
        "1" | "3" => (Status::Unhealthy, Priority::Low),
        "2" => (Status::Unhealthy, Priority::High),
        other => return Err(format!("unknown return code \"{other}\": expected 0-3")),
    };
    let mut event = Event::new(monitor_name(monitor), status)
        .label("host", host)
        .priority(priority);
    if !output.is_empty() {
        event = event.message(output);
    }
    if let Some(seconds) = time {
        event = event.since(seconds * 1000);
    }
    Ok(event)
}

impl Transformer for Nagios {
    fn transform(input: &RawInput, config: &Config) -> Result<Vec<Event>, String> {
        let text = std::str::from_utf8(&input.body)
            .map_err(|_| "the body is not UTF-8 text".to_string())?;
        let mut events = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let line = line.trim();
            let (time, command) = match line.strip_prefix('[').and_then(|l| l.split_once(']')) {
                Some((time, rest)) => (time.trim().parse::<i64>().ok(), rest.trim()),
                None => (None, line),
            };
            let fields: Vec<&str> = command.splitn(5, ';').collect();
            let mut event = match fields.as_slice() {
                ["PROCESS_SERVICE_CHECK_RESULT", host, service, code, output] => {
                    event(service, host, code, output, time)
                }
                ["PROCESS_HOST_CHECK_RESULT", host, code, output] => event("host-alive", host, code, output, time),
                ["PROCESS_HOST_CHECK_RESULT", host, code] => event("host-alive", host, code, "", time),
                _ => Err("expected PROCESS_SERVICE_CHECK_RESULT;host;service;code;output or PROCESS_HOST_CHECK_RESULT;host;code;output".into()),
            }
            .map_err(|e| format!("line {}: {e}", n + 1))?;
            for (key, value) in config.as_map() {
                if let Some(value) = value.as_str() {
                    event = event.label(key.as_str(), value);
                }
            }
            events.push(event);
        }
        Ok(events)
    }
}

tocsin_plugin::export_transformer!(Nagios);
