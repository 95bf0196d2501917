//! The bench's files: for the latency study a CSV of every point and a Markdown summary that
//! says what the cache saves; for the throughput mode a CSV and a table of every phase. Pure
//! functions of what was measured, so they are tested on known inputs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::load::{thousands, LoadReport, Phase, Workload};
use super::{plot, CacheMode, Point, RequestType, Study};
use crate::client::stats::human_us;
use crate::error::Error;
use crate::tool_error::Result;

pub const CSV_FILE: &str = "points.csv";
pub const SUMMARY_FILE: &str = "summary.md";
pub const LOAD_CSV_FILE: &str = "throughput.csv";
pub const LOAD_SUMMARY_FILE: &str = "throughput.md";

/// The CSV header: one row per cache mode, `p` and request type.
pub const CSV_HEADER: &str = "cache,p,clients,request,count,errors,mean_us,p50_us,p95_us,p99_us,\
max_us,throughput_rps,hit_ratio,sold_out,elapsed_s";

/// Every point as CSV rows, in the order measured.
pub fn csv(points: &[Point]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for point in points {
        for kind in RequestType::ALL {
            let s = point.stats(kind);
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{:.1},{},{},{},{},{:.1},{:.4},{},{:.3}",
                point.cache.label(),
                point.p,
                point.clients,
                kind.slug(),
                s.count,
                s.errors,
                s.mean_us,
                s.p50_us,
                s.p95_us,
                s.p99_us,
                s.max_us,
                s.throughput_rps,
                point.hit_ratio,
                point.sold_out,
                point.elapsed_s
            );
        }
    }
    out
}

/// What the cache saved on product queries at one `p`: both modes measured there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saving {
    pub p: f64,
    pub hit_ratio: f64,
    pub mean_on_us: f64,
    pub mean_off_us: f64,
    /// Mean latency of the hits and of the misses with the cache on.
    pub hit_us: f64,
    pub miss_us: f64,
}

impl Saving {
    /// Microseconds saved per product query, on average.
    pub fn saved_us(&self) -> f64 {
        self.mean_off_us - self.mean_on_us
    }

    /// The share of the uncached latency saved, in percent.
    pub fn saved_percent(&self) -> f64 {
        if self.mean_off_us > 0.0 {
            100.0 * self.saved_us() / self.mean_off_us
        } else {
            0.0
        }
    }
}

/// Product-query savings at every `p` measured with the cache both on and off.
pub fn savings(points: &[Point]) -> Vec<Saving> {
    points
        .iter()
        .filter(|on| on.cache == CacheMode::On)
        .filter_map(|on| {
            let off = points
                .iter()
                .find(|off| off.cache == CacheMode::Off && off.p == on.p)?;
            Some(Saving {
                p: on.p,
                hit_ratio: on.hit_ratio,
                mean_on_us: on.product_query.mean_us,
                mean_off_us: off.product_query.mean_us,
                hit_us: on.product_query_hit.mean_us,
                miss_us: on.product_query_miss.mean_us,
            })
        })
        .collect()
}

/// The savings averaged over every `p` (`p` itself is NaN); `None` when there are none.
pub fn overall_saving(savings: &[Saving]) -> Option<Saving> {
    if savings.is_empty() {
        return None;
    }
    let n = savings.len() as f64;
    let average = |f: fn(&Saving) -> f64| savings.iter().map(f).sum::<f64>() / n;
    Some(Saving {
        p: f64::NAN,
        hit_ratio: average(|s| s.hit_ratio),
        mean_on_us: average(|s| s.mean_on_us),
        mean_off_us: average(|s| s.mean_off_us),
        hit_us: average(|s| s.hit_us),
        miss_us: average(|s| s.miss_us),
    })
}

/// The summary in Markdown: how it was run, a table per request type, and what the cache saves.
pub fn markdown(study: &Study) -> String {
    let mut out = how_it_was_run(study);
    out.push_str(&what_the_cache_saves(&study.points));
    for kind in RequestType::MAIN {
        out.push_str(&request_type_section(&study.points, kind));
    }
    out
}

