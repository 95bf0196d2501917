//! The command line, as one clap definition. Man pages and completions are generated from it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use storectl::bench::CacheMode;
use storectl::chaos::{Fault, GroupChoice};
use storectl::cluster::{Signal, Target, UpOptions};
use storectl::config::{self, parse_cache_size_on, parse_probability as probability};
use storectl::secret::Secret;
use storectl::services::{ServiceConfig, ServiceName};

#[derive(Debug, Parser)]
#[command(
    name = "storectl",
    version,
    about = "A toy store built as a small replicated system, and the toolkit that runs, breaks and checks it",
    long_about = "A toy store built as a small replicated system: a front end with an LRU cache, a \
catalog that keeps the stock and an order service that keeps every order, each run as three \
replicas of its own consensus group with a leader that can crash at any instant. storectl runs every service, starts and stops the whole cluster, kills and restarts \
pieces of it, drives clients against it and verifies that the replicas agree.",
    disable_help_subcommand = true,
    after_help = "Examples:
  storectl demo                                   see the store work, then clean up
  storectl up && storectl status                  start a cluster in ./.storectl
  storectl query tux && storectl buy tux 2        look at a toy, order two
  storectl top                                    watch it live (q quits)
  storectl client --p 0.5 --iterations 200 --clients 5
  storectl kill leader && storectl status         crash the order leader
  storectl restart order-3                        bring it back; it catches up
  storectl kill catalog-leader                    crash the catalog's leader
  storectl verify-logs                            are the replicas identical?
  storectl down"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a cluster in a temporary directory, drive clients, crash the leader, check, stop
    #[command(after_help = "Examples:
  storectl demo
  storectl demo --clients 2 --iterations 50 --keep")]
    Demo(DemoArgs),
    /// Run one service in the foreground
    Serve(ServeArgs),
    /// Start three catalog replicas, three order replicas and the front ends in the background
    #[command(after_help = "Examples:
  storectl up
  storectl up --port-base 9000 --state-dir /tmp/store2
  storectl up --cache-size 0 --restock-interval 2s")]
    Up(UpArgs),
    /// Stop every service of the cluster (data files stay)
    #[command(after_help = "Examples:
  storectl down
  storectl down --state-dir /tmp/store2")]
    Down(StateArgs),
    /// Show each service: pid, address, alive, role, last order number, cache counters
    #[command(after_help = "Examples:
  storectl status
  storectl status --json | jq '.[] | select(.role == \"leader\")'
  storectl status --cluster /etc/storectl/cluster.toml     a cluster on several hosts

A replica's last order is the last one it has applied: committed, so durable on a majority,
not merely received. ROLE is the engine's: leader, follower, or candidate while an election
runs.

Exit status: 0 when every service answers and a replica leads; 1 when a service does not
answer, no replica leads, or there is no cluster (the table or the message says which); 2 for
a bad command line. So `storectl status >/dev/null` is a health check.")]
    Status(StatusArgs),
    /// Kill one service (SIGKILL by default) to simulate a crash
    #[command(after_help = "Examples:
  storectl kill leader
  storectl kill order-2
  storectl kill catalog-leader
  storectl kill catalog-2 --signal term
  storectl kill leader --signal stop     # a pause: it holds its sockets, answers nothing
  storectl kill order-3 --signal cont")]
    Kill(KillArgs),
    /// Start a killed (or running) service again with the arguments `up` gave it
    #[command(after_help = "Examples:
  storectl restart order-3
  storectl restart frontend")]
    Restart(TargetArgs),
    /// Look at one toy: its price and how many are in stock
    #[command(after_help = "Examples:
  storectl query tux
  storectl query 'Lego Set' --json
  storectl query tux --frontend 10.0.0.5:8000")]
    Query(QueryArgs),
    /// Order a toy: one unit unless told, placed once even if retried with the same --key
    #[command(after_help = "Examples:
  storectl buy tux
  storectl buy tux 3 --key my-order-17      # run it again: the same order, not a second one
  storectl buy fox --json")]
    Buy(BuyArgs),
    /// Look at one order by its number
    #[command(after_help = "Examples:
  storectl order 0
  storectl order 42 --json")]
    Order(OrderArgs),
    /// A live view: every service, the leader, orders and queries per second, latencies, events
    #[command(after_help = "Examples:
  storectl top                                  the cluster in ./.storectl
  storectl top --cluster /etc/storectl/cluster.toml
  storectl chaos --rounds 20 & storectl top     watch a chaos run

