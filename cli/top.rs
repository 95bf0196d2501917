//! `storectl top`: one screen, refreshed, with each service, the leader, the traffic and its
//! latencies over the last seconds, and the last events. What it shows is worked out in
//! [`storectl::top`]; this draws it with ratatui and handles keys. The terminal is restored on
//! every way out: `q`, Esc, Ctrl-C, SIGTERM, an error, a panic.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, List, ListItem, Paragraph, Row, Table};
use ratatui::Frame;
use storectl::client::stats::human_us;
use storectl::cluster::{self, ServiceStatus, StateDir};
use storectl::cluster_file::ClusterFile;
use storectl::top::{Latency, View, Watch};

use crate::args::TopArgs;
use crate::exit::Exit;

/// Where the readings come from.
pub enum Source {
    State(StateDir),
    File(ClusterFile),
}

impl Source {
    /// The cluster file at `cluster`, or else the state directory; and how to name it.
    pub fn open(
        state: &crate::args::StateArgs,
        cluster: Option<&std::path::Path>,
    ) -> Result<(Source, String)> {
        Ok(match cluster {
            Some(path) => (
                Source::File(storectl::tool_http::load_cluster(path)?),
                path.display().to_string(),
            ),
            None => {
                let state = StateDir::new(&state.state_dir);
                state.load()?;
                let title = state.root().display().to_string();
                (Source::State(state), title)
            }
        })
    }

    pub fn read(&self) -> Result<Vec<ServiceStatus>, String> {
        match self {
            Source::State(state) => cluster::status(state).map_err(|e| e.to_string()),
            Source::File(file) => Ok(cluster::status_of(file)),
        }
    }
}

/// Leaves the terminal as it was found when dropped.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub fn run(args: &TopArgs) -> Result<Exit> {
    // Nothing to watch is said before the screen changes.
    let (source, title) = Source::open(&args.state, args.cluster.as_deref())?;
    // Without a terminal to draw on (a script, `ssh` without `-t`, input from /dev/null) there
    // is no screen to change: say so before anything is written to it.
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        anyhow::bail!(
            "top draws a live screen and needs a terminal on its input and output; run it in \
             one (over ssh: `ssh -t`), or use `storectl status --json` in a script"
        );
    }
    let stop = stop_on_signals();
    let readings = read_in_background(source, args.interval.get());
    let mut terminal = ratatui::init();
    let _restore = Restore;
    let mut watch = Watch::new(args.window.get());
    let mut error = None;
    while !stop.load(Ordering::Relaxed) {
        while let Ok((reading, at, wall)) = readings.try_recv() {
            match reading {
                Ok(rows) => {
                    error = None;
                    watch.observe(rows, at, wall);
                }
                Err(e) => error = Some(e),
            }
        }
        let view = watch.view();
        terminal.draw(|frame| draw(frame, &view, &title, args, error.as_deref()))?;
        if event::poll(Duration::from_millis(100))? {
            if let Event::Key(key) = event::read()? {
                let ctrl_c =
                    key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                let quit = matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c;
                if key.kind == KeyEventKind::Press && quit {
                    break;
                }
            }
        }
    }
    Ok(Exit::Success)
}

type Reading = (Result<Vec<ServiceStatus>, String>, Instant, SystemTime);

/// Reads every service every `interval` on a thread of its own: a service that does not answer
/// takes up to a second, and keys must not wait for it.
fn read_in_background(source: Source, interval: Duration) -> mpsc::Receiver<Reading> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || loop {
        let started = Instant::now();
        let reading = source.read();
        if tx
            .send((reading, Instant::now(), SystemTime::now()))
            .is_err()
        {
            return;
        }
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    });
    rx
}

/// Turns SIGTERM and SIGINT into a flag the screen loop checks, so that it restores the terminal
/// on its way out (in raw mode Ctrl-C is a key, but `kill -INT` is not).
fn stop_on_signals() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(storectl::http::shutdown_signal());
        flag.store(true, Ordering::Relaxed);
    });
    stop
}

fn draw(frame: &mut Frame, view: &View, title: &str, args: &TopArgs, error: Option<&str>) {
    let services = view.services.len() as u16;
    let [header, table, traffic, events] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(services + 3),
        Constraint::Length(6),
        Constraint::Min(3),
    ])
    .areas(frame.area());
    frame.render_widget(heading(view, title, args, error), header);
    frame.render_widget(services_table(view), table);
    frame.render_widget(traffic_panel(view), traffic);
    let items: Vec<ListItem> = view
        .events
        .iter()
        .map(|e| ListItem::new(format!("{}  {}", clock(e.at), e.text)))
        .collect();
    frame.render_widget(
        List::new(items).block(Block::new().borders(Borders::ALL).title(" events (UTC) ")),
        events,
    );
}