/// The summary's title and how the study was run, with warnings about unexpected replies and
/// points during which the store sold out.
fn how_it_was_run(study: &Study) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# storectl bench: latency against p, cache on and off\n"
    );
    let _ = writeln!(
        out,
        "{} client sessions, {} each per point, seed {}; {}. Latencies are measured by the \
         clients, end to end over loopback; throughput is requests of the type per second of \
         the point. Every point is a row of `{CSV_FILE}`.\n",
        study.clients, study.length, study.seed, study.cluster
    );
    let errors = study.errors();
    if errors > 0 {
        let _ = writeln!(
            out,
            "**{errors} unexpected replies** (5xx, refused connections, malformed bodies); the \
             `errors` column of `{CSV_FILE}` says where.\n"
        );
    }
    out.push_str(&sold_out_warning(&study.points));
    out
}

/// A paragraph naming the points during which the store sold out, so that they measured fewer
/// orders than asked for; empty when none did.
fn sold_out_warning(points: &[Point]) -> String {
    let short: Vec<String> = points
        .iter()
        .filter(|p| p.sold_out + p.skipped_sold_out > 0)
        .map(|p| {
            format!(
                "cache {} at p = {}: {} orders not tried, {} refused",
                p.cache.label(),
                p.p,
                p.skipped_sold_out,
                p.sold_out
            )
        })
        .collect();
    if short.is_empty() {
        return String::new();
    }
    format!(
        "**The store sold out during some points**, so they measured fewer orders than \
         their p asked for ({}); run against a cluster with more stock \
         (a new one: `storectl up --state-dir DIR --initial-stock 1000000`).\n\n",
        short.join("; ")
    )
}

/// The section of one request type: its plot and a table of every point.
fn request_type_section(points: &[Point], kind: RequestType) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {}\n", kind.title());
    let _ = writeln!(out, "![{}]({}.svg)\n", kind.title(), kind.slug());
    // Only product queries go through the cache.
    let cached = kind == RequestType::ProductQuery;
    let _ = writeln!(
        out,
        "| cache | p | count | errors | mean | p50 | p95 | p99 | max | req/s |{}",
        if cached { " hit ratio |" } else { "" }
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
        if cached { "---:|" } else { "" }
    );
    for point in points {
        let s = point.stats(kind);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |{}",
            point.cache.label(),
            point.p,
            s.count,
            s.errors,
            s.show(s.mean_us),
            s.show(s.p50_us as f64),
            s.show(s.p95_us as f64),
            s.show(s.p99_us as f64),
            s.show(s.max_us as f64),
            s.throughput_rps,
            if cached {
                format!(" {:.0}% |", 100.0 * point.hit_ratio)
            } else {
                String::new()
            }
        );
    }
    out.push('\n');
    out
}

/// The section that answers the study's question in sentences.
fn what_the_cache_saves(points: &[Point]) -> String {
    let savings = savings(points);
    let mut out = String::from("## What the cache saves\n\n");
    if savings.is_empty() {
        out.push_str(
            "Only one cache mode was measured, so there is nothing to compare; run the bench \
             with `--cache on,off`.\n\n",
        );
        return out;
    }
    let Some(overall) = overall_saving(&savings) else {
        return out;
    };
    let _ = writeln!(
        out,
        "Product queries take {} on average with the cache and {} without: the cache saves \
         {} per query ({:.0}%), averaged over every p. A hit takes {} and a miss {}: the \
         saving is the hit ratio ({:.0}% on average) times that difference. Per p:\n",
        human_us(overall.mean_on_us),
        human_us(overall.mean_off_us),
        human_us(overall.saved_us()),
        overall.saved_percent(),
        human_us(overall.hit_us),
        human_us(overall.miss_us),
        100.0 * overall.hit_ratio,
    );
    savings_table(&mut out, &savings);
    if let (Some(first), Some(last)) = (savings.first(), savings.last()) {
        if first.p != last.p {
            let _ = writeln!(
                out,
                "\nThe hit ratio goes from {:.0}% at p = {} to {:.0}% at p = {}: every order \
                 invalidates its toy's entry, so the more clients buy, the less the cache holds.",
                100.0 * first.hit_ratio,
                first.p,
                100.0 * last.hit_ratio,
                last.p
            );
        }
    }
    out.push_str(
        "\nOrders and order queries do not go through the cache; their rows below show what \
         replication costs, and any difference between cache on and off there is noise.\n\n",
    );
    out
}

