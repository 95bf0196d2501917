//! `storectl generate man|completions`: docs and completions from the clap definitions.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::args::{Cli, GenerateArgs, GenerateWhat};
use crate::exit::Exit;

pub fn run(args: &GenerateArgs) -> Result<Exit> {
    type Writer = fn(&Path) -> Result<Vec<PathBuf>>;
    let (default, written): (&str, Writer) = match args.what {
        GenerateWhat::Man => ("man", man),
        GenerateWhat::Completions => ("completions", completions),
    };
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(default));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for path in written(&out)? {
        println!("wrote {}", path.display());
    }
    Ok(Exit::Success)
}

/// One page per command: `storectl.1`, `storectl-up.1`, `storectl-serve-catalog.1`, ….
fn man(out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let command = Cli::command();
    write_pages(&command, "storectl", out, &mut written)?;
    Ok(written)
}

fn write_pages(
    command: &clap::Command,
    name: &str,
    out: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let page = command.clone().name(name.to_string());
    let mut bytes = Vec::new();
    clap_mangen::Man::new(page).render(&mut bytes)?;
    let path = out.join(format!("{name}.1"));
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), out, written)?;
    }
    Ok(())
}

fn completions(out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = Cli::command();
        let path = clap_complete::generate_to(shell, &mut command, "storectl", out)
            .with_context(|| format!("cannot write {shell} completions into {}", out.display()))?;
        written.push(path);
    }
    Ok(written)
}
