//! Test harness: real `storectl` processes on free ports in a temporary state directory, stopped
//! by `storectl down` (which signals the pids it recorded) when the test ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use serde_json::Value;

pub const EXE: &str = env!("CARGO_BIN_EXE_storectl");

/// Runs `storectl args…` to completion.
pub fn storectl(args: &[&str]) -> Output {
    storectl_with_env(args, &[])
}

/// Runs `storectl args…` with extra environment variables (which services it starts inherit).
pub fn storectl_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(EXE)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("STORECTL_STATE_DIR")
        .env("RUST_LOG", "info")
        .output()
        .expect("the storectl binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Polls `check` until it returns `Some`, for at most `timeout`.
pub fn eventually<T>(timeout: Duration, check: impl FnMut() -> Option<T>) -> Option<T> {
    storectl::poll::until(timeout, Duration::from_millis(25), check)
}

/// A cluster started with `storectl up` for one test.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub base: u16,
}

impl Cluster {
    pub fn start(extra: &[&str]) -> Cluster {
        Self::start_with_env(extra, &[])
    }

    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for _ in 0..5 {
            let base = storectl::config::find_free_port_base("127.0.0.1").expect("free ports");
            let base_text = base.to_string();
            let state = dir.path().join("state");
            let mut args = vec![
                "up",
                "--state-dir",
                state.to_str().unwrap(),
                "--port-base",
                &base_text,
            ];
            args.extend_from_slice(extra);
            let out = storectl_with_env(&args, env);
            if out.status.success() {
                return Cluster { dir, base };
            }
            // Another test may have taken a port between the check and the bind: try others.
            assert!(
                stderr(&out).contains("in use"),
                "up failed: {}",
                stderr(&out)
            );
        }
        panic!("could not start a cluster on free ports");
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.base)
    }

    /// Runs `storectl COMMAND --state-dir … args…`.
    pub fn run(&self, command: &str, args: &[&str]) -> Output {
        let state = self.state();
        let mut all = vec![command, "--state-dir", state.to_str().unwrap()];
        all.extend_from_slice(args);
        storectl(&all)
    }

    /// Runs a command that must succeed, and shows its stderr when it does not.
    pub fn must(&self, command: &str, args: &[&str]) -> Output {
        let out = self.run(command, args);
        assert!(
            out.status.success(),
            "storectl {command} {args:?} failed: {}",
            stderr(&out)
        );
        out
    }

    /// Every service's row of `status --json` (which exits 1 while one is down).
    pub fn status(&self) -> Vec<Value> {
        let out = self.run("status", &["--json"]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "status failed: {}",
            stderr(&out)
        );
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    pub fn service(&self, name: &str) -> Value {
        self.status()
            .into_iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in status"))
    }

    /// Waits for `verify-logs --stock` to pass: identical replicas and conserved stock.
    pub fn assert_converges(&self, timeout: Duration) {
        // A replica that lags is consistent (verify-logs exits 0) but not converged.
        let converged = eventually(timeout, || {
            let out = self.run("verify-logs", &["--stock", "--json"]);
            let report: Value = serde_json::from_slice(&out.stdout).ok()?;
            (out.status.success() && report["identical"] == true).then_some(())
        });
        assert!(
            converged.is_some(),
            "{}\n{}",
            stdout(&self.run("verify-logs", &["--stock"])),
            stdout(&self.run("status", &[]))
        );
    }

    /// Orders `quantity` of each toy through the front end; every order must be placed.
    pub fn order_each(&self, toys: &[&str], quantity: u64) {
        for toy in toys {
            let body = format!(r#"{{"name":"{toy}","quantity":{quantity}}}"#);
            let reply = post(&self.url("/orders"), &body, &[]);
            assert_eq!(reply.status, 200, "{toy}: {}", reply.json);
        }
    }

    pub fn orders_file(&self, id: u32) -> PathBuf {
        self.state().join(format!("orders-{id}.csv"))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.state().join(name)
    }

    /// The base URL of the catalog replica that leads now, as `status` sees it.
    pub fn catalog_leader_url(&self) -> String {
        let address = eventually(Duration::from_secs(10), || {
            self.status()
                .into_iter()
                .find(|s| {
                    s["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("catalog-"))
                        && s["role"] == "leader"
                })
                .and_then(|s| s["address"].as_str().map(str::to_string))
        })
        .expect("a catalog replica leads");
        format!("http://{address}")
    }

    /// The name of the service of `group` ("catalog" or "order") that leads now.
    pub fn leader_of(&self, group: &str) -> String {
        eventually(Duration::from_secs(10), || {
            self.status()
                .into_iter()
                .find(|s| {
                    s["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&format!("{group}-")))
                        && s["role"] == "leader"
                })
                .and_then(|s| s["name"].as_str().map(str::to_string))
        })
        .unwrap_or_else(|| panic!("a {group} replica leads"))
    }

    /// The order leader's term: what a buy sent to the catalog by hand carries.
    pub fn order_term(&self) -> u64 {
        let leader = self.leader_of("order");
        self.service(&leader)["term"].as_u64().expect("a term")
    }

    /// Writes fault hook `hook` (a file under the state's `faults/`) for every catalog replica.
    pub fn catalog_fault(&self, hook: &str, value: &str) {
        for id in 1..=3 {
            let path = self.file(&format!("faults/catalog-{id}/{hook}"));
            std::fs::write(&path, value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }

    /// Removes fault hook `hook` of every catalog replica.
    pub fn clear_catalog_fault(&self, hook: &str) {
        for id in 1..=3 {
            let _ = std::fs::remove_file(self.file(&format!("faults/catalog-{id}/{hook}")));
        }
    }

    /// The `Authorization` header that internal endpoints require, with the secret `up` made.
    pub fn authorization(&self) -> (&'static str, String) {
        let secret = read(&self.file("cluster-secret"));
        ("Authorization", format!("Bearer {}", secret.trim()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run("down", &[]);
    }
}

/// A reply's status and parsed JSON body.
pub struct Reply {
    pub status: u16,
    pub json: Value,
    /// The `Idempotency-Key` header of an order's reply.
    pub idempotency_key: Option<String>,
}

fn agent() -> ureq::Agent {
    storectl::tool_http::agent()
}

fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = result.expect("the request reaches the server");
    let status = response.status().as_u16();
    let idempotency_key = response
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response
        .body_mut()
        .read_to_string()
        .expect("a readable body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("reply is not JSON: {text}"));
    Reply {
        status,
        json,
        idempotency_key,
    }
}

pub fn get(url: &str) -> Reply {
    reply(agent().get(url).call())
}

/// A GET with extra headers (the cluster's secret, say).
pub fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = agent().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    reply(request.call())
}

/// POSTs raw bytes as `application/json`, with optional extra headers.
pub fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = agent().post(url).header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    reply(request.send(body))
}

/// POSTs JSON and returns whether a reply came at all: for a server that may die mid-request.
pub fn post_raw(url: &str, body: &str, headers: &[(&str, &str)]) -> bool {
    let mut request = agent().post(url).header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send(body).is_ok()
}

/// Checks the API's error shape and status.
pub fn assert_error(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "body: {}", reply.json);
    assert_eq!(reply.json["error"]["code"], status, "body: {}", reply.json);
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "an error message: {}",
        reply.json
    );
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sends `request` as raw bytes on a connection of its own and returns the whole reply: for
/// requests an HTTP client library would not send.
/// The cluster secret of services a test starts by itself with [`serve`].
pub const TEST_SECRET: &str = "a-test-secret-of-some-length";

/// Writes the cluster file of a one-host cluster with ports from `base` into `dir`: one
/// catalog replica on `base` + 1 (a group of one, so that it serves alone), one front end on
/// `base`, order replicas on `base` + 10 to 12.
pub fn cluster_file(dir: &Path, base: u16) -> PathBuf {
    let path = dir.join("cluster.toml");
    let mut file = storectl::cluster_file::ClusterFile::local("127.0.0.1", base, 1);
    file.catalog.truncate(1);
    file.save(&path).expect("the cluster file is written");
    path
}

/// A child process a test owns: killed and reaped when the handle drops, so a test that fails
/// half-way leaves nothing running.
pub struct Process {
    child: Option<Child>,
}

impl Process {
    pub fn spawn(command: &mut Command) -> Process {
        let child = command.spawn().expect("the storectl binary runs");
        Process { child: Some(child) }
    }

    /// Waits for the process to end by itself and returns what it wrote.
    pub fn wait_with_output(mut self) -> Output {
        let child = self.child.take().expect("a running child");
        child.wait_with_output().expect("the child's output")
    }
}

impl std::ops::Deref for Process {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.child.as_ref().expect("a running child")
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("a running child")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// Starts `storectl serve ARGS…` in `dir` with [`TEST_SECRET`], and waits until it answers on
/// `port`. Dropping the handle kills it. A replica starts a new group (`--init`) unless told
/// to join one.
pub fn serve(args: &[&str], dir: &Path, port: u16) -> Process {
    let replica = matches!(args.first(), Some(&"catalog") | Some(&"order"));
    let first_start = replica && !args.contains(&"--join");
    let process = Process::spawn(
        Command::new(EXE)
            .arg("serve")
            .args(args)
            .args(first_start.then_some("--init"))
            .env("STORECTL_CLUSTER_SECRET", TEST_SECRET)
            .current_dir(dir)
            .stderr(std::process::Stdio::null()),
    );
    let health = format!("http://127.0.0.1:{port}/health");
    // A catalog replica answers once it has applied its group's seed.
    let catalog = args.first() == Some(&"catalog");
    let up = eventually(Duration::from_secs(10), || {
        let reply = storectl::tool_http::get(&storectl::tool_http::agent(), &health).ok()?;
        let seeded = reply
            .json::<Value>()
            .is_some_and(|h| h["data"]["products"].as_u64() > Some(0));
        (!catalog || seeded).then_some(())
    });
    assert!(
        up.is_some(),
        "storectl serve {args:?} did not answer on port {port}"
    );
    process
}

/// A server may answer (413, say) before it has read everything: a failed write is fine.
pub fn raw_request(port: u16, request: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply
}

/// `storectl chaos` against `cluster` with a fixed seed (and four clients unless `args` says
/// how many), and its JSON report.
pub fn chaos(cluster: &Cluster, args: &[&str]) -> (bool, Value) {
    let mut all = vec!["--interval", "300ms", "--seed", "3", "--json"];
    if !args.contains(&"--clients") {
        all.extend_from_slice(&["--clients", "4"]);
    }
    all.extend_from_slice(args);
    let out = cluster.run("chaos", &all);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("chaos --json prints JSON: {}", stderr(&out)));
    (out.status.success(), report)
}

/// Every acknowledged order kept, none twice, files identical, stock conserved, and every
/// fault met orders.
pub fn assert_nothing_lost(report: &Value) {
    assert!(
        report["orders_acknowledged"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["orders_lost"], 0, "{report}");
    assert_eq!(report["orders_duplicated"], 0, "{report}");
    assert_eq!(report["files_identical"], true, "{report}");
    assert_eq!(report["stock_conserved"], true, "{report}");
    for round in report["kills"].as_array().unwrap() {
        assert!(
            round["orders_acknowledged"].as_u64().unwrap() > 0,
            "every fault met orders: {round}"
        );
    }
}
