//! Comparing the replicas' order files. Replicas that have applied the same committed orders
//! hold byte-identical files; one that lags holds a prefix of the others', which is consistent,
//! and is named. Anything else is a difference.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// FNV-1a, 64 bits: a digest to tell copies apart, not to resist an adversary.
pub fn digest(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// What a comparison found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Comparison {
    pub files: Vec<PathBuf>,
    /// Orders in the longest file (rows after the header).
    pub orders: u64,
    /// Files that hold a prefix of the longest one, with how many orders they hold.
    pub lagging: Vec<Lag>,
    /// The first difference, if any.
    pub difference: Option<Difference>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Lag {
    pub file: PathBuf,
    pub orders: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Difference {
    pub line: u64,
    pub file: PathBuf,
    pub expected: Option<String>,
    pub other: PathBuf,
    pub found: Option<String>,
}

impl Comparison {
    /// Every file holds the same orders.
    pub fn identical(&self) -> bool {
        self.difference.is_none() && self.lagging.is_empty()
    }

    /// No file contradicts another: they are identical, or some hold a prefix of the rest.
    pub fn consistent(&self) -> bool {
        self.difference.is_none()
    }

    /// The longest file: the one with every order any replica applied.
    pub fn longest(&self) -> Option<&Path> {
        let lagging: Vec<&PathBuf> = self.lagging.iter().map(|l| &l.file).collect();
        self.files
            .iter()
            .find(|f| !lagging.contains(f))
            .map(PathBuf::as_path)
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(difference) = &self.difference {
            return write!(f, "DIFFERENT: {difference}");
        }
        if self.lagging.is_empty() {
            return write!(
                f,
                "OK: {} order files identical, {} orders each",
                self.files.len(),
                self.orders
            );
        }
        let lags: Vec<String> = self
            .lagging
            .iter()
            .map(|l| format!("{} holds {} of {}", name(&l.file), l.orders, self.orders))
            .collect();
        write!(
            f,
            "OK: {} order files agree; {} orders in the longest; behind: {} (it catches up while \
             a majority runs)",
            self.files.len(),
            self.orders,
            lags.join(", ")
        )
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |line: &Option<String>| match line {
            Some(text) => format!("'{text}'"),
            None => "end of file".to_string(),
        };
        write!(
            f,
            "{} and {} differ at line {}: {} has {}, {} has {}",
            name(&self.file),
            name(&self.other),
            self.line,
            name(&self.file),
            show(&self.expected),
            name(&self.other),
            show(&self.found)
        )
    }
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Compares every file with the longest, line by line: a shorter file that matches it as far
/// as it goes lags; the first line where two files disagree is a difference.
pub fn compare(paths: &[PathBuf]) -> Result<Comparison> {
    let mut contents = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        contents.push(text);
    }
    compare_texts(paths, &contents)
}

/// [`compare`] on contents already read: `contents[i]` is the file that `paths[i]` names (for a
/// replica asked over the network, its name).
pub fn compare_texts(paths: &[PathBuf], contents: &[String]) -> Result<Comparison> {
    let Some((longest, reference)) = contents.iter().enumerate().max_by_key(|(i, text)| {
        // The most lines; among equals, the first file.
        (text.lines().count(), std::cmp::Reverse(*i))
    }) else {
        return Err(Error::Usage("no order files to compare".into()));
    };
    let orders_in = |text: &str| text.lines().count().saturating_sub(1) as u64;
    let orders = orders_in(reference);
    let mut lagging = Vec::new();
    let mut difference = None;
    for (i, other) in contents.iter().enumerate() {
        if i == longest || other == reference {
            continue;
        }
        if reference.starts_with(other.as_str()) && other.ends_with('\n') {
            lagging.push(Lag {
                file: paths[i].clone(),
                orders: orders_in(other),
            });
            continue;
        }
        let mut left = reference.split_inclusive('\n');
        let mut right = other.split_inclusive('\n');
        let mut line = 0;
        loop {
            line += 1;
            let (a, b) = (left.next(), right.next());
            if a != b {
                difference = Some(Difference {
                    line,
                    file: paths[longest].clone(),
                    expected: a.map(|s| s.trim_end_matches('\n').to_string()),
                    other: paths[i].clone(),
                    found: b.map(|s| s.trim_end_matches('\n').to_string()),
                });
                break;
            }
        }
        break;
    }
    Ok(Comparison {
        files: paths.to_vec(),
        orders,
        lagging,
        difference,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn digests_tell_copies_apart() {
        assert_eq!(digest(b""), "cbf29ce484222325");
        assert_eq!(digest(b"a"), digest(b"a"));
        assert_ne!(digest(b"ab"), digest(b"ba"));
    }

    use super::*;

    #[test]
    fn identical_and_differing_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let a = write("orders-1.csv", "h\n0,Tux,1\n1,Fox,2\n");
        let b = write("orders-2.csv", "h\n0,Tux,1\n1,Fox,2\n");
        let c = write("orders-3.csv", "h\n0,Tux,1\n");
        let d = write("orders-4.csv", "h\n0,Tux,1\n1,Elephant,2\n");
        let same = compare(&[a.clone(), b.clone()]).unwrap();
        assert!(same.identical());
        assert_eq!(same.orders, 2);
        assert!(same.to_string().starts_with("OK: 2 order files identical"));

        let behind = compare(&[c.clone(), a.clone(), b.clone()]).unwrap();
        assert!(behind.consistent() && !behind.identical());
        assert_eq!(behind.orders, 2);
        assert_eq!(
            behind.lagging,
            vec![Lag {
                file: c.clone(),
                orders: 1
            }]
        );
        assert_eq!(behind.longest(), Some(a.as_path()));
        assert!(
            behind.to_string().contains("orders-3.csv holds 1 of 2"),
            "{behind}"
        );

        let diff = compare(&[a, b, c, d]).unwrap().difference.unwrap();
        assert_eq!(diff.line, 3);
        assert_eq!(diff.found.as_deref(), Some("1,Elephant,2"));
        assert!(
            diff.to_string().contains("orders-4.csv has '1,Elephant,2'"),
            "{diff}"
        );
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = compare(&[PathBuf::from("/nonexistent/orders-1.csv")]).unwrap_err();
        assert!(err.to_string().contains("orders-1.csv"));
    }
}
