//! A storm scenario with ground truth: one realistic hour of a fleet, as a timeline of
//! events, and the exact incidents that must come out of it.
//!
//! The hour (times in scenario minutes):
//! - every instance reports `Health`, `Disk` and `DnsResolution` every
//!   [`Params::report_every_ms`], almost always a steady repeat;
//! - 20-35: DNS fails in one region: every instance there turns `DnsResolution`
//!   unhealthy at once (its events group by monitor and region: one incident);
//! - 10-40: a maintenance suppression on one service in one region, whose instances
//!   reboot (unhealthy `Health`) from 15 to 25: nothing may come out of it;
//! - all hour: a few retired hosts still report unhealthy: dropped, never an incident;
//! - all hour: one check changes status at every report: one flapping alert;
//! - a handful of real, independent `Disk` failures at different times: one incident
//!   each.

use serde_json::{Value, json};

/// Scenario minute in milliseconds (scaled runs shrink it).
pub const MINUTE: i64 = 60_000;

/// The scenario's size.
#[derive(Debug, Clone)]
pub struct Params {
    /// Instances, spread over [`REGIONS`] and [`SERVICES`].
    pub instances: usize,
    /// Each identity reports this often (scenario ms).
    pub report_every_ms: i64,
    /// Length of the scenario in minutes.
    pub minutes: i64,
}

impl Params {
    /// The full hour: 6,000 instances, three checks each, every 10 s (1,800 events/s).
    pub fn hour() -> Self {
        Self {
            instances: 6_000,
            report_every_ms: 10_000,
            minutes: 60,
        }
    }

    /// A scaled-down hour for a test through the API: 60 instances every 2 minutes.
    pub fn small() -> Self {
        Self {
            instances: 60,
            report_every_ms: 2 * MINUTE,
            minutes: 60,
        }
    }
}

/// Regions of the fleet; DNS fails in the first.
pub const REGIONS: [&str; 3] = ["eu-west-1a", "us-east-1", "us-west-2"];
/// Services of the fleet; the first is under maintenance in `us-east-1`.
pub const SERVICES: [&str; 10] = [
    "bender", "flexo", "checkout", "search", "cart", "billing", "auth", "media", "mail", "api",
];
/// Where DNS fails.
pub const DNS_REGION: &str = "eu-west-1a";
/// What maintenance covers.
pub const MAINTENANCE: (&str, &str) = ("bender", "us-east-1");
/// Maintenance window (minutes), and when its instances reboot.
pub const MAINTENANCE_WINDOW: (i64, i64) = (10, 40);
const REBOOT: (i64, i64) = (15, 25);
const DNS_OUTAGE: (i64, i64) = (20, 35);
/// Real failures: (minute it starts, minute it recovers or none).
const FAILURES: [(i64, Option<i64>); 5] = [
    (5, Some(12)),
    (18, None),
    (27, Some(50)),
    (41, Some(44)),
    (52, None),
];
/// Service with the retired hosts.
pub const RETIRED_SERVICE: &str = "flexo";

/// One instance of the fleet.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `i-00042`.
    pub name: String,
    /// Its service.
    pub service: &'static str,
    /// Its region.
    pub region: &'static str,
}

/// The fleet, the timeline and what must come out.
#[derive(Debug)]
pub struct Storm {
    /// Events by scenario time (ms from the start), in order.
    pub timeline: Vec<(i64, Value)>,
    /// Instances the catalogue marks retired.
    pub retired: Vec<String>,
    /// The suppression to create before minute 10 (with its times as offsets).
    pub suppression_targets: Value,
    /// Grouping keys of exactly the incidents that must open.
    pub expected_keys: Vec<String>,
    /// DNS outage key and how many alerts it must hold.
    pub dns: (String, usize),
    /// The flapping check's key.
    pub flapping_key: String,
}

