//! The everyday verbs, against a running cluster: `query`, `buy` and `order` ask a front end, as
//! `curl` would but with readable replies; `logs` shows a service's log.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::Value;
use storectl::cluster::StateDir;
use storectl::tool_http::{self, Reply};

use crate::args::{BuyArgs, FrontendArgs, LogsArgs, OrderArgs, QueryArgs};
use crate::exit::Exit;

/// The front end's base URL: `--frontend`, or the first front end of the state directory's
/// cluster.
pub fn frontend_url(args: &FrontendArgs) -> Result<String> {
    resolve_frontend(&args.state.state_dir, args.frontend.as_deref())
}

pub fn resolve_frontend(state_dir: &std::path::Path, frontend: Option<&str>) -> Result<String> {
    Ok(match frontend {
        Some(addr) => storectl::config::base_url(addr),
        None => StateDir::new(state_dir)
            .load()
            .map_err(|e| anyhow::anyhow!("{e}, or pass --frontend ADDRESS"))?
            .frontend_url(),
    })
}

/// What to say when the front end does not answer at all: a setup problem, not the API's.
pub fn not_answering(frontend: &str, error: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the front end at {frontend} does not answer ({error}); start a cluster with `storectl up`, \
         or pass --frontend ADDRESS"
    )
}

/// The reply's `data`, or the API's error as the command's one-line failure.
fn data(reply: std::result::Result<Reply, String>, frontend: &str) -> Result<Value> {
    let reply = reply.map_err(|e| not_answering(frontend, &e))?;
    if reply.status != 200 {
        bail!("{} ({})", reply.message(), reply.status);
    }
    match reply.json::<Value>() {
        Some(mut body) => Ok(body["data"].take()),
        None => bail!("the front end sent an unexpected reply: {}", reply.body),
    }
}

fn print(json: bool, data: &Value, human: String) -> Result<Exit> {
    if json {
        println!("{data}");
    } else {
        println!("{human}");
    }
    Ok(Exit::Success)
}

pub fn query(args: &QueryArgs) -> Result<Exit> {
    let frontend = frontend_url(&args.frontend)?;
    let url = format!(
        "{frontend}/products/{}",
        storectl::http::encode_segment(&args.name)
    );
    let reply = tool_http::get(&tool_http::agent(), &url);
    let cache = reply
        .as_ref()
        .ok()
        .and_then(|r| r.cache_hit)
        .map(|hit| if hit { " (from the cache)" } else { "" })
        .unwrap_or("");
    let product = data(reply, &frontend)?;
    let human = format!(
        "{}: {} in stock at {}{cache}",
        product["name"].as_str().unwrap_or("?"),
        product["quantity"],
        product["price"]
    );
    print(args.frontend.json, &product, human)
}

pub fn buy(args: &BuyArgs) -> Result<Exit> {
    let frontend = frontend_url(&args.frontend)?;
    let body = serde_json::json!({ "name": args.name, "quantity": args.quantity });
    let reply = tool_http::post_json(
        &tool_http::agent(),
        &format!("{frontend}/orders"),
        &body,
        args.key.as_deref(),
    );
    let placed = data(reply, &frontend)?;
    let human = format!(
        "order {}: {} × {}{}",
        placed["order_number"],
        args.quantity,
        args.name,
        args.key
            .as_deref()
            .map(|k| format!(" (key {k})"))
            .unwrap_or_default()
    );
    print(args.frontend.json, &placed, human)
}

pub fn order(args: &OrderArgs) -> Result<Exit> {
    let frontend = frontend_url(&args.frontend)?;
    let url = format!("{frontend}/orders/{}", args.number);
    let order = data(tool_http::get(&tool_http::agent(), &url), &frontend)?;
    let human = format!(
        "order {}: {} × {}",
        order["number"],
        order["quantity"],
        order["name"].as_str().unwrap_or("?")
    );
    print(args.frontend.json, &order, human)
}

/// How often `logs -f` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub fn logs(args: &LogsArgs) -> Result<Exit> {
    let state = StateDir::new(&args.state.state_dir);
    let spec = state.load()?;
    if spec.service(args.service).is_none() {
        let names: Vec<String> = spec.names().map(|n| n.to_string()).collect();
        return Err(storectl::Error::Usage(format!(
            "no service '{}' in the cluster in {}; use one of {}",
            args.service,
            state.root().display(),
            names.join(", ")
        ))
        .into());
    }
    let path = state.log_path(args.service);
    let mut file = std::fs::File::open(&path).map_err(|e| storectl::Error::io(&path, e))?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| storectl::Error::io(&path, e))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = std::io::stdout().lock();
    for line in &lines[lines.len().saturating_sub(args.lines)..] {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if !args.follow {
        return Ok(Exit::Success);
    }
    // Ctrl-C ends the process (see interrupt.rs); until then, print what is appended.
    let mut at = file
        .stream_position()
        .map_err(|e| storectl::Error::io(&path, e))?;
    loop {
        std::thread::sleep(FOLLOW_POLL);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(at);
        if len < at {
            at = 0; // the log was replaced
        }
        if len == at {
            continue;
        }
        file.seek(SeekFrom::Start(at))
            .map_err(|e| storectl::Error::io(&path, e))?;
        let mut new = Vec::new();
        file.read_to_end(&mut new)
            .map_err(|e| storectl::Error::io(&path, e))?;
        at += new.len() as u64;
        out.write_all(&new)?;
        out.flush()?;
    }
}
