//! The storefront and the dashboard in a real browser: Debian's headless chromium, driven over
//! WebDriver by chromedriver (both installed by `.ci/run`). Every step leaves a screenshot in
//! `target/tmp/browser/<test>/`, to look at when a step fails or the page changes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::common::{self, Cluster, Process};

/// How long a page gets to show what a step expects.
const STEP: Duration = Duration::from_secs(20);

/// A headless chromium behind its own chromedriver, stopped (by pid) when dropped.
struct Browser {
    client: Client,
    runtime: tokio::runtime::Runtime,
    shots: PathBuf,
    taken: u32,
    _driver: Process,
}

impl Browser {
    fn start(test: &str, width: u32, height: u32) -> Browser {
        Self::start_with(test, width, height, json!({}))
    }

    /// A phone's screen: headless chromium's windows are never narrower than 500 pixels, so
    /// the page is laid out by chromium's device emulation instead.
    fn phone(test: &str, width: u32, height: u32) -> Browser {
        let metrics = json!({ "width": width, "height": height, "pixelRatio": 1 });
        Self::start_with(test, 500, height, json!({ "deviceMetrics": metrics }))
    }

    fn start_with(test: &str, width: u32, height: u32, emulation: Value) -> Browser {
        let chromium = which("chromium");
        let chromedriver = which("chromedriver");
        let port = free_port();
        let driver = Process::spawn(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let ready = common::eventually(STEP, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(ready.is_some(), "chromedriver did not listen on {port}");
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let mut capabilities = serde_json::Map::new();
        let mut options = json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", format!("--window-size={width},{height}"),
                ],
        });
        if emulation.as_object().is_some_and(|e| !e.is_empty()) {
            options["mobileEmulation"] = emulation;
        }
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = runtime
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a chromium session");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("browser")
            .join(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("the screenshots' folder");
        Browser {
            client,
            runtime,
            shots,
            taken: 0,
            _driver: driver,
        }
    }

    fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client.goto(url))
            .unwrap_or_else(|e| panic!("cannot load {url}: {e}"));
    }

    /// The text of the first element `css` selects, or `None` while there is none.
    fn text(&self, css: &str) -> Option<String> {
        self.runtime.block_on(async {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            element.text().await.ok()
        })
    }

    /// Waits until `css`'s text satisfies `wanted`; takes a screenshot and fails if it never
    /// does.
    fn wait_for(&mut self, css: &str, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let found = common::eventually(STEP, || self.text(css).filter(|text| wanted(text)));
        match found {
            Some(text) => text,
            None => {
                let shot = self.shot("failed");
                panic!(
                    "{css} never showed {what}; it shows {:?} (see {})",
                    self.text(css),
                    shot.display()
                );
            }
        }
    }

    fn click(&self, css: &str) {
        self.runtime
            .block_on(async { self.client.find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Replaces the text of the input `css` with `text`.
    fn type_into(&self, css: &str, text: &str) {
        self.runtime
            .block_on(async {
                let input = self.client.find(Locator::Css(css)).await?;
                input.clear().await?;
                input.send_keys(text).await
            })
            .unwrap_or_else(|e| panic!("cannot type into {css}: {e}"));
    }

    /// Saves what the browser shows as the next numbered PNG.
    fn shot(&mut self, step: &str) -> PathBuf {
        self.taken += 1;
        let path = self.shots.join(format!("{:02}-{step}.png", self.taken));
        let png = self
            .runtime
            .block_on(self.client.screenshot())
            .expect("a screenshot");
        std::fs::write(&path, png).expect("the screenshot written");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = self.runtime.block_on(client.close());
    }
}

fn which(program: &str) -> String {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    });
    match found {
        Some(path) => path.display().to_string(),
        None => panic!(
            "{program} is not installed: the browser tests need Debian's chromium and \
             chromium-driver (`apt-get install chromium chromium-driver`; .ci/run installs them)"
        ),
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn quantity(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

fn buy_over_http(cluster: &Cluster, toy: &str, quantity: u64) -> common::Reply {
    common::post(
        &cluster.url("/orders"),
        &json!({ "name": toy, "quantity": quantity }).to_string(),
        &[],
    )
}

#[test]
fn a_shopper_buys_looks_an_order_up_and_sees_others_buy_and_a_toy_sell_out() {
    // No restock during the test: a sold-out toy stays sold out.
    let cluster = Cluster::start(&["--restock-interval", "1h"]);
    let mut browser = Browser::start("storefront", 1000, 900);
    browser.goto(&cluster.url("/"));
    browser.wait_for("#live", "the stream open", |t| t == "live");
    browser.wait_for("tr[data-toy='Tux'] .stock .n", "100 Tux", |t| t == "100");
    browser.shot("loaded");

    browser.type_into("tr[data-toy='Tux'] input.qty", "2");
    browser.click("tr[data-toy='Tux'] button.buy");
    let number = browser.wait_for("#last-order-number", "an order number", |t| {
        quantity(t).is_some()
    });
    browser.wait_for("tr[data-toy='Tux'] .stock .n", "98 Tux", |t| t == "98");
    browser.shot("bought");
    let order = common::get(&cluster.url(&format!("/orders/{number}")));
    assert_eq!(order.json["data"]["name"], "Tux");
    assert_eq!(order.json["data"]["quantity"], 2);

    browser.type_into("#order-number", &number);
    browser.click("#lookup button");
    browser.wait_for("#order-result", "the order", |t| t.contains("2 × Tux"));
    browser.shot("looked-up");

    // Another client buys: the page follows within the step's deadline, through the stream.
    let reply = buy_over_http(&cluster, "Whale", 3);
    assert_eq!(reply.status, 200, "{}", reply.json);
    browser.wait_for("tr[data-toy='Whale'] .stock .n", "97 Whale", |t| t == "97");
    browser.shot("another-client-bought");

    // Someone buys every Fox left; the shopper's try gets a line that says so.
    let reply = buy_over_http(&cluster, "Fox", 100);
    assert_eq!(reply.status, 200, "{}", reply.json);
    browser.wait_for("tr[data-toy='Fox'] .stock .n", "0 Fox", |t| t == "0");
    browser.click("tr[data-toy='Fox'] button.buy");
    let message = browser.wait_for("#message", "a sold-out line", |t| {
        t.contains("not enough Fox")
    });
    browser.shot("sold-out");
    assert!(message.starts_with("Sorry"), "{message}");
    // The refused order bought nothing.
    let fox = common::get(&cluster.url("/products/Fox"));
    assert_eq!(fox.json["data"]["quantity"], 0);
}

#[test]
fn a_buy_without_a_majority_is_retried_with_its_key_until_it_goes_through_once() {
    let cluster = Cluster::start(&["--restock-interval", "1h"]);
    let mut browser = Browser::start("storefront-retry", 1000, 600);
    browser.goto(&cluster.url("/"));
    browser.wait_for("tr[data-toy='Dolphin'] .stock .n", "100 Dolphin", |t| {
        t == "100"
    });
    for replica in ["order-1", "order-2"] {
        let out = cluster.run("kill", &[replica]);
        assert!(out.status.success(), "{}", common::stderr(&out));
    }
    browser.type_into("tr[data-toy='Dolphin'] input.qty", "5");
    browser.click("tr[data-toy='Dolphin'] button.buy");
    let retrying = browser.wait_for("#message", "the retry", |t| t.contains("attempt"));
    browser.shot("retrying");
    assert!(retrying.contains("same order key"), "{retrying}");
    for replica in ["order-1", "order-2"] {
        let out = cluster.run("restart", &[replica]);
        assert!(out.status.success(), "{}", common::stderr(&out));
    }
    let number = browser.wait_for("#last-order-number", "an order number", |t| {
        quantity(t).is_some()
    });
    browser.wait_for("tr[data-toy='Dolphin'] .stock .n", "95 Dolphin", |t| {
        t == "95"
    });
    browser.shot("placed-once");
    // However many times it was sent, it is one order, and the only one.
    assert_eq!(number, "0");
    let order = common::get(&cluster.url("/orders/0"));
    assert_eq!(order.json["data"]["quantity"], 5, "{}", order.json);
    assert_eq!(common::get(&cluster.url("/orders/1")).status, 404);
    cluster.assert_converges(STEP);
}

#[test]
fn the_storefront_reads_on_a_phones_width_without_scrolling_sideways() {
    let cluster = Cluster::start(&[]);
    let mut browser = Browser::phone("storefront-phone", 375, 800);
    browser.goto(&cluster.url("/"));
    browser.wait_for("tr[data-toy='Tux'] .stock .n", "100 Tux", |t| t == "100");
    browser.shot("phone");
    let widths = browser
        .runtime
        .block_on(browser.client.execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        ))
        .expect("the page's widths");
    let widths: Vec<u64> = serde_json::from_value(widths).expect("two numbers");
    assert!(
        widths[0] <= widths[1],
        "the page scrolls sideways: {widths:?}"
    );
}

/// Starts `storectl dashboard` for `cluster` on a free port and returns it with its URL.
fn dashboard(cluster: &Cluster) -> (Process, String) {
    let state = cluster.state();
    let mut process = Process::spawn(
        Command::new(common::EXE)
            .args(["dashboard", "--state-dir"])
            .arg(&state)
            .args(["--listen", "127.0.0.1:0", "--interval", "300ms"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let stdout = process.stdout.take().expect("the dashboard's output");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("the dashboard's first line");
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (process, url)
}

#[test]
fn the_dashboard_shows_a_new_leader_and_the_event_when_the_leader_is_killed() {
    let cluster = Cluster::start(&[]);
    let (_dashboard, url) = dashboard(&cluster);
    let mut browser = Browser::start("dashboard", 1280, 1100);
    browser.goto(&url);
    browser.wait_for("#live", "the stream open", |t| t == "live");
    let leader = browser.wait_for("#order-leader", "an order leader", |t| {
        t.starts_with("order-")
    });
    browser.wait_for("#catalog-leader", "a catalog leader", |t| {
        t.starts_with("catalog-")
    });
    // Some traffic for the charts.
    for toy in ["Tux", "Whale", "Fox"] {
        assert_eq!(buy_over_http(&cluster, toy, 1).status, 200);
        common::get(&cluster.url(&format!("/products/{toy}")));
    }
    browser.shot("running");

    let killed = leader.split_whitespace().next().unwrap().to_string();
    let out = cluster.run("kill", &[&killed]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let new_leader = browser.wait_for("#order-leader", "another leader", |t| {
        t.starts_with("order-") && !t.starts_with(&killed)
    });
    let new_leader = new_leader.split_whitespace().next().unwrap().to_string();
    browser.wait_for(
        &format!("tr[data-service='{killed}'] .state"),
        "the killed replica down",
        |t| t == "down",
    );
    browser.wait_for("#events", "the new leader's event", |t| {
        t.contains(&format!("{new_leader} leads"))
    });
    browser.wait_for("#events", "the stopped replica", |t| {
        t.contains(&format!("{killed} stopped answering"))
    });
    browser.shot("leader-killed");
}

#[test]
fn every_service_serves_prometheus_metrics_that_a_parser_reads() {
    let cluster = Cluster::start(&[]);
    assert_eq!(buy_over_http(&cluster, "Tux", 1).status, 200);
    common::get(&cluster.url("/products/Tux"));
    common::get(&cluster.url("/products/Tux"));
    let rows = cluster.status();
    for row in &rows {
        let name = row["name"].as_str().unwrap();
        let address = row["address"].as_str().unwrap();
        let text = ureq::get(&format!("http://{address}/metrics"))
            .call()
            .unwrap_or_else(|e| panic!("{name}'s /metrics: {e}"))
            .body_mut()
            .read_to_string()
            .unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines)
            .unwrap_or_else(|e| panic!("{name}'s /metrics does not parse: {e}\n{text}"));
        let value = |metric: &str| -> Option<f64> {
            scrape
                .samples
                .iter()
                .filter(|s| s.metric == metric)
                .map(|s| match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => 0.0,
                })
                .reduce(f64::max)
        };
        let requests = value("storectl_http_requests_total");
        assert!(requests.unwrap_or(0.0) >= 1.0, "{name}: {text}");
        if name.starts_with("frontend") {
            assert!(
                value("storectl_cache_hits_total").unwrap_or(0.0) >= 1.0,
                "{name}: {text}"
            );
            assert!(
                value("storectl_cache_misses_total").is_some(),
                "{name}: {text}"
            );
            assert!(
                value("storectl_cache_evictions_total").is_some(),
                "{name}: {text}"
            );
            assert_eq!(value("storectl_cache_leased"), Some(1.0), "{name}: {text}");
        } else {
            assert!(
                value("storectl_raft_term").unwrap_or(0.0) >= 1.0,
                "{name}: {text}"
            );
            assert!(
                value("storectl_raft_leader").unwrap_or(0.0) >= 1.0,
                "{name}: {text}"
            );
            for index in ["commit", "applied", "last_log"] {
                let metric = format!("storectl_raft_{index}_index");
                assert!(
                    value(&metric).unwrap_or(0.0) >= 1.0,
                    "{name} {metric}: {text}"
                );
            }
            assert!(
                value("storectl_raft_log_entries").is_some(),
                "{name}: {text}"
            );
            let fsyncs = scrape
                .samples
                .iter()
                .find(|s| s.metric == "storectl_fsync_duration_seconds");
            assert!(fsyncs.is_some(), "{name} has no fsync histogram: {text}");
        }
        if name.starts_with("catalog") {
            assert!(
                value("storectl_catalog_restocks_total").is_some(),
                "{name}: {text}"
            );
            assert!(value("storectl_catalog_units_in_stock").unwrap_or(0.0) > 0.0);
        }
    }
}
