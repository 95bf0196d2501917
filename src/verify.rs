//! Comparing the replicas' order files: after any run they must be byte-identical.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// What a comparison found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Comparison {
    pub files: Vec<PathBuf>,
    /// Orders in the first file (rows after the header).
    pub orders: u64,
    /// The first difference, if any.
    pub difference: Option<Difference>,
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
    pub fn identical(&self) -> bool {
        self.difference.is_none()
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

/// Compares every file with the first, line by line, and reports the first difference.
pub fn compare(paths: &[PathBuf]) -> Result<Comparison> {
    let mut contents = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        contents.push(text);
    }
    let Some(reference) = contents.first() else {
        return Err(Error::Usage("no order files to compare".into()));
    };
    let orders = reference.lines().count().saturating_sub(1) as u64;
    let mut difference = None;
    for (i, other) in contents.iter().enumerate().skip(1) {
        if other == reference {
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
                    file: paths[0].clone(),
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
        difference,
    })
}

#[cfg(test)]
mod tests {
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
        let same = compare(&[a.clone(), b.clone()]).unwrap();
        assert!(same.identical());
        assert_eq!(same.orders, 2);
        let diff = compare(&[a, b, c]).unwrap().difference.unwrap();
        assert_eq!(diff.line, 3);
        assert_eq!(diff.found, None);
        assert!(
            diff.to_string().contains("orders-3.csv has end of file"),
            "{diff}"
        );
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = compare(&[PathBuf::from("/nonexistent/orders-1.csv")]).unwrap_err();
        assert!(err.to_string().contains("orders-1.csv"));
    }
}
