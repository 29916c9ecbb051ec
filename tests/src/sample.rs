//! What the long-running benchmarks (overload, soak) sample from a running `tocsin
//! serve` every second: a series of its `/metrics`, its resident memory, the size of a
//! SQLite file with its WAL.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The sum of every sample of `series` (all its label sets) in a Prometheus text
/// exposition; 0 when it is absent.
pub fn metric(text: &str, series: &str) -> f64 {
    metric_where(text, series, "")
}

/// [`metric`] over the samples whose labels contain `label` (such as
/// `outcome="dead"`); every sample when `label` is empty.
pub fn metric_where(text: &str, series: &str, label: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter(|line| label.is_empty() || line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0
}

/// Resident memory of process `pid` in MiB (`VmRSS`), 0 when it cannot be read.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Size of a SQLite file plus its `-wal`, in MiB (a missing file counts 0).
pub fn file_mib(path: &Path) -> f64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    (size(path) + size(&wal)) as f64 / (1024.0 * 1024.0)
}

/// CPU time (user and system) process `pid` has used so far, in seconds; 0 when it
/// cannot be read. Linux counts it in ticks of 1/100 s.
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The fields after the command name (which may hold spaces), from `state`:
            // utime and stime are the 12th and 13th.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
            Some((ticks(11)? + ticks(12)?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// CPU time the whole machine has spent busy (neither idle nor waiting for I/O) so
/// far, in seconds over all cores; 0 when it cannot be read.
pub fn machine_busy_seconds() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let ticks: Vec<f64> = stat
                .lines()
                .next()?
                .strip_prefix("cpu ")?
                .split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal (guest time is in user).
            let busy: f64 = ticks.iter().take(8).sum::<f64>()
                - ticks.get(3).copied().unwrap_or(0.0)
                - ticks.get(4).copied().unwrap_or(0.0);
            Some(busy / 100.0)
        })
        .unwrap_or(0.0)
}

/// The TrueType font the benchmarks' charts write their text in (Debian's
/// fonts-dejavu-core, installed by `infra/deps.sh`), for `plotters::style::register_font`.
pub fn chart_font() -> anyhow::Result<&'static [u8]> {
    let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
        .context("no DejaVuSans.ttf: run `bash infra/deps.sh` (fonts-dejavu-core)")?;
    Ok(Box::leak(font.into_boxed_slice()))
}

/// Waits until the server whose metrics are at `metrics_url` has processed every
/// accepted event (`tocsin_pipeline_lag_events` is 0), reading them every `every`.
///
/// A benchmark watches the server this way, as an operator would, rather than through
/// a second store on its database: that store's own WAL checkpoints would compete with
/// the server's and change what is measured.
pub async fn caught_up(
    client: &reqwest::Client,
    metrics_url: &str,
    every: std::time::Duration,
) -> anyhow::Result<()> {
    loop {
        let text = client
            .get(metrics_url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        anyhow::ensure!(
            text.contains("tocsin_pipeline_lag_events"),
            "no lag in the metrics at {metrics_url}"
        );
        if metric(&text, "tocsin_pipeline_lag_events") == 0.0 {
            return Ok(());
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_label_sets_and_filters_by_label() {
        let text = "# HELP x\nx_total{outcome=\"sent\"} 3\nx_total{outcome=\"dead\"} 2\nx_total_more 9\nx 1\n";
        assert_eq!(metric(text, "x_total"), 5.0);
        assert_eq!(metric_where(text, "x_total", "outcome=\"dead\""), 2.0);
        assert_eq!(metric(text, "x"), 1.0);
        assert_eq!(metric(text, "absent"), 0.0);
    }
}
