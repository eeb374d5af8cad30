//! The one JSON line every probe prints.

use serde_json::{Map, Value};
use std::io::{self, Write};

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    pub errno: Option<i32>,
    pub extra: Map<String, Value>,
    /// What the probe does once its line is out.
    pub then: AfterPrint,
}

/// Work a probe does after printing its line: the line must be out first because the
/// probe may die or block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterPrint {
    #[default]
    ExitZero,
    /// Reap every child, then exit 0.
    ReapChildrenThenExitZero,
    /// Exit with this status.
    Exit(i32),
    /// Die of this signal.
    Die(i32),
}

impl Outcome {
    pub fn new(ok: bool, errno: Option<i32>) -> Self {
        Self { ok, errno, extra: Map::new(), then: AfterPrint::ExitZero }
    }

    pub fn success() -> Self {
        Self::new(true, None)
    }

    pub fn failure(errno: i32) -> Self {
        Self::new(false, Some(errno))
    }

    pub fn then(mut self, then: AfterPrint) -> Self {
        self.then = then;
        self
    }

    /// From the return value of a libc call (negative = failure, errno in `errno`).
    pub fn from_rc(rc: i64) -> Self {
        if rc < 0 {
            Self::failure(last_errno())
        } else {
            Self::success()
        }
    }

    pub fn from_io(result: &io::Result<impl Sized>) -> Self {
        match result {
            Ok(_) => Self::success(),
            Err(err) => Self::failure(err.raw_os_error().unwrap_or(0)),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn to_json(&self, probe: &str) -> Value {
        let mut line = self.extra.clone();
        line.insert("probe".into(), probe.into());
        line.insert("ok".into(), self.ok.into());
        line.insert("errno".into(), self.errno.map_or(Value::Null, Value::from));
        if let Some(errno) = self.errno {
            line.entry("error").or_insert_with(|| io::Error::from_raw_os_error(errno).to_string().into());
        }
        Value::Object(line)
    }

    /// Prints the line and flushes, so it is out even if the process dies right after.
    pub fn print(&self, probe: &str) {
        let mut stdout = io::stdout().lock();
        // Nothing useful can be done if stdout is gone; the exit status still tells.
        let _ = writeln!(stdout, "{}", self.to_json(probe));
        let _ = stdout.flush();
    }
}

pub fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn line_has_the_fixed_keys() {
        let line = Outcome::failure(libc::EPERM).with("step", "x").to_json("p");
        assert_eq!(line["probe"], "p");
        assert_eq!(line["ok"], false);
        assert_eq!(line["errno"], libc::EPERM);
        assert_eq!(line["step"], "x");
        assert!(line["error"].as_str().is_some_and(|e| e.contains("not permitted")));
        assert_eq!(Outcome::success().to_json("q"), json!({"probe": "q", "ok": true, "errno": null}));
    }

    #[test]
    fn rc_mapping() {
        assert!(Outcome::from_rc(0).ok);
        // SAFETY: close(-1) only sets errno.
        let rc = unsafe { libc::close(-1) };
        let outcome = Outcome::from_rc(i64::from(rc));
        assert_eq!(outcome.errno, Some(libc::EBADF));
    }
}