fn dash() -> String {
    "–".to_string()
}

/// The top line: what is watched, both leaders, the interval, and a read that failed.
fn heading(view: &View, title: &str, args: &TopArgs, error: Option<&str>) -> Paragraph<'static> {
    let named = |leader: Option<(storectl::services::ServiceName, u64)>| match leader {
        Some((name, term)) => format!("{name} (term {term})"),
        None => "none".to_string(),
    };
    let leader = format!(
        "leaders: {}, {}",
        named(view.leader),
        named(view.catalog_leader)
    );
    let mut heading = format!(
        "storectl top · {title} · {leader} · every {} · q quits",
        args.interval
    );
    if let Some(e) = error {
        heading = format!("{heading} · cannot read the cluster: {e}");
    }
    Paragraph::new(heading).style(Style::new().add_modifier(Modifier::BOLD))
}

/// One row per service: pid, address, liveness, role, term, orders, lag, cache or stock.
fn services_table(view: &View) -> Table<'static> {
    let rows = view.services.iter().map(|line| {
        let s = &line.status;
        let role = match (&s.role, s.ready) {
            (Some(role), Some(false)) => format!("{role}*"),
            (Some(role), _) => role.clone(),
            (None, _) => dash(),
        };
        let cache = match (s.cache, s.units_in_stock) {
            (Some(c), _) => {
                let lease = if s.cache_leased == Some(false) {
                    ", no lease"
                } else {
                    ""
                };
                format!("{}/{} entries{lease}", c.size, c.capacity)
            }
            (None, Some(units)) => format!("{units} units in stock"),
            (None, None) => dash(),
        };
        Row::new(vec![
            Cell::from(s.name.to_string()),
            Cell::from(s.pid.map_or_else(dash, |p| p.to_string())),
            Cell::from(s.address.clone()),
            Cell::from(if s.alive { "yes" } else { "NO" }),
            Cell::from(role),
            Cell::from(s.term.map_or_else(dash, |t| t.to_string())),
            Cell::from(s.orders.map_or_else(dash, |n| n.to_string())),
            Cell::from(line.lag.map_or_else(dash, |n| n.to_string())),
            Cell::from(cache),
        ])
    });
    let columns = [
        ("SERVICE", Constraint::Length(11)),
        ("PID", Constraint::Length(8)),
        ("ADDRESS", Constraint::Length(21)),
        ("ALIVE", Constraint::Length(5)),
        ("ROLE", Constraint::Length(10)),
        ("TERM", Constraint::Length(5)),
        ("ORDERS", Constraint::Length(8)),
        ("LAG", Constraint::Length(5)),
        ("CACHE OR STOCK", Constraint::Min(10)),
    ];
    let header_row =
        Row::new(columns.map(|(name, _)| name)).style(Style::new().add_modifier(Modifier::BOLD));
    Table::new(rows.collect::<Vec<_>>(), columns.map(|(_, width)| width))
        .header(header_row)
        .block(Block::new().borders(Borders::ALL).title(" services "))
}

/// Orders and queries per second, the hit ratio, and the latencies of the last span.
fn traffic_panel(view: &View) -> Paragraph<'static> {
    let rate = |r: Option<f64>| r.map_or_else(dash, |r| format!("{r:.0}"));
    let ratio = view
        .hit_ratio
        .map_or_else(dash, |r| format!("{:.0}%", r * 100.0));
    let latency = |name: &str, l: &Latency| {
        let show = |d: Option<Duration>| d.map_or_else(dash, |d| human_us(d.as_micros() as f64));
        format!(
            "{name:<14} p50 {:>8}   p99 {:>8}   ({} requests)",
            show(l.p50),
            show(l.p99),
            l.count
        )
    };
    let text = vec![
        Line::from(format!(
            "orders/s {:>7}   queries/s {:>7}   cache hits {:>5}",
            rate(view.orders_per_s),
            rate(view.queries_per_s),
            ratio
        )),
        Line::from(latency("product query", &view.query)),
        Line::from(latency("order", &view.order)),
    ];
    Paragraph::new(text).block(
        Block::new()
            .borders(Borders::ALL)
            .title(format!(" traffic, last {:.0} s ", view.span.as_secs_f64())),
    )
}

/// `HH:MM:SS` in UTC.
fn clock(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}
