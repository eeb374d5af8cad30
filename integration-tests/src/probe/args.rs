//! Positional argument parsing for probes.

use std::fmt;

#[derive(Debug, PartialEq, Eq)]
pub enum UsageError {
    Missing(&'static str),
    Invalid { what: &'static str, value: String },
    Unexpected(String),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(what) => write!(f, "missing {what}"),
            Self::Invalid { what, value } => write!(f, "invalid {what}: {value:?}"),
            Self::Unexpected(value) => write!(f, "unexpected argument {value:?}"),
        }
    }
}

pub struct Args<'a> {
    rest: &'a [String],
}

impl<'a> Args<'a> {
    pub fn new(rest: &'a [String]) -> Self {
        Self { rest }
    }

    pub fn optional(&mut self) -> Option<&'a str> {
        let (first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first.as_str())
    }

    pub fn required(&mut self, what: &'static str) -> Result<&'a str, UsageError> {
        self.optional().ok_or(UsageError::Missing(what))
    }

    pub fn required_parsed<T: std::str::FromStr>(&mut self, what: &'static str) -> Result<T, UsageError> {
        let value = self.required(what)?;
        parse(what, value)
    }

    pub fn optional_parsed<T: std::str::FromStr>(&mut self, what: &'static str) -> Result<Option<T>, UsageError> {
        self.optional().map(|value| parse(what, value)).transpose()
    }

    /// Seconds as a non-negative finite number of at most one day.
    pub fn seconds(&mut self) -> Result<f64, UsageError> {
        let value = self.required("SECONDS")?;
        match value.parse::<f64>() {
            Ok(secs) if secs.is_finite() && (0.0..=86_400.0).contains(&secs) => Ok(secs),
            _ => Err(UsageError::Invalid { what: "SECONDS", value: value.to_owned() }),
        }
    }

    /// Fails if arguments are left over.
    pub fn finish(&self) -> Result<(), UsageError> {
        match self.rest.first() {
            Some(extra) => Err(UsageError::Unexpected(extra.clone())),
            None => Ok(()),
        }
    }
}

fn parse<T: std::str::FromStr>(what: &'static str, value: &str) -> Result<T, UsageError> {
    value.parse().map_err(|_| UsageError::Invalid { what, value: value.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn positional_parsing() {
        let argv = owned(&["12", "x", "1.5"]);
        let mut args = Args::new(&argv);
        assert_eq!(args.required_parsed::<i32>("N"), Ok(12));
        assert!(matches!(args.required_parsed::<i32>("M"), Err(UsageError::Invalid { .. })));
        assert_eq!(args.seconds(), Ok(1.5));
        assert_eq!(args.optional_parsed::<i32>("K"), Ok(None));
        assert_eq!(args.required("P"), Err(UsageError::Missing("P")));
        assert_eq!(args.finish(), Ok(()));
    }

    #[test]
    fn seconds_are_bounded_and_leftovers_rejected() {
        for bad in ["-1", "NaN", "inf", "86401", "x"] {
            let argv = owned(&[bad]);
            assert!(Args::new(&argv).seconds().is_err(), "{bad}");
        }
        let argv = owned(&["a"]);
        assert_eq!(Args::new(&argv).finish(), Err(UsageError::Unexpected("a".into())));
    }
}
