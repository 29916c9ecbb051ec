//! Back-pressure under a sustained overload: RSS, journal size and lag of `tocsin serve`
//! over five minutes of more load than its pipeline can process, with the lag bound and
//! (for contrast, shorter) without it; charts as PNGs in `docs/`.
//!
//! `cargo bench -p tocsin-tests --bench overload` (after `bash infra/deps.sh`: wrk, and
//! fonts-dejavu-core for the charts' text). The load is the ingest benchmark's worst case
//! (a 10,000-identity fleet, 28 % state changes, batches of 100) from wrk at full speed;
//! the pipeline processes less than the journal takes. Every second the bench reads
//! `/metrics` (lag, accepted and refused events), the process's RSS and the journal
//! file's size (with its WAL); after the load it follows the catch-up.
//!
//! Options (after `--`): `--seconds N` of bounded overload (default 300),
//! `--unbounded-seconds N` (default 60; 0 skips that phase), `--max-lag N` (default
//! 200000), `--connections N` (default 8), `--out DIR` (default `docs`).

#![allow(clippy::print_stdout, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use plotters::prelude::*;
use tocsin_tests::load::{BATCH, FLEET, load, tocsin_batches};
use tocsin_tests::sample::{file_mib, metric, rss_mib};
use tocsin_tests::{Server, create_token, sqlite_url, workspace};

struct Settings {
    seconds: u64,
    unbounded_seconds: u64,
    max_lag: u64,
    connections: usize,
    out: PathBuf,
}

fn settings() -> anyhow::Result<Settings> {
    let mut settings = Settings {
        seconds: 300,
        unbounded_seconds: 60,
        max_lag: 200_000,
        connections: 8,
        out: workspace().join("docs"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => settings.seconds = value()?.parse()?,
            "--unbounded-seconds" => settings.unbounded_seconds = value()?.parse()?,
            "--max-lag" => settings.max_lag = value()?.parse()?,
            "--connections" => settings.connections = value()?.parse()?,
            "--out" => settings.out = PathBuf::from(value()?),
            "--bench" => {}
            other => bail!("unknown option {other}"),
        }
    }
    Ok(settings)
}

/// One second of a run.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    at: f64,
    rss_mib: f64,
    journal_mib: f64,
    lag_events: f64,
    lag_seconds: f64,
    accepted: f64,
    refused: f64,
}

/// A run: its samples and when its load stopped.
struct Run {
    name: String,
    samples: Vec<Sample>,
    load_seconds: f64,
    caught_up_after: Option<f64>,
}

fn sample(server: &Server, metrics_url: &str, journal: &Path, started: Instant) -> Sample {
    let text = reqwest::blocking::get(metrics_url)
        .and_then(|r| r.text())
        .unwrap_or_default();
    Sample {
        at: started.elapsed().as_secs_f64(),
        rss_mib: rss_mib(server.pid()),
        journal_mib: file_mib(journal),
        lag_events: metric(&text, "tocsin_pipeline_lag_events"),
        lag_seconds: metric(&text, "tocsin_pipeline_lag_seconds"),
        accepted: metric(&text, "tocsin_events_accepted_total"),
        refused: metric(&text, "tocsin_events_rejected_total"),
    }
}

