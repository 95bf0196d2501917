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
    let root = PageName {
        file: "storectl".into(),
        typed: "storectl".into(),
        parent: None,
    };
    write_pages(&command, &root, out, &mut written)?;
    Ok(written)
}

/// What a page is called: storectl-kill(1), for the command a reader types, `storectl kill`,
/// under storectl(1).
struct PageName {
    file: String,
    typed: String,
    parent: Option<String>,
}

impl PageName {
    fn child(&self, sub: &str) -> PageName {
        PageName {
            file: format!("{}-{sub}", self.file),
            typed: format!("{} {sub}", self.typed),
            parent: Some(self.file.clone()),
        }
    }
}

fn write_pages(
    command: &clap::Command,
    name: &PageName,
    out: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let mut page = command
        .clone()
        .display_name(name.file.clone())
        .bin_name(name.typed.clone());
    page.build();
    let man = clap_mangen::Man::new(page.clone()).manual("storectl manual");
    let mut bytes = Vec::new();
    man.render_title(&mut bytes)?;
    man.render_name_section(&mut bytes)?;
    if name.parent.is_none() {
        bytes.extend(ROOT_SYNOPSIS.as_bytes());
    } else {
        man.render_synopsis_section(&mut bytes)?;
    }
    man.render_description_section(&mut bytes)?;
    if page.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut bytes)?;
    }
    if page.has_subcommands() {
        man.render_subcommands_section(&mut bytes)?;
    }
    if let Some(after) = page.get_after_help() {
        bytes.extend(examples_section(&after.to_string()));
    }
    bytes.extend(common_sections(name, &page).as_bytes());
    let path = out.join(format!("{}.1", name.file));
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in command.get_subcommands() {
        write_pages(sub, &name.child(sub.get_name()), out, written)?;
    }
    Ok(())
}

/// The main page's synopsis: the commands people type.
const ROOT_SYNOPSIS: &str = ".SH SYNOPSIS
.nf
\\fBstorectl demo\\fR
\\fBstorectl up\\fR [--port-base N] [--frontends K] [--state-dir DIR]
\\fBstorectl status\\fR [--json] [--cluster FILE]
\\fBstorectl query\\fR NAME | \\fBbuy\\fR NAME [QTY] | \\fBorder\\fR N
\\fBstorectl kill\\fR TARGET | \\fBrestart\\fR TARGET | \\fBlogs\\fR SERVICE [-f]
\\fBstorectl top\\fR | \\fBclient\\fR | \\fBchaos\\fR | \\fBbench\\fR | \\fBverify-logs\\fR
\\fBstorectl serve\\fR catalog|frontend|order --cluster FILE
\\fBstorectl down\\fR
\\fBstorectl\\fR COMMAND --help
.fi
";

/// Text for roff: a backslash and a line that starts with a dot or a quote are escaped.
fn roff_text(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\e");
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The command's `after_help` ("Examples: …", and any note after them) as EXAMPLES, as written.
fn examples_section(after_help: &str) -> Vec<u8> {
    let text = after_help
        .trim_start_matches("Examples:")
        .trim_start_matches("Example:")
        .trim_matches('\n');
    format!(".SH EXAMPLES\n.nf\n{}\n.fi\n", roff_text(text)).into_bytes()
}

/// EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO, the same on every page.
fn common_sections(name: &PageName, page: &clap::Command) -> String {
    let mut see_also: Vec<String> = name.parent.iter().map(|p| format!("{p}(1)")).collect();
    see_also.extend(
        page.get_subcommands()
            .map(|sub| format!("{}-{}(1)", name.file, sub.get_name())),
    );
    let mut text = String::new();
    text.push_str(
        ".SH \"EXIT STATUS\"\n\
.TP\n0\nSuccess (for status: every service answers and a replica leads).\n\
.TP\n1\nThe operation failed or a check found a problem: a mismatch, an error, replicas that \
differ, a service that does not answer. One line on stderr says what and what to do.\n\
.TP\n2\nA bad command line, cluster file or secret.\n\
.TP\n130\nInterrupted (Ctrl-C); clusters the command started for itself are stopped.\n",
    );
    text.push_str(
        ".SH ENVIRONMENT\n\
.TP\nSTORECTL_STATE_DIR\nThe state directory, when --state-dir is not given (default ./.storectl).\n\
.TP\nSTORECTL_CLUSTER_SECRET\nThe cluster's shared secret (at least 16 characters), which \
services require on their internal endpoints and `serve`, `verify-logs --cluster` and \
`status --cluster` present. `up` makes one and passes it to the services it starts.\n\
.TP\nRUST_LOG\nWhat the services log, e.g. info (the default), debug (every cache hit, miss \
and invalidation), or openraft=debug.\n",
    );
    text.push_str(
        ".SH FILES\n\
.TP\n\\fISTATE_DIR\\fR/cluster.toml\nThe cluster file `up` writes: every service's address.\n\
.TP\n\\fISTATE_DIR\\fR/cluster.json\nWhat each service was started with, for restart.\n\
.TP\n\\fISTATE_DIR\\fR/cluster-secret\nThe cluster's secret (mode 600).\n\
.TP\n\\fISTATE_DIR\\fR/logs/\\fISERVICE\\fR.log, \\fISTATE_DIR\\fR/\\fISERVICE\\fR.pid\nEach service's log and pid.\n\
.TP\ncatalog-raft-\\fIN\\fR.log, catalog-snapshot-\\fIN\\fR.json, catalog-\\fIN\\fR.csv\nCatalog replica N's log, snapshot and \
stock (name, price, quantity); a catalog.csv beside them is the stock a new catalog starts from.\n\
.TP\nraft-\\fIN\\fR.log, snapshot-\\fIN\\fR.json, orders-\\fIN\\fR.csv\nReplica N's log, \
snapshot and applied orders.\n",
    );
    if !see_also.is_empty() {
        text.push_str(&format!(".SH \"SEE ALSO\"\n{}\n", see_also.join(", ")));
    }
    text
}

fn completions(out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = Cli::command();
        let path = clap_complete::generate_to(shell, &mut command, "storectl", out)
            .with_context(|| format!("cannot write {shell} completions into {}", out.display()))?;
        if shell == Shell::Fish {
            add_fish_positionals(&command, &path)?;
        }
        written.push(path);
    }
    Ok(written)
}

/// clap_complete's fish script completes flags' values but not a positional's: add the
/// targets of `kill`, `restart` and `logs` as bash and zsh have them.
fn add_fish_positionals(command: &clap::Command, path: &Path) -> Result<()> {
    let mut extra = String::from(
        "\n# Positional values (services and targets), which the generator leaves out.\n",
    );
    for sub in command.get_subcommands() {
        for arg in sub.get_positionals() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect();
            if values.is_empty() {
                continue;
            }
            extra.push_str(&format!(
                "complete -c storectl -n \"__fish_storectl_using_subcommand {}\" -f -a \"{}\"\n",
                sub.get_name(),
                values.join(" ")
            ));
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, extra.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
