//! Drops events from retired hosts: the `host` or `instance` label is in the filter's
//! `hosts` param.
//!
//! ```yaml
//! filters:
//!   - type: plugin
//!     params: { name: retired-hosts, hosts: [web-7, web-8] }
//! ```

use tocsin_plugin::{Batch, Config, Filter, Verdict};

struct RetiredHosts;

impl Filter for RetiredHosts {
    fn filter(batch: &Batch, config: &Config) -> Result<Vec<Verdict>, String> {
        let hosts: Vec<String> = config.get("hosts")?.unwrap_or_default();
        Ok(batch
            .events()
            .map(|event| {
                let host = event.label("host").or_else(|| event.label("instance"));
                match host {
                    Some(host) if hosts.iter().any(|h| h == host) => {
                        Verdict::Drop(format!("host {host} is retired"))
                    }
                    _ => Verdict::Keep,
                }
            })
            .collect())
    }
}

tocsin_plugin::export_filter!(RetiredHosts);
