//! `storectl bench`: the latency study or, with `--load`, the throughput mode.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use storectl::bench::load::{self, Goal, LoadOptions, LoadReport, PhaseGoal, Workload};
use storectl::bench::{self, report, Length, Study, StudyOptions, Target};
use storectl::client::stats::human_us;
use storectl::cluster::StateDir;

use crate::args::BenchArgs;
use crate::exit::Exit;
use crate::progress::Bar;

/// How long each throughput phase is measured when `--duration` is not given.
const DEFAULT_LOAD_DURATION: Duration = Duration::from_secs(5);

/// The store's performance goals, which the throughput mode reports against: requests per
/// second at 32 connections, and the median of one sequential client.
const GOALS: [PhaseGoal; 5] = [
    PhaseGoal {
        workload: Workload::CachedQuery,
        connections: 32,
        goal: Goal::MinRps(45_000.0),
    },
    PhaseGoal {
        workload: Workload::UncachedQuery,
        connections: 32,
        goal: Goal::MinRps(12_000.0),
    },
    PhaseGoal {
        workload: Workload::Order,
        connections: 32,
        goal: Goal::MinRps(6_000.0),
    },
    PhaseGoal {
        workload: Workload::CachedQuery,
        connections: 1,
        goal: Goal::MaxP50Us(80),
    },
    PhaseGoal {
        workload: Workload::Order,
        connections: 1,
        goal: Goal::MaxP50Us(1_500),
    },
];

pub fn run(args: &BenchArgs) -> Result<Exit> {
    let exe = crate::cluster::exe()?;
    let running = args.state_dir.as_ref().map(StateDir::new);
    let target = match &running {
        Some(state) => Target::Running(state),
        None => Target::Own { exe: &exe },
    };
    let cache_size = args.cache_size;
    // A directory that cannot be written is found out now, not after minutes of measuring.
    let created = !args.out.exists();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the results directory {}", args.out.display()))?;
    let outcome = if args.load {
        load(args, target, cache_size)
    } else {
        study(args, target, cache_size)
    };
    if outcome.is_err() && created {
        let _ = std::fs::remove_dir(&args.out);
    }
    outcome
}

fn study(args: &BenchArgs, target: Target<'_>, cache_size: usize) -> Result<Exit> {
    let options = StudyOptions {
        clients: args.clients as usize,
        ps: args.p.clone(),
        caches: args.cache.as_ref().map(|modes| {
            let mut modes = modes.clone();
            modes.dedup();
            modes
        }),
        length: match args.duration {
            Some(d) => Length::Duration(d),
            None => Length::Iterations(args.iterations as usize),
        },
        seed: args.seed.unwrap_or_else(rand::random),
        cache_size,
    };
    let points = bench::point_count(&options, target) as u64;
    let bar = study_progress(&options, points, !args.json);
    let study = bench::run_study(&options, target, &bar);
    drop(bar);
    let study = study?;
    let files = report::write_all(&study, &args.out)?;
    let human = format!(
        "{}{}seed: {} (repeat with --seed {})\n",
        render_study(&study),
        files_written(&args.out, &files),
        study.seed,
        study.seed
    );
    tell(args.json, &study, &human, study.errors())
}

fn load(args: &BenchArgs, target: Target<'_>, cache_size: usize) -> Result<Exit> {
    let duration = args.duration.unwrap_or(DEFAULT_LOAD_DURATION);
    let options = LoadOptions {
        connections: args.connections as usize,
        duration,
        warmup: (duration / 5).min(Duration::from_secs(1)),
        cache_size,
        goals: GOALS.to_vec(),
        etcd: etcd(args),
        tls: args.tls,
    };
    let bar = Bar::new(
        !args.json,
        Some(load::phase_count(target, options.etcd.is_some(), options.tls) as u64),
        "{spinner} [{elapsed}] phase {pos}/{len}: {msg}",
    );
    let report = load::run_load(&options, target, &bar);
    drop(bar);
    let report = report?;
    let files = report::write_load(&report, &args.out)?;
    let human = render_load(&report) + &files_written(&args.out, &files);
    tell(args.json, &report, &human, report.errors())
}