Keys: q, Esc or Ctrl-C quit. Rates and latencies cover the last --window (product queries and
orders as the front ends timed them); events are what changed between two readings.")]
    Top(TopArgs),
    /// The live view in a browser: services, leaders, charts of the traffic, events
    #[command(after_help = "Examples:
  storectl dashboard                            the cluster in ./.storectl, at http://127.0.0.1:8090/
  storectl dashboard --listen 127.0.0.1:9000
  storectl dashboard --cluster /etc/storectl/cluster.toml

The page is read-only and updates itself every --interval; the charts cover the last five
minutes. It listens on loopback unless told otherwise: anyone who can reach --listen sees
the cluster's addresses and traffic.")]
    Dashboard(DashboardArgs),
    /// Show a service's log; -f keeps following it
    #[command(after_help = "Examples:
  storectl logs order-3
  storectl logs frontend -n 100
  storectl logs catalog-3 -f                # Ctrl-C to stop")]
    Logs(LogsArgs),
    /// Run the buy loop against the front end, then check every order it made
    #[command(after_help = "Examples:
  storectl client --p 0.5
  storectl client --p 1 --iterations 200 --clients 5 --seed 7
  storectl client --frontend 127.0.0.1:8000 --json")]
    Client(ClientArgs),
    /// Kill, pause or slow replicas of either group (leaders among them) under client load,
    /// restart them, and check that nothing was lost
    #[command(after_help = "Examples:
  storectl chaos --clients 5 --rounds 20 --interval 1s --down-for 2s
  storectl chaos --rounds 5 --leader-share 1 --json
  storectl chaos --fault kill,stop,two,power --rounds 20
  storectl chaos --group any --fault kill,stop,slow-disk --rounds 10
  storectl up --fault-hooks --initial-stock 1000000 && storectl chaos --fault slow-disk --rounds 3

Without a running cluster in the state directory, chaos starts one in a temporary directory,
with a million of each toy. Each round waits until every replica has caught up before the next
fault. Clients retry a failed order with the same key; with `two` and `power` they see 503s
while fewer than two replicas run, and only what was acknowledged must survive.

Every round reports the orders in flight while its fault was active, how many were
acknowledged, and the slowest. A fault that met no acknowledged order tested nothing and fails
the run: against a cluster of your own, start it with stock for the whole run
(`storectl up --state-dir DIR --initial-stock 1000000`, in a new state directory).")]
    Chaos(ChaosArgs),
    /// Measure the store: latency against p with the cache on and off, or throughput (--load)
    #[command(after_help = "Examples:
  storectl bench --out results                    the latency study, about a minute
  storectl bench --p 0,0.5,1 --duration 10s --seed 7
  storectl bench --load                           requests per second at 32 connections
  storectl bench --load --etcd                    the same, with etcd's puts beside the orders
  storectl bench --load --tls                     what mutual TLS between services costs orders
  storectl up && storectl bench --state-dir .storectl --cache on

The latency study writes points.csv, summary.md and one SVG plot per request type
(product-query.svg, order.svg, order-query.svg) into --out; --load writes
throughput.csv and throughput.md. Without --state-dir the bench starts its own
clusters in a temporary directory, with 1000000 units of each toy so that orders
never sell out, and stops them at the end. Exit 1 if any request got an
unexpected reply.")]
    Bench(BenchArgs),
    /// Compare the replicas' orders (files here, or over the network); exit 1 on any difference
    #[command(
        name = "verify-logs",
        after_help = "Examples:
  storectl verify-logs
  storectl verify-logs --json
  STORECTL_CLUSTER_SECRET=$(cat secret) storectl verify-logs --cluster cluster.toml --stock

