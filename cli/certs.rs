//! `storectl certs init|add`: the cluster's CA and its services' certificates.

use std::path::{Path, PathBuf};

use anyhow::Result;
use storectl::cluster_file::{host_of, ClusterFile};
use storectl::tls::certs::{self, Party};
use storectl::tls::{TlsTable, TOOL_NAME};
use storectl::Error;

use crate::args::{CertsAddArgs, CertsCommand, CertsInitArgs};
use crate::exit::Exit;

pub fn run(command: &CertsCommand) -> Result<Exit> {
    match command {
        CertsCommand::Init(args) => init(args),
        CertsCommand::Add(args) => add(args),
    }
}

fn init(args: &CertsInitArgs) -> Result<Exit> {
    let mut cluster = ClusterFile::load(&args.cluster)?;
    let parties = cluster.certificate_parties();
    let written = certs::init(&args.out, &parties, args.days, args.force).map_err(Error::Usage)?;
    list(&written);
    let table = TlsTable::for_dir(&relative_to_file(&args.out, &args.cluster));
    match &cluster.tls {
        Some(existing) if *existing == table => {}
        Some(existing) => println!(
            "{} already has a [tls] table (ca = {:?}), left as it is: make it name {} if these \
             are the certificates to use",
            args.cluster.display(),
            existing.ca,
            args.out.display()
        ),
        None => {
            cluster.tls = Some(table);
            cluster.save(&args.cluster)?;
            println!(
                "added a [tls] table to {}: services started with it speak mutual TLS",
                args.cluster.display()
            );
        }
    }
    println!(
        "next: copy {} and the cluster file to every host, restart the services, and keep \
         ca-key.pem on this host only (docs/security.md)",
        args.out.display()
    );
    Ok(Exit::Success)
}

fn add(args: &CertsAddArgs) -> Result<Exit> {
    let cluster = ClusterFile::load(&args.cluster)?;
    let Some(tls) = &cluster.tls else {
        return Err(Error::Usage(format!(
            "{} has no [tls] table: make the cluster's CA first with `storectl certs init \
             --cluster {} --out DIR`",
            args.cluster.display(),
            args.cluster.display()
        ))
        .into());
    };
    let known = cluster
        .certificate_parties()
        .into_iter()
        .find(|p| p.name == args.name);
    let party = match (&args.address, known) {
        (Some(address), _) => Party {
            name: args.name.clone(),
            hosts: vec![host_of(address).to_string()],
        },
        (None, Some(known)) => known,
        (None, None) => {
            return Err(Error::Usage(format!(
                "{} names no service {}: pass --address HOST:PORT for a service it does not \
                 have yet (services: {})",
                args.cluster.display(),
                args.name,
                cluster
                    .certificate_parties()
                    .iter()
                    .map(|p| p.name.as_str())
                    .filter(|n| *n != TOOL_NAME)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into())
        }
    };
    certs::check_party(&party).map_err(Error::Usage)?;
    let ca = tls.ca_path();
    let dir = ca.parent().unwrap_or(Path::new("."));
    let written = certs::add(dir, &party, args.days, args.force).map_err(Error::Usage)?;
    list(&written);
    Ok(Exit::Success)
}

fn list(written: &[PathBuf]) {
    for file in written {
        println!("wrote {}", file.display());
    }
}

/// `dir` as the cluster file's `[tls]` table names it: relative to the file's directory when
/// it is inside it, so the file and the directory can be copied together.
fn relative_to_file(dir: &Path, cluster: &Path) -> String {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let dir = absolute(dir);
    let base = absolute(
        cluster
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    );
    match dir.strip_prefix(&base) {
        Ok(inside) if !inside.as_os_str().is_empty() => inside.display().to_string(),
        _ => dir.display().to_string(),
    }
}
