//! The exit codes of storectl, in one place.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked and every check passed.
    Success,
    /// An operation failed, or a check found a problem (a mismatch, a difference, an error).
    Failure,
    /// The command line was wrong.
    Usage,
    /// Interrupted by Ctrl-C.
    Interrupted,
}

impl Exit {
    /// A check that found a problem: says why, and what to do, in one line on stderr (stdout
    /// keeps the report, or the JSON a script reads).
    pub fn failed(why: impl std::fmt::Display) -> Exit {
        eprintln!("storectl: {why}");
        Exit::Failure
    }

    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_conventional() {
        assert_eq!(Exit::Success.code(), 0);
        assert_eq!(Exit::Failure.code(), 1);
        assert_eq!(Exit::Usage.code(), 2, "clap's own code for usage errors");
        assert_eq!(Exit::Interrupted.code(), 130, "128 + SIGINT");
    }
}