/// Appends the table of what the cache saves at each p, one row per p.
fn savings_table(out: &mut String, savings: &[Saving]) {
    let _ = writeln!(
        out,
        "| p | hit ratio | hit | miss | mean, cache on | mean, cache off | saved |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|");
    for s in savings {
        let _ = writeln!(
            out,
            "| {} | {:.0}% | {} | {} | {} | {} | {} ({:.0}%) |",
            s.p,
            100.0 * s.hit_ratio,
            human_us(s.hit_us),
            human_us(s.miss_us),
            human_us(s.mean_on_us),
            human_us(s.mean_off_us),
            human_us(s.saved_us()),
            s.saved_percent()
        );
    }
}

/// Writes `points.csv`, `summary.md` and one SVG plot per request type into `dir`, creating it.
/// Returns the files written.
pub fn write_all(study: &Study, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![
        (dir.join(CSV_FILE), csv(&study.points)),
        (dir.join(SUMMARY_FILE), markdown(study)),
    ];
    for kind in RequestType::MAIN {
        files.push((
            dir.join(format!("{}.svg", kind.slug())),
            plot::latency_svg(&study.points, kind)?,
        ));
    }
    write_files(dir, files)
}

/// The CSV header of the throughput mode: one row per phase.
pub const LOAD_CSV_HEADER: &str = "workload,connections,requests,errors,sold_out,elapsed_s,rps,\
mean_us,p50_us,p95_us,p99_us,max_us,hit_ratio,goal,goal_met";

/// Every phase of a throughput run as CSV rows.
pub fn load_csv(report: &LoadReport) -> String {
    let mut out = String::from(LOAD_CSV_HEADER);
    out.push('\n');
    for phase in &report.phases {
        let l = &phase.latency;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.3},{:.1},{:.1},{},{},{},{},{:.4},{},{}",
            phase.workload.slug(),
            phase.connections,
            phase.requests,
            phase.errors,
            phase.sold_out,
            phase.elapsed_s,
            phase.rps,
            l.mean_us,
            l.p50_us,
            l.p95_us,
            l.p99_us,
            l.max_us,
            phase.hit_ratio,
            phase.goal.map(|g| g.describe()).unwrap_or_default(),
            phase
                .goal_met
                .map(|m| if m { "yes" } else { "no" })
                .unwrap_or_default()
        );
    }
    out
}

/// The throughput table, as Markdown rows (also readable on a terminal).
pub fn load_table(report: &LoadReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | connections | req/s | mean | p50 | p99 | errors | hit ratio | goal |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for phase in &report.phases {
        let l = &phase.latency;
        let goal = match (phase.goal, phase.goal_met) {
            (Some(goal), Some(true)) => format!("{} ✓", goal.describe()),
            (Some(goal), _) => format!("{} ✗ missed", goal.describe()),
            (None, _) => String::new(),
        };
        // Orders, etcd's puts and the bare server look nothing up in a cache.
        let hits = match phase.workload {
            Workload::Order | Workload::OrderTls | Workload::EtcdPut | Workload::BareWarp => {
                "–".to_string()
            }
            _ => format!("{:.0}%", 100.0 * phase.hit_ratio),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            phase.workload.label(),
            phase.connections,
            thousands(phase.rps),
            human_us(l.mean_us),
            human_us(l.p50_us as f64),
            human_us(l.p99_us as f64),
            phase.errors,
            hits,
            goal
        );
    }
    out
}

/// Cached queries beside a bare warp server's replies, when both were measured: requests per
/// second at the most connections (goal: at least 0.9 of the bare server's), and one
/// connection's p50 beside it.
pub fn bare_comparison(report: &LoadReport) -> Option<String> {
    let many = report.connections;
    let [cached, one_cached] = report.at_most_and_one(Workload::CachedQuery)?;
    let [bare, one_bare] = report.at_most_and_one(Workload::BareWarp)?;
    let share = cached.rps / bare.rps.max(1.0);
    let mark = if share >= 0.9 { "✓" } else { "✗ missed" };
    Some(format!(
        "Beside a bare warp server giving the same reply: at {many} connections {} cached \
         queries/s against {} replies/s, {share:.2}× (goal ≥ 0.9× {mark}); at one connection \
         a p50 of {} against {}.\n",
        thousands(cached.rps),
        thousands(bare.rps),
        human_us(one_cached.latency.p50_us as f64),
        human_us(one_bare.latency.p50_us as f64),
    ))
}

