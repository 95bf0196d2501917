//! Hosts on one machine, for partition tests: one network namespace per host, all plugged into a
//! bridge in a "switch" namespace by veth pairs, with addresses (10.99.0.0/24) that exist only
//! inside them. A link can be pulled (the host is cut off from every other) or two hosts can be
//! cut from each other alone (blackhole routes on both sides: packets vanish, as in a real
//! partition). Everything is removed when the [`Network`] drops.
//!
//! It needs root and `ip netns`: the tests that build hosts are `#[ignore]`d with that reason,
//! and [`Network::create`] fails with it where they are run without them.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::common::Process;

static NETWORKS: AtomicU32 = AtomicU32::new(0);

/// Hosts as network namespaces behind one switch.
pub struct Network {
    switch: String,
    hosts: Vec<Host>,
}

struct Host {
    name: String,
    namespace: String,
    address: String,
    /// The switch's end of the host's cable.
    port: String,
}

/// Runs `ip args…`; the error is its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Network {
    /// Hosts named `hosts`, with addresses 10.99.0.1, .2, … in that order. Panics, saying
    /// why, where namespaces cannot be made (not root, no `ip`).
    pub fn create(hosts: &[&str]) -> Network {
        let id = format!(
            "stc{}n{}",
            std::process::id() % 100_000,
            NETWORKS.fetch_add(1, Ordering::Relaxed)
        );
        let switch = format!("{id}-sw");
        if let Err(e) = ip(&["netns", "add", &switch]) {
            panic!("partition tests need root and `ip netns` ({e}): run as root: cargo test --test it -- --ignored (.ci/run does)");
        }
        let mut network = Network {
            switch,
            hosts: Vec::new(),
        };
        let built = network.build(&id, hosts);
        match built {
            Ok(()) => network,
            Err(e) => panic!("cannot build the test network: {e}"),
        }
    }

    fn build(&mut self, id: &str, hosts: &[&str]) -> Result<(), String> {
        let switch = self.switch.clone();
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        for (i, name) in hosts.iter().enumerate() {
            let namespace = format!("{id}-{name}");
            let address = format!("10.99.0.{}", i + 1);
            let port = format!("p{i}");
            ip(&["netns", "add", &namespace])?;
            self.hosts.push(Host {
                name: name.to_string(),
                namespace: namespace.clone(),
                address: address.clone(),
                port: port.clone(),
            });
            ip(&[
                "link", "add", &port, "netns", &switch, "type", "veth", "peer", "name", "eth0",
                "netns", &namespace,
            ])?;
            ip(&["-n", &switch, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &switch, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                &namespace,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// The host's address.
    pub fn address(&self, host: &str) -> &str {
        &self.host(host).address
    }

    /// Pulls the host's cable: it reaches nobody and nobody reaches it.
    pub fn isolate(&self, host: &str) {
        let port = &self.host(host).port;
        ip(&["-n", &self.switch, "link", "set", port, "down"]).expect("the link goes down");
    }

    /// Plugs the host's cable back in.
    pub fn rejoin(&self, host: &str) {
        let port = &self.host(host).port;
        ip(&["-n", &self.switch, "link", "set", port, "up"]).expect("the link comes up");
    }

    /// Cuts `a` and `b` from each other alone: each drops what it would send the other.
    pub fn cut(&self, a: &str, b: &str) {
        self.blackholes("add", a, b);
    }

    /// Undoes [`Network::cut`].
    pub fn heal(&self, a: &str, b: &str) {
        self.blackholes("del", a, b);
    }

    /// Adds or deletes the routes that drop what `a` and `b` send each other.
    fn blackholes(&self, change: &str, a: &str, b: &str) {
        for (from, to) in [(a, b), (b, a)] {
            let to = format!("{}/32", self.address(to));
            let namespace = &self.host(from).namespace;
            ip(&["-n", namespace, "route", change, "blackhole", &to])
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Starts `program args…` on `host`, its output appended to `log`, with `env`.
    pub fn spawn(
        &self,
        host: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Process {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the log opens");
        let err = out.try_clone().expect("the log is shared");
        Process::spawn(
            Command::new("ip")
                .args(["netns", "exec", &self.host(host).namespace, program])
                .args(args)
                .envs(env.iter().copied())
                .env("RUST_LOG", "info,openraft=warn")
                .stdout(out)
                .stderr(err),
        )
    }

    /// Records every packet that crosses the switch into `file` (pcap) until the capture is
    /// stopped; returns once tcpdump listens. `None` when tcpdump is not installed.
    pub fn capture(&self, file: &Path, log: &Path) -> Option<Capture> {
        if Command::new("tcpdump").arg("--version").output().is_err() {
            eprintln!("tcpdump is not installed: install it (apt-get install tcpdump)");
            return None;
        }
        let out = std::fs::File::create(log).expect("the capture's log opens");
        let process = Process::spawn(
            Command::new("ip")
                .args(["netns", "exec", &self.switch, "tcpdump", "-i", "br0"])
                // Each packet written as it comes, not when the kernel's buffer fills.
                .args(["--immediate-mode", "-U"])
                // Whole packets, written as root into the test's directory.
                .args(["-s", "0", "-Z", "root", "-w"])
                .arg(file)
                .stdout(out.try_clone().expect("the log is shared"))
                .stderr(out),
        );
        let listening = crate::common::eventually(std::time::Duration::from_secs(10), || {
            std::fs::read_to_string(log)
                .ok()
                .filter(|text| text.contains("listening on"))
        });
        assert!(listening.is_some(), "tcpdump did not start");
        Some(Capture { process })
    }

    /// The file that names `host`'s network, for [`enter`] on threads of their own.
    pub fn namespace_file(&self, host: &str) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.host(host).namespace))
    }

    /// Moves the calling thread onto `host`'s network.
    pub fn enter(&self, host: &str) {
        enter(&self.namespace_file(host));
    }

    /// Runs `work` on a thread of its own on `host`'s network.
    pub fn on<T: Send>(&self, host: &str, work: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter(host);
                    work()
                })
                .join()
                .expect("the work on the host finishes")
        })
    }
}

/// A running capture of the switch's traffic.
pub struct Capture {
    process: Process,
}

impl Capture {
    /// Stops tcpdump (SIGTERM, so it writes out what it holds) and waits for it.
    pub fn stop(mut self) {
        let pid = self.process.id() as i32;
        // SAFETY: kill(2) on our own child's pid, which it keeps until we wait for it.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let _ = self.process.wait();
    }
}

/// Moves the calling thread onto the network `namespace_file` names: every socket it (and any
/// thread it starts) opens from then on is that host's.
pub fn enter(namespace_file: &Path) {
    let file = std::fs::File::open(namespace_file)
        .unwrap_or_else(|e| panic!("{}: {e}", namespace_file.display()));
    // SAFETY: setns(2) on an open namespace file descriptor changes only this thread's network
    // namespace; the descriptor stays open for the call.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

impl Drop for Network {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.namespace]);
        }
        let _ = ip(&["netns", "del", &self.switch]);
    }
}