fn instance(i: usize) -> Instance {
    Instance {
        name: format!("i-{i:05}"),
        region: REGIONS[i % REGIONS.len()],
        service: SERVICES[(i / REGIONS.len()) % SERVICES.len()],
    }
}

fn event(monitor: &str, healthy: bool, at: &Instance) -> Value {
    json!({
        "alert": {"monitor": monitor, "status": if healthy { "healthy" } else { "unhealthy" }},
        "context": {"service": at.service, "region": at.region, "instance": at.name},
    })
}

/// Builds the scenario.
pub fn generate(params: &Params) -> Storm {
    let fleet: Vec<Instance> = (0..params.instances).map(instance).collect();
    // Roles: picked deterministically away from each other.
    let retired: Vec<usize> = fleet
        .iter()
        .enumerate()
        .filter(|(_, i)| i.service == RETIRED_SERVICE && i.region == "us-west-2")
        .map(|(n, _)| n)
        .take(3)
        .collect();
    let flapper = fleet
        .iter()
        .position(|i| i.service == "search" && i.region == "us-west-2")
        .unwrap_or(0);
    // Each failure on its own service, outside the DNS region and the maintenance.
    let failing: Vec<usize> = ["checkout", "cart", "billing", "auth", "media"]
        .iter()
        .filter_map(|service| {
            fleet
                .iter()
                .position(|i| i.service == *service && i.region == "us-east-1")
        })
        .collect();
    let dns_alerts = fleet.iter().filter(|i| i.region == DNS_REGION).count();

    let mut timeline = Vec::new();
    let end = params.minutes * MINUTE;
    let step = params.report_every_ms;
    for (n, inst) in fleet.iter().enumerate() {
        // Instances report out of phase, as real schedulers do (to the second, or to
        // 30 s in the scaled run so that a test sends a few larger requests).
        let grain = if step >= MINUTE { 30_000 } else { 1_000 };
        let phase = (n as i64 * 7_919) % step / grain * grain;
        let mut t = phase;
        let mut reports = 0;
        while t < end {
            reports += 1;
            let minute = t / MINUTE;
            let in_window = |(from, to): (i64, i64)| minute >= from && minute < to;
            let mut health = !in_window(REBOOT) || (inst.service, inst.region) != MAINTENANCE;
            if retired.contains(&n) {
                health = false;
            }
            if n == flapper {
                // Changes at every report.
                health = reports % 2 == 0;
            }
            let mut disk = true;
            if let Some(f) = failing.iter().position(|x| *x == n) {
                let (from, to) = FAILURES[f];
                disk = !(minute >= from && to.is_none_or(|to| minute < to));
            }
            let dns = !(inst.region == DNS_REGION && in_window(DNS_OUTAGE));
            timeline.push((t, event("Health", health, inst)));
            timeline.push((t, event("Disk", disk, inst)));
            let mut dns_event = event("DnsResolution", dns, inst);
            dns_event["grouping"] = json!({"keys": ["${alert.monitor}", "${context.region}"]});
            timeline.push((t, dns_event));
            t += step;
        }
    }
    timeline.sort_by_key(|(t, _)| *t);

    let key = |monitor: &str, i: &Instance| format!("{monitor} | {} | {}", i.service, i.region);
    let dns_key = format!("DnsResolution | {DNS_REGION}");
    let flapping_key = key("Health", &fleet[flapper]);
    let mut expected_keys: Vec<String> = failing.iter().map(|n| key("Disk", &fleet[*n])).collect();
    expected_keys.push(dns_key.clone());
    expected_keys.push(flapping_key.clone());
    expected_keys.sort();
    Storm {
        timeline,
        retired: retired.iter().map(|n| fleet[*n].name.clone()).collect(),
        suppression_targets: json!([{"service": MAINTENANCE.0, "region": MAINTENANCE.1}]),
        expected_keys,
        dns: (dns_key, dns_alerts),
        flapping_key,
    }
}