With --cluster, every replica is asked for its orders over the network; one that cannot be
reached is named and the check exits 1."
    )]
    VerifyLogs(VerifyArgs),
    /// List, add, remove or replace the members of a replica group
    #[command(subcommand)]
    Member(MemberCommand),
    /// Make the cluster's CA and its services' certificates, for mutual TLS between them
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Serve a disk that loses what was not fsynced when told to: a FUSE file system over a
    /// directory, for power-cut tests
    #[cfg(feature = "lossy-disk")]
    #[command(
        name = "lossy-disk",
        after_help = "Examples:
  storectl lossy-disk /mnt/lossy --backing /var/tmp/lossy &
  echo cut > /mnt/lossy/.lossy-disk               lose everything not synced
  echo 'cut order-1' > /mnt/lossy/.lossy-disk     only what is under order-1
  cat /mnt/lossy/.lossy-disk                      what a cut would lose now
  storectl up --lossy-disk                        a cluster whose replicas each have one

What the processes write goes through to the backing directory at once; what a cut takes back
is whatever was not yet durable by POSIX's rules: a file's bytes until the file is fsynced, a
name (create, rename, unlink, mkdir) until its directory is fsynced. The processes using the
disk must be stopped before a cut, as a power loss stops them. Runs in the foreground until
SIGTERM or Ctrl-C, then unmounts, keeping everything written. Needs root and /dev/fuse."
    )]
    LossyDisk(LossyDiskArgs),
    /// Write the man pages or shell completions from the CLI definitions
    #[command(after_help = "Examples:
  storectl generate man --out man
  storectl generate completions --out completions")]
    Generate(GenerateArgs),
}

/// `storectl serve <service>`: the service's own options, and the cluster's secret.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// The cluster secret of a service.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// The cluster's shared secret, which internal endpoints require and calls to other services
    /// present (at least 16 characters). `storectl up` makes one and passes it in the
    /// environment; prefer the environment to the flag, which `ps` shows
    #[arg(
        long = "cluster-secret",
        env = "STORECTL_CLUSTER_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        global = true
    )]
    secret: Option<String>,
}

impl SecretArgs {
    /// The secret, checked here rather than by clap, whose error would echo it.
    pub fn secret(&self) -> Result<Secret, storectl::Error> {
        let usage = |e: String| {
            storectl::Error::Usage(format!(
                "{e}: set --cluster-secret or STORECTL_CLUSTER_SECRET"
            ))
        };
        let given = self.secret.as_deref().ok_or_else(|| {
            usage(
                "no cluster secret (a cluster from `storectl up` keeps it in \
                     STATE_DIR/cluster-secret)"
                    .into(),
            )
        })?;
        Secret::parse(given).map_err(|e| usage(e.to_string()))
    }
}

#[derive(Debug, Args)]
pub struct StateArgs {
    /// The cluster's state directory: data files, pid files, logs, addresses
    #[arg(
        long,
        env = "STORECTL_STATE_DIR",
        hide_env_values = true,
        default_value = ".storectl"
    )]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub options: UpOptions,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Ask the services of this cluster file over the network instead (from any host)
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// catalog-N, order-N, frontend (frontend-N with several), leader (the order leader) or
    /// catalog-leader
    #[arg(value_parser = Named::<Target>::new(&["leader", "catalog-leader"]), hide_possible_values = true)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Signal to send
    #[arg(long, value_enum, default_value = "kill")]
    pub signal: Signal,
}

/// Which front end to talk to.
#[derive(Debug, Args)]
pub struct FrontendArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Front end to talk to (default: the first of the cluster in the state directory)
    #[arg(long, value_name = "ADDRESS")]
    pub frontend: Option<String>,
    /// Print the reply's data as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The toy's name, in any case (e.g. tux, "Lego Set")
    pub name: String,
    #[command(flatten)]
    pub frontend: FrontendArgs,
}

#[derive(Debug, Args)]
pub struct BuyArgs {
    /// The toy's name, in any case
    pub name: String,
    /// How many (1 to 1000000)
    #[arg(default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub quantity: u64,
    /// Idempotency key: the same key places the order once however often it is sent
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    #[command(flatten)]
    pub frontend: FrontendArgs,
}

