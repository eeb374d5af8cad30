//! Command-line options (`wfsandbox run MANIFEST -- ARGS...`; the daemon starts the plugin
//! without arguments, so every option has a default).

pub const USAGE: &str = "usage: energy-sensor [--interval-ms MS] [--count N] [--source NAME]";

/// Longest interval accepted: one hour.
const MAX_INTERVAL_MS: u64 = 3_600_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Time between readings (1 … 3 600 000 ms).
    pub interval_ms: u64,
    /// How many readings to publish before exiting; `None`: until stopped.
    pub count: Option<u64>,
    /// The `source` field of every reading.
    pub source: String,
}

impl Default for Args {
    fn default() -> Self {
        Self { interval_ms: 500, count: None, source: "synthetic-meter".to_owned() }
    }
}

impl Args {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut parsed = Self::default();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            let mut value = || inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{name} needs a value"));
            match name.as_str() {
                "--interval-ms" => {
                    parsed.interval_ms = number(&name, &value()?)?;
                    if !(1..=MAX_INTERVAL_MS).contains(&parsed.interval_ms) {
                        return Err(format!("--interval-ms must be 1 … {MAX_INTERVAL_MS}"));
                    }
                }
                "--count" => parsed.count = Some(number(&name, &value()?)?).filter(|n| *n > 0),
                "--source" => {
                    parsed.source = value()?;
                    if parsed.source.is_empty() || parsed.source.len() > 64 {
                        return Err("--source must be 1 … 64 bytes".to_owned());
                    }
                }
                _ => return Err(format!("unknown argument {name:?}")),
            }
        }
        Ok(parsed)
    }
}

fn number(name: &str, value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("{name} takes a whole number, not {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn defaults_are_every_500_ms_forever() {
        assert_eq!(parse(&[]), Ok(Args::default()));
        assert_eq!(Args::default().interval_ms, 500);
        assert_eq!(Args::default().count, None);
    }

    #[test]
    fn options_take_separate_or_inline_values() {
        let args = parse(&["--interval-ms", "20", "--count=3", "--source", "meter-2"]).expect("valid");
        assert_eq!(args, Args { interval_ms: 20, count: Some(3), source: "meter-2".into() });
    }

    #[test]
    fn count_0_means_forever() {
        assert_eq!(parse(&["--count", "0"]).map(|a| a.count), Ok(None));
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            &["--interval-ms", "0"][..],
            &["--interval-ms", "3600001"],
            &["--interval-ms", "-5"],
            &["--interval-ms", "+5"],
            &["--count", "1.5"],
            &["--count"],
            &["--source", ""],
            &["--verbose"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