/// Orders beside etcd's puts, when both were measured: orders per second at the most
/// connections against puts per second (goal: at least as many), and one connection's median
/// order against a median put (goal: at most twice as long).
pub fn etcd_comparison(report: &LoadReport) -> Option<String> {
    let many = report.connections;
    let [orders, order] = report.at_most_and_one(Workload::Order)?;
    let [puts, put] = report.at_most_and_one(Workload::EtcdPut)?;
    let throughput = orders.rps / puts.rps.max(1.0);
    let latency = order.latency.p50_us as f64 / (put.latency.p50_us.max(1)) as f64;
    let mark = |met: bool| if met { "✓" } else { "✗ missed" };
    Some(format!(
        "Beside etcd: at {many} connections {} orders/s against {} puts/s, {throughput:.2}× \
         (goal ≥ 1× {}); at one connection an order's p50 is {} against a put's {}, \
         {latency:.2}× (goal ≤ 2× {}).\n",
        thousands(orders.rps),
        thousands(puts.rps),
        mark(throughput >= 1.0),
        human_us(order.latency.p50_us as f64),
        human_us(put.latency.p50_us as f64),
        mark(latency <= 2.0),
    ))
}

/// Orders with TLS between services beside orders without, when both were measured: at the
/// most connections, orders per second and an order's p50 (goal: within 15%); one connection's
/// p50 beside it.
pub fn tls_comparison(report: &LoadReport) -> Option<String> {
    let many = report.connections;
    let [plain, one_plain] = report.at_most_and_one(Workload::Order)?;
    let [tls, one_tls] = report.at_most_and_one(Workload::OrderTls)?;
    let fewer = 1.0 - tls.rps / plain.rps.max(1.0);
    let slower = |tls: &Phase, plain: &Phase| {
        tls.latency.p50_us as f64 / (plain.latency.p50_us.max(1)) as f64 - 1.0
    };
    let (slower_many, slower_one) = (slower(tls, plain), slower(one_tls, one_plain));
    let mark = |met: bool| if met { "✓" } else { "✗ missed" };
    Some(format!(
        "What TLS between services costs: at {many} connections {} orders/s against {} \
         without, {:.1}% fewer (goal < 15% {}), and an order's p50 {} against {}, {:+.1}% \
         (goal < 15% {}); at one connection an order's p50 is {} against {} ({:+.1}%).\n",
        thousands(tls.rps),
        thousands(plain.rps),
        100.0 * fewer,
        mark(fewer < 0.15),
        human_us(tls.latency.p50_us as f64),
        human_us(plain.latency.p50_us as f64),
        100.0 * slower_many,
        mark(slower_many < 0.15),
        human_us(one_tls.latency.p50_us as f64),
        human_us(one_plain.latency.p50_us as f64),
        100.0 * slower_one,
    ))
}