#[derive(Debug, Args)]
pub struct OrderArgs {
    /// The order's number
    pub number: u64,
    #[command(flatten)]
    pub frontend: FrontendArgs,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Watch the services of this cluster file instead, over the network
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    /// How often every service is read
    #[arg(long, default_value = "500ms")]
    pub interval: config::HumanDuration,
    /// How far back rates and latencies reach
    #[arg(long, default_value = "5s")]
    pub window: config::HumanDuration,
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Watch the services of this cluster file instead, over the network
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    /// Where the page is served (port 0 picks a free one)
    #[arg(long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:8090")]
    pub listen: std::net::SocketAddr,
    /// How often every service is read
    #[arg(long, default_value = "1s")]
    pub interval: config::HumanDuration,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// catalog-N, order-N or frontend (frontend-N with several)
    #[arg(value_parser = Named::<ServiceName>::new(&[]), hide_possible_values = true)]
    pub service: ServiceName,
    /// Lines to show from the end
    #[arg(short = 'n', long, default_value_t = 20)]
    pub lines: usize,
    /// Keep printing lines as the service writes them, until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Front end to talk to (default: the cluster in the state directory)
    #[arg(long)]
    pub frontend: Option<String>,
    /// Probability of ordering a toy that is in stock
    #[arg(long, default_value_t = 0.5, value_parser = probability)]
    pub p: f64,
    /// Iterations of each session
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub iterations: u64,
    /// Concurrent sessions
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub clients: u64,
    /// Seed of the random choices, to repeat a run (default: random, printed)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ChaosArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Concurrent client sessions
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub clients: u64,
    /// Probability of ordering a toy that is in stock
    #[arg(long, default_value_t = 0.8, value_parser = probability)]
    pub p: f64,
    /// Rounds: one fault each, one after another
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub rounds: u64,
    /// Pause before each round's fault
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub interval: Duration,
    /// How long a fault lasts: a killed replica stays down, a disk stays slow
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub down_for: Duration,
    /// Share of the faults aimed at the group's leader
    #[arg(long, default_value_t = 0.5, value_parser = probability)]
    pub leader_share: f64,
    /// Faults to choose from, one at random each round, comma-separated
    #[arg(long, value_enum, value_delimiter = ',', default_value = "kill,stop")]
    pub fault: Vec<Fault>,
    /// The replica group the faults are aimed at
    #[arg(long, value_enum, default_value = "order")]
    pub group: GroupChoice,
    /// Seed of the victims and the clients' choices (default: random, printed)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Directory for the results (created if missing; files in it are replaced)
    #[arg(long, default_value = "storectl-bench")]
    pub out: PathBuf,
    /// Concurrent client sessions at each point
    #[arg(long, default_value_t = 5, conflicts_with = "load",
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub clients: u64,
    /// Order probabilities to measure, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "0,0.2,0.4,0.6,0.8",
          conflicts_with = "load", value_parser = probability)]
    pub p: Vec<f64>,
    /// Cache modes to measure, comma-separated [default: on,off; with --state-dir, the mode the
    /// running cluster has]
    #[arg(long, value_delimiter = ',', value_enum, conflicts_with = "load")]
    pub cache: Option<Vec<CacheMode>>,
    /// Iterations of the buy loop per session at each point
    #[arg(long, default_value_t = 1000, conflicts_with_all = ["duration", "load"],
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub iterations: u64,
    /// Run each point for this long instead of a number of iterations; with --load, how long
    /// each phase is measured [default with --load: 5s]
    #[arg(long, value_parser = duration)]
    pub duration: Option<Duration>,
    /// Seed of the clients' choices, to repeat a study (default: random, printed)
    #[arg(long, conflicts_with = "load")]
    pub seed: Option<u64>,
    /// Entries of the front end's cache when it is on, in clusters the bench starts
    #[arg(long, default_value_t = config::defaults::CACHE_SIZE, value_parser = parse_cache_size_on)]
    pub cache_size: usize,
    /// Measure the running cluster in this state directory instead of starting clusters
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Throughput mode: many connections per request type for a fixed time, then one
    #[arg(long)]
    pub load: bool,
    /// With --load, also measure puts into three etcd members on loopback (etcd from the PATH
    /// or STORECTL_ETCD) with the same load generator, and compare orders with them
    #[arg(long, requires = "load")]
    pub etcd: bool,
    /// With --load, also measure orders on a cluster whose services speak mutual TLS (up
    /// --tls), and compare them with the orders without it
    #[arg(long, requires = "load", conflicts_with = "state_dir")]
    pub tls: bool,
    /// Connections of the throughput mode's concurrent phases
    #[arg(long, default_value_t = 32, requires = "load",
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub connections: u64,
    /// Print the results as JSON on stdout (the files are written too)
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "lossy-disk")]
#[derive(Debug, Args)]
pub struct LossyDiskArgs {
    /// Where to mount it (an existing directory)
    pub mountpoint: PathBuf,
    /// The real directory behind it (created if missing); what it holds when the disk mounts
    /// counts as durable
    #[arg(long, value_name = "DIR")]
    pub backing: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make a new CA and a certificate for every service of the cluster file and the tools
    #[command(after_help = "Examples:
  storectl certs init --cluster cluster.toml --out tls
  storectl certs init --cluster cluster.toml --out /etc/storectl/tls --days 90 --force

Writes ca.pem and ca-key.pem, then NAME.pem and NAME-key.pem for each service (catalog-1,
order-2, frontend-1...) and for the tools (storectl), every file readable by its owner only;
each certificate names its service and its host in the cluster file. Then adds a [tls] table
to the cluster file, which turns mutual TLS on for every service started with it. Copy the
directory to every host; keep ca-key.pem on one only, or offline (docs/security.md).")]
    Init(CertsInitArgs),
    /// Make a certificate for one service with the cluster's CA: a new member, a renewal
    #[command(after_help = "Examples:
  storectl certs add order-4 --cluster cluster.toml
  storectl certs add order-4 --cluster cluster.toml --address 10.0.0.4:8013
  storectl certs add catalog-2 --cluster cluster.toml --force      renew (or rotate) one

The service's host comes from the cluster file, or --address for one not in it yet. A service
uses a certificate replaced on disk for its next connection, without a restart.")]
    Add(CertsAddArgs),
}