fn run(settings: &Settings, name: &str, bound: Option<u64>, seconds: u64) -> anyhow::Result<Run> {
    let (dir, db_url) = sqlite_url();
    let token = create_token(&db_url, &["--admin"])?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let metrics_listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--metrics-listen", &metrics_listen];
    let bound_text = bound.map(|b| b.to_string());
    if let Some(bound) = &bound_text {
        args.extend(["--max-lag-events", bound]);
    }
    let server = Server::start(&db_url, &args, &[])?;
    let metrics_url = format!("http://{metrics_listen}/metrics");
    let journal = dir.path().join("tocsin.journal.db");
    anyhow::ensure!(journal.exists(), "no journal file at {}", journal.display());
    let batches = tocsin_batches(2 * FLEET / BATCH * 7);
    let url = format!("{}/v1/events", server.url);
    let connections = settings.connections;
    let started = Instant::now();
    let loader =
        std::thread::spawn(move || load(&url, Some(&token), &batches, connections, seconds));
    let mut samples = Vec::new();
    while !loader.is_finished() {
        samples.push(sample(&server, &metrics_url, &journal, started));
        std::thread::sleep(Duration::from_secs(1));
    }
    let outcome = loader
        .join()
        .map_err(|_| anyhow::anyhow!("wrk thread panicked"))??;
    let load_seconds = started.elapsed().as_secs_f64();
    // The catch-up, for at most two minutes.
    let mut caught_up_after = None;
    while started.elapsed().as_secs_f64() < load_seconds + 120.0 {
        let now = sample(&server, &metrics_url, &journal, started);
        samples.push(now);
        if now.lag_events == 0.0 {
            caught_up_after = Some(now.at - load_seconds);
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let last = samples.last().copied().unwrap_or_default();
    let max = |f: fn(&Sample) -> f64| samples.iter().map(f).fold(0.0, f64::max);
    println!(
        "{name}: {seconds} s at wrk's {:.0} requests/s ({} non-2xx): accepted {:.0} events ({:.0}/s), refused {:.0}; \
         max lag {:.0} events / {:.1} s; max RSS {:.0} MiB; max journal {:.0} MiB; {}",
        outcome.events_per_second / BATCH as f64,
        outcome.errors,
        last.accepted,
        last.accepted / load_seconds,
        last.refused,
        max(|s| s.lag_events),
        max(|s| s.lag_seconds),
        max(|s| s.rss_mib),
        max(|s| s.journal_mib),
        match caught_up_after {
            Some(s) => format!("caught up {s:.1} s after the load"),
            None => format!(
                "still {:.0} events behind 120 s after the load",
                last.lag_events
            ),
        }
    );
    drop(server);
    Ok(Run {
        name: name.to_owned(),
        samples,
        load_seconds,
        caught_up_after,
    })
}

fn chart(
    path: &Path,
    title: &str,
    unit: &str,
    runs: &[Run],
    value: fn(&Sample) -> f64,
    bound: Option<f64>,
) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = runs
        .iter()
        .flat_map(|r| r.samples.iter().map(|s| s.at))
        .fold(1.0, f64::max);
    let y_max = runs
        .iter()
        .flat_map(|r| r.samples.iter().map(value))
        .chain(bound)
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the load started")
        .y_desc(unit)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    let colours = [RGBColor(0, 90, 181), RGBColor(220, 50, 32)];
    for (run, colour) in runs.iter().zip(colours) {
        let label = format!("{} (load stops at {:.0} s)", run.name, run.load_seconds);
        chart
            .draw_series(LineSeries::new(
                run.samples.iter().map(|s| (s.at, value(s))),
                colour.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    if let Some(bound) = bound {
        chart
            .draw_series(LineSeries::new(
                [(0.0, bound), (x_max, bound)],
                BLACK.stroke_width(1),
            ))?
            .label("--max-lag-events")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    let font = tocsin_tests::sample::chart_font()?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow::anyhow!("cannot read DejaVuSans.ttf"))?;
    println!(
        "overload benchmark: wrk with {} connections, batches of {BATCH}, {} CPUs",
        settings.connections,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut runs = vec![run(
        &settings,
        &format!("--max-lag-events {}", settings.max_lag),
        Some(settings.max_lag),
        settings.seconds,
    )?];
    if settings.unbounded_seconds > 0 {
        runs.push(run(
            &settings,
            "no bound",
            None,
            settings.unbounded_seconds,
        )?);
    }
    let bound = Some(settings.max_lag as f64);
    std::fs::create_dir_all(&settings.out)?;
    for (file, title, unit, value, bound) in [
        (
            "overload-lag.png",
            "Pipeline lag under overload",
            "events waiting",
            (|s: &Sample| s.lag_events) as fn(&Sample) -> f64,
            bound,
        ),
        (
            "overload-rss.png",
            "Resident memory of tocsin serve",
            "MiB",
            |s: &Sample| s.rss_mib,
            None,
        ),
        (
            "overload-journal.png",
            "Journal file with its WAL",
            "MiB",
            |s: &Sample| s.journal_mib,
            None,
        ),
    ] {
        let path = settings.out.join(file);
        chart(&path, title, unit, &runs, value, bound)?;
        println!("wrote {}", path.display());
    }
    for run in &runs {
        if run.caught_up_after.is_none() {
            println!("note: {} had not caught up when its chart ends", run.name);
        }
    }
    Ok(())
}