/// Every comparison the run's phases allow: cached queries beside the bare server, orders
/// beside etcd's puts, orders with TLS beside orders without.
pub fn comparisons(report: &LoadReport) -> Vec<String> {
    [
        bare_comparison(report),
        etcd_comparison(report),
        tls_comparison(report),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The throughput summary in Markdown.
pub fn load_markdown(report: &LoadReport) -> String {
    let mut out = String::from("# storectl bench --load: throughput\n\n");
    let _ = writeln!(
        out,
        "Each workload keeps {} keep-alive connections busy for {} s (after a warm-up), then \
         one connection for the sequential latency; {}. Requests per second count 2xx replies \
         only; the load comes from one thread on the same machine.\n",
        report.connections, report.duration_s, report.cluster
    );
    out.push_str(&load_table(report));
    for comparison in comparisons(report) {
        let _ = write!(out, "\n{comparison}");
    }
    let sold_out: u64 = report.phases.iter().map(|p| p.sold_out).sum();
    if sold_out > 0 {
        let _ = writeln!(
            out,
            "\n{sold_out} orders were refused as sold out and are not counted: a cluster's \
             stock runs out in seconds at these rates (`storectl up --initial-stock`)."
        );
    }
    out
}

/// Writes `throughput.csv` and `throughput.md` into `dir`, creating it.
pub fn write_load(report: &LoadReport, dir: &Path) -> Result<Vec<PathBuf>> {
    write_files(
        dir,
        vec![
            (dir.join(LOAD_CSV_FILE), load_csv(report)),
            (dir.join(LOAD_SUMMARY_FILE), load_markdown(report)),
        ],
    )
}

fn write_files(dir: &Path, files: Vec<(PathBuf, String)>) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (path, contents) in &files {
        std::fs::write(path, contents).map_err(|e| Error::io(path, e))?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bench::TypeStats;

    fn stats(mean_us: f64) -> TypeStats {
        TypeStats {
            count: 100,
            errors: 0,
            mean_us,
            p50_us: mean_us as u64,
            p95_us: 2 * mean_us as u64,
            p99_us: 3 * mean_us as u64,
            max_us: 4 * mean_us as u64,
            throughput_rps: 50.0,
        }
    }

    pub(crate) fn point(cache: CacheMode, p: f64, query_us: f64, hit_ratio: f64) -> Point {
        Point {
            cache,
            p,
            clients: 5,
            elapsed_s: 2.0,
            hit_ratio,
            sold_out: 0,
            skipped_sold_out: 0,
            product_query: stats(query_us),
            product_query_hit: stats(50.0),
            product_query_miss: stats(450.0),
            order: stats(1000.0),
            order_query: stats(300.0),
        }
    }

    fn known() -> Vec<Point> {
        vec![
            point(CacheMode::On, 0.0, 100.0, 0.5),
            point(CacheMode::On, 0.5, 200.0, 0.25),
            point(CacheMode::Off, 0.0, 400.0, 0.0),
            point(CacheMode::Off, 0.5, 400.0, 0.0),
        ]
    }

    #[test]
    fn csv_has_a_row_per_point_and_request_type() {
        let text = csv(&known());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 4 * 5);
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            "on,0,5,product-query,100,0,100.0,100,200,300,400,50.0,0.5000,0,2.000"
        );
        assert!(lines[2].starts_with("on,0,5,product-query-hit,100,0,50.0,"));
        assert!(lines[3].starts_with("on,0,5,product-query-miss,100,0,450.0,"));
        assert!(lines[4].starts_with("on,0,5,order,100,0,1000.0,"));
        assert!(lines[20].starts_with("off,0.5,5,order-query,"));
        let columns = CSV_HEADER.split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == columns));
    }

    #[test]
    fn savings_pair_the_modes_at_each_p() {
        let s = savings(&known());
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].p, s[0].saved_us(), s[0].saved_percent()),
            (0.0, 300.0, 75.0)
        );
        assert_eq!(
            (s[1].p, s[1].saved_us(), s[1].saved_percent()),
            (0.5, 200.0, 50.0)
        );
        assert!(
            savings(&known()[..2]).is_empty(),
            "cache on alone pairs nothing"
        );
    }

    #[test]
    fn the_summary_says_what_the_cache_saves() {
        let study = Study {
            clients: 5,
            length: "100 iterations".into(),
            seed: 7,
            cluster: "a test".into(),
            points: known(),
        };
        let md = markdown(&study);
        // Averaged over p: 150 µs with the cache, 400 µs without.
        assert!(
            md.contains("150µs on average with the cache and 400µs without"),
            "{md}"
        );
        assert!(md.contains("saves 250µs per query (62%)"), "{md}");
        assert!(
            md.contains("| 0.5 | 25% | 50µs | 450µs | 200µs | 400µs | 200µs (50%) |"),
            "{md}"
        );
        assert!(md.contains("A hit takes 50µs and a miss 450µs"), "{md}");
        assert!(md.contains("from 50% at p = 0 to 25% at p = 0.5"), "{md}");
        for kind in RequestType::MAIN {
            assert!(md.contains(&format!("]({}.svg)", kind.slug())), "{md}");
        }
        assert!(!md.contains("unexpected replies"));
        let mut with_errors = study.clone();
        with_errors.points[1].order.errors = 3;
        assert!(markdown(&with_errors).contains("**3 unexpected replies**"));
        assert!(!md.contains("sold out"));
        let mut sold_out = study.clone();
        sold_out.points[1].skipped_sold_out = 40;
        let md = markdown(&sold_out);
        assert!(
            md.contains("**The store sold out during some points**"),
            "{md}"
        );
        assert!(
            md.contains("cache on at p = 0.5: 40 orders not tried"),
            "{md}"
        );
    }
}