#[derive(Debug, Args)]
pub struct CertsInitArgs {
    /// The cluster file: every service in it gets a certificate, and a [tls] table
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    /// The directory to write the CA, certificates and keys to (made if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How long each service's certificate is valid, in days (the CA: ten years)
    #[arg(long, default_value_t = storectl::tls::certs::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,
    /// Replace files that are already there (a new CA: every certificate must be replaced)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CertsAddArgs {
    /// The service: catalog-N, order-N, frontend-N, or storectl for the tools
    pub name: String,
    /// The cluster file whose [tls] table says where the CA is
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    /// The service's address, when the cluster file does not have it yet
    #[arg(long, value_name = "HOST:PORT")]
    pub address: Option<String>,
    /// How long the certificate is valid, in days
    #[arg(long, default_value_t = storectl::tls::certs::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,
    /// Replace the service's certificate and key if they are there (renewal, rotation)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List each group's members: id, address, voter or learner, leader, how far behind, answers
    #[command(after_help = "Examples:
  storectl member list
  storectl member list --group catalog --json
  storectl member list --cluster /etc/storectl/cluster.toml

BEHIND counts the entries a member's log lacks of the leader's, as the leader knows (? until
the leader has heard from it). The list is the group's last membership in the leader's log,
which is what counts toward a majority; exit 1 when no replica of a group leads.")]
    List(MemberListArgs),
    /// Add a replica to a group: a learner until it has the log, then a voter
    #[command(after_help = "Examples:
  storectl member add --group order --id 4           a local cluster: starts order-4 itself
  storectl member add --group order --id 5 --cluster cluster.toml --address 10.0.0.5:8010

With --cluster, start the new replica on its host first, as a new member:
  storectl serve order --id 5 --join --cluster cluster.toml
The change is refused while another is under way, or when the group's voters afterwards
would not include a majority that answers now.")]
    Add(MemberAddArgs),
    /// Remove a replica from a group (the leader too: the others elect a new one)
    #[command(after_help = "Examples:
  storectl member remove --group order --id 5
  storectl member remove --group catalog --id 2 --cluster cluster.toml

A local cluster's replica is then stopped; its files are kept.")]
    Remove(MemberRemoveArgs),
    /// Put a new replica in the place of one that is gone for good (a lost disk, a dead host)
    #[command(after_help = "Examples:
  storectl member replace --group order --id 2 --with 4
  storectl member replace --group order --id 2 --with 4 --cluster cluster.toml --address 10.0.0.4:8010

The new replica receives the log as a learner, then takes the old one's place among the voters
in one change.")]
    Replace(MemberReplaceArgs),
}

