//! etcd beside storectl: three etcd members on loopback (Debian's `etcd-server`), started by the
//! bench in a temporary directory on the same disk, so that the same load generator can measure
//! etcd's replicated puts next to storectl's orders in one run. etcd is the yardstick: the most
//! trusted replicated write there is on one machine.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::tool_error::{Result, ToolError};
use crate::tool_http;

/// The etcd binary: `STORECTL_ETCD`, or `etcd` on the PATH. `None` when there is none.
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STORECTL_ETCD") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("etcd"))
        .find(|path| path.is_file())
}

/// A three-member etcd cluster on loopback; every member is killed (by its pid) and its data
/// removed on drop.
pub struct Etcd {
    members: Vec<Child>,
    client_urls: Vec<String>,
    _dir: tempfile::TempDir,
}

/// How long the members may take to elect a leader.
const START: Duration = Duration::from_secs(30);

impl Etcd {
    /// Starts three members of `exe` and waits until they have a leader.
    pub fn start(exe: &Path) -> Result<Etcd> {
        let dir = tempfile::Builder::new()
            .prefix("storectl-etcd-")
            .tempdir()
            .map_err(|e| ToolError::cannot("make a directory for etcd", e))?;
        let ports = free_ports(6)?;
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let initial_cluster: Vec<String> = (0..3)
            .map(|i| format!("m{i}={}", url(ports[3 + i])))
            .collect();
        let mut etcd = Etcd {
            members: Vec::new(),
            client_urls: (0..3).map(|i| url(ports[i])).collect(),
            _dir: dir,
        };
        for i in 0..3 {
            let data = etcd._dir.path().join(format!("m{i}"));
            let log = std::fs::File::create(etcd._dir.path().join(format!("m{i}.log")))
                .map_err(|e| ToolError::cannot("write etcd's log", e))?;
            let child = Command::new(exe)
                .arg(format!("--name=m{i}"))
                .arg(format!("--data-dir={}", data.display()))
                .arg(format!("--listen-client-urls={}", url(ports[i])))
                .arg(format!("--advertise-client-urls={}", url(ports[i])))
                .arg(format!("--listen-peer-urls={}", url(ports[3 + i])))
                .arg(format!(
                    "--initial-advertise-peer-urls={}",
                    url(ports[3 + i])
                ))
                .arg(format!("--initial-cluster={}", initial_cluster.join(",")))
                .arg("--initial-cluster-state=new")
                .arg("--initial-cluster-token=storectl-bench")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| ToolError::cannot(format!("start {}", exe.display()), e))?;
            etcd.members.push(child);
        }
        let ready =
            crate::poll::until(START, Duration::from_millis(100), || etcd.leader_url().ok());
        if ready.is_none() {
            return Err(ToolError::EtcdNoLeader {
                secs: START.as_secs(),
                logs: etcd._dir.path().to_path_buf(),
            });
        }
        Ok(etcd)
    }

    /// The client URL of the member that leads: puts sent there are not forwarded.
    pub fn leader_url(&self) -> Result<String> {
        let agent = tool_http::agent();
        for url in &self.client_urls {
            let status = tool_http::post_json(
                &agent,
                &format!("{url}/v3/maintenance/status"),
                &serde_json::json!({}),
                None,
            )
            .map_err(|e| ToolError::remote(url, e))?;
            let Ok(body) = serde_json::from_str::<Value>(&status.body) else {
                continue;
            };
            let leads = body["leader"].as_str().is_some_and(|leader| {
                leader != "0" && Some(leader) == body["header"]["member_id"].as_str()
            });
            if leads {
                return Ok(url.clone());
            }
        }
        Err(ToolError::NoEtcdMemberLeads)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for member in &mut self.members {
            let _ = member.kill();
            let _ = member.wait();
        }
    }
}

/// `count` ports that were free a moment ago on 127.0.0.1.
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .map_err(ToolError::NoPortForEtcd)?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()
        .map_err(ToolError::NoPortForEtcd)
}

/// The body of a put of `value_bytes` bytes under key `bench-{i}`, for etcd's JSON gateway.
pub fn put_body(i: usize, value_bytes: usize) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::json!({
        "key": b64.encode(format!("bench-{i}")),
        "value": b64.encode(vec![b'x'; value_bytes]),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_names_its_key_and_value_in_base64() {
        let body: Value = serde_json::from_str(&put_body(7, 3)).unwrap();
        assert_eq!(body["key"], "YmVuY2gtNw==");
        assert_eq!(body["value"], "eHh4");
    }
}