/// Prints the results, as JSON or for people, and picks the exit code from the errors seen.
fn tell(json: bool, results: &impl serde::Serialize, human: &str, errors: u64) -> Result<Exit> {
    if json {
        println!("{}", serde_json::to_string_pretty(results)?);
    } else {
        print!("{human}");
    }
    Ok(exit_for(errors))
}

/// A bar over every client iteration of the study, or a counter when points run for a time.
fn study_progress(options: &StudyOptions, points: u64, show: bool) -> Bar {
    match options.length {
        Length::Iterations(n) => Bar::new(
            show,
            Some(points * (options.clients * n) as u64),
            "{spinner} [{elapsed}] {bar:30} {pos}/{len} iterations and checks ({eta}) {msg}",
        ),
        Length::Duration(_) => Bar::new(
            show,
            None,
            "{spinner} [{elapsed}] {pos} iterations and checks, {msg}",
        ),
    }
}

fn render_study(study: &Study) -> String {
    let mut out = format!(
        "{} client sessions, {} each per point; {}\n\n",
        study.clients, study.length, study.cluster
    );
    out.push_str(&format!(
        "{:<6} {:>4}  {:>9} {:>9} {:>6}  {:>9} {:>9}  {:>9}  {:>6}\n",
        "cache", "p", "query", "query", "hits", "order", "order", "ord.query", "errors"
    ));
    out.push_str(&format!(
        "{:<6} {:>4}  {:>9} {:>9} {:>6}  {:>9} {:>9}  {:>9}  {:>6}\n",
        "", "", "mean", "p99", "", "mean", "p99", "mean", ""
    ));
    for point in &study.points {
        out.push_str(&format!(
            "{:<6} {:>4}  {:>9} {:>9} {:>5.0}%  {:>9} {:>9}  {:>9}  {:>6}\n",
            point.cache.label(),
            point.p,
            point.product_query.show(point.product_query.mean_us),
            point.product_query.show(point.product_query.p99_us as f64),
            100.0 * point.hit_ratio,
            point.order.show(point.order.mean_us),
            point.order.show(point.order.p99_us as f64),
            point.order_query.show(point.order_query.mean_us),
            point.errors()
        ));
    }
    if let Some(overall) = report::overall_saving(&report::savings(&study.points)) {
        out.push_str(&format!(
            "\nthe cache saves {} per product query on average ({:.0}%): a hit takes {}, a miss {}\n",
            human_us(overall.saved_us()),
            overall.saved_percent(),
            human_us(overall.hit_us),
            human_us(overall.miss_us)
        ));
    }
    out
}

fn render_load(report: &LoadReport) -> String {
    format!(
        "{} connections, {} s per phase; {}\n\n{}{}",
        report.connections,
        report.duration_s,
        report.cluster,
        report::load_table(report),
        report::comparisons(report)
            .iter()
            .map(|c| format!("\n{c}"))
            .collect::<String>()
    )
}

/// The etcd to compare with, when `--etcd` asks for one; without etcd the comparison is
/// skipped with a line that says how to get it.
fn etcd(args: &BenchArgs) -> Option<PathBuf> {
    if !args.etcd {
        return None;
    }
    let found = bench::etcd::find();
    if found.is_none() {
        eprintln!(
            "storectl: no etcd on the PATH (Debian: apt-get install etcd-server, or set \
             STORECTL_ETCD): measuring storectl alone"
        );
    }
    found
}

fn files_written(dir: &Path, files: &[PathBuf]) -> String {
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    format!("\nwrote {} in {}\n", names.join(", "), dir.display())
}

fn exit_for(errors: u64) -> Exit {
    if errors == 0 {
        Exit::Success
    } else {
        Exit::failed(format!(
            "{errors} requests got an unexpected reply; see the errors column and the services' \
             logs"
        ))
    }
}