/// Where a membership change is made, and how long a new member may take to catch up.
#[derive(Debug, Args)]
pub struct MemberTarget {
    #[command(flatten)]
    pub state: StateArgs,
    /// Change the cluster of this cluster file over the network instead (from any host); the
    /// file is updated when the change is committed
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// The replica group
    #[arg(long, value_enum)]
    pub group: storectl::cluster::members::ReplicaGroup,
    /// How long a new member may take to receive the log
    #[arg(long, default_value = "10m")]
    pub catch_up_timeout: storectl::config::HumanDuration,
}

#[derive(Debug, Args)]
pub struct MemberAddArgs {
    #[command(flatten)]
    pub target: MemberTarget,
    /// The new replica's id (one no member has)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=storectl::config::MAX_REPLICA_ID as i64))]
    pub id: u32,
    /// Where it listens, HOST:PORT (a local cluster: its port in the layout by default)
    #[arg(long)]
    pub address: Option<String>,
}

#[derive(Debug, Args)]
pub struct MemberRemoveArgs {
    #[command(flatten)]
    pub target: MemberTarget,
    /// The replica to remove
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=storectl::config::MAX_REPLICA_ID as i64))]
    pub id: u32,
}

#[derive(Debug, Args)]
pub struct MemberReplaceArgs {
    #[command(flatten)]
    pub target: MemberTarget,
    /// The replica that is gone
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=storectl::config::MAX_REPLICA_ID as i64))]
    pub id: u32,
    /// The new replica's id (one no member has)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=storectl::config::MAX_REPLICA_ID as i64))]
    pub with: u32,
    /// Where the new replica listens, HOST:PORT (a local cluster: its port in the layout by
    /// default)
    #[arg(long)]
    pub address: Option<String>,
}

#[derive(Debug, Args)]
pub struct MemberListArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Ask the services of this cluster file over the network instead (from any host)
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    /// Only this group (default: both)
    #[arg(long, value_enum)]
    pub group: Option<storectl::cluster::members::ReplicaGroup>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Ask the replicas (and, with --stock, the catalog) of this cluster file over the network
    /// instead of reading the state directory's files; needs the cluster's secret
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Also check that stock was conserved: for every toy, seed + restocked − ordered = stock,
    /// and every unit the catalog sold belongs to an order in the log (run it with no client
    /// running, or orders in flight count as differences)
    #[arg(long)]
    pub stock: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GenerateWhat {
    /// Man pages, one per command
    Man,
    /// Completions for bash, zsh and fish
    Completions,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    pub what: GenerateWhat,
    /// Directory to write into (default: man/ or completions/)
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Concurrent client sessions
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub clients: u64,
    /// Iterations of each session
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub iterations: u64,
    /// Probability of ordering a toy that is in stock
    #[arg(long, default_value_t = 0.5, value_parser = probability)]
    pub p: f64,
    /// Keep the cluster's directory (its files and logs) instead of deleting it
    #[arg(long)]
    pub keep: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    s.parse::<config::HumanDuration>().map(|d| d.get())
}

/// Parses a service or target name, and offers the services of a cluster `up` starts (after
/// `also`, like `leader` for a target) to shell completion; names beyond them, like frontend-4,
/// still parse.
#[derive(Clone)]
pub struct Named<T> {
    also: &'static [&'static str],
    parsed: std::marker::PhantomData<T>,
}

impl<T> Named<T> {
    fn new(also: &'static [&'static str]) -> Self {
        Named {
            also,
            parsed: std::marker::PhantomData,
        }
    }
}

/// What completion offers for a service.
const SERVICES: &[&str] = &[
    "catalog-1",
    "catalog-2",
    "catalog-3",
    "frontend",
    "frontend-1",
    "frontend-2",
    "frontend-3",
    "order-1",
    "order-2",
    "order-3",
];

impl<T> clap::builder::TypedValueParser for Named<T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        _command: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        text.parse()
            .map_err(|e: String| clap::Error::raw(clap::error::ErrorKind::InvalidValue, e))
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            self.also
                .iter()
                .chain(SERVICES)
                .map(|&name| clap::builder::PossibleValue::new(name)),
        ))
    }
}
