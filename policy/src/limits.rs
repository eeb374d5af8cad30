//! Numeric limits: whole numbers only, never 0 or negative where 0 would read as
//! "unlimited", no overflow when scaled to bytes or microseconds, and never above a
//! ceiling (the policy's, or the built-in hard maximum).

use serde_json::Value;

pub const MIB: u64 = 1024 * 1024;
pub const KIB: u64 = 1024;

/// Built-in hard maxima for policy values (the schema carries the same numbers).
pub mod hard {
    pub const MEMORY_MB: u64 = 1024 * 1024;
    pub const CPU_PERCENT: u64 = 1024 * 100;
    /// The kernel's PID_MAX_LIMIT on 64-bit.
    pub const PIDS: u64 = 4 * 1024 * 1024;
    pub const WALL_CLOCK_SECONDS: u64 = 7 * 24 * 3600;
    pub const TMP_MB: u64 = 1024 * 1024;
    /// The protocol crate's frame-size ceiling.
    pub const EVENT_BYTES: u64 = 16 * 1024 * 1024;
    /// Sustained publishes a second of one plugin.
    pub const EVENTS_PER_SECOND: u64 = 1_000_000;
    /// Publishes admitted at once above the sustained rate.
    pub const EVENT_BURST: u64 = 1_000_000;
    /// Channel bytes a second the broker reads from one plugin (1 GiB).
    pub const EVENT_BYTES_PER_SECOND: u64 = 1024 * 1024 * 1024;
    pub const OUTPUT_LIMIT_KB: u64 = 1024 * 1024;
    pub const STOP_GRACE_SECONDS: u64 = 600;
}

/// An upper bound and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceiling {
    pub value: u64,
    /// JSON pointer into the policy, or a description of a built-in maximum.
    pub pointer: String,
    pub from_policy: bool,
}

impl Ceiling {
    pub fn policy(value: u64, pointer: &str) -> Self {
        Self { value, pointer: pointer.to_owned(), from_policy: true }
    }
    pub fn builtin(value: u64) -> Self {
        Self { value, pointer: String::new(), from_policy: false }
    }
}

/// How a limit is checked.
#[derive(Debug, Clone)]
pub struct LimitRule {
    /// Smallest accepted value (1 for every limit where 0 could mean "unlimited").
    pub min: u64,
    /// Bytes (or other units) per step; the product must fit in a u64.
    pub unit: u64,
    pub unit_name: &'static str,
    pub ceiling: Option<Ceiling>,
}

impl LimitRule {
    /// A limit of at least 1, scaled by `unit`.
    pub fn positive(unit: u64, unit_name: &'static str, ceiling: Ceiling) -> Self {
        Self { min: 1, unit, unit_name, ceiling: Some(ceiling) }
    }
}

/// Returns the value as a u64 if it satisfies `rule`, else a plain reason.
pub fn check_limit(value: &Value, rule: &LimitRule) -> Result<u64, String> {
    let n = whole_number(value, rule.min)?;
    if n < rule.min {
        return Err(below_min(rule.min, &n.to_string()));
    }
    if n.checked_mul(rule.unit).is_none() {
        return Err(format!("{n} overflows when converted to {} (× {})", rule.unit_name, rule.unit));
    }
    if let Some(ceiling) = &rule.ceiling {
        if n > ceiling.value {
            return Err(if ceiling.from_policy {
                format!("{n} exceeds the policy ceiling {} ({})", ceiling.pointer, ceiling.value)
            } else {
                format!("{n} exceeds the built-in maximum {}", ceiling.value)
            });
        }
    }
    Ok(n)
}

fn whole_number(value: &Value, min: u64) -> Result<u64, String> {
    let Value::Number(number) = value else {
        return Err("must be a whole number".to_owned());
    };
    if let Some(n) = number.as_u64() {
        return Ok(n);
    }
    if let Some(n) = number.as_i64() {
        return Err(below_min(min, &n.to_string()));
    }
    let f = number.as_f64().unwrap_or(f64::NAN);
    if !f.is_finite() || f.fract() != 0.0 {
        return Err("must be a whole number".to_owned());
    }
    if f < 0.0 {
        return Err(below_min(min, &number.to_string()));
    }
    if f < u64::MAX as f64 {
        return Err(format!("{number} must be written as a plain integer, without a fraction or exponent"));
    }
    Err(format!("{number} is too large (it does not fit in 64 bits)"))
}

fn below_min(min: u64, got: &str) -> String {
    if min == 0 {
        format!("must not be negative (got {got})")
    } else {
        format!("must be at least {min} (got {got}); 0 or a negative number never means unlimited")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn memory_rule() -> LimitRule {
        LimitRule::positive(MIB, "bytes", Ceiling::policy(1024, "/sandbox/ceilings/max_memory_mb"))
    }

    #[test]
    fn accepts_values_within_bounds() {
        assert_eq!(check_limit(&json!(64), &memory_rule()), Ok(64));
        assert_eq!(check_limit(&json!(1024), &memory_rule()), Ok(1024));
        assert!(check_limit(&json!(64.0), &memory_rule()).unwrap_err().contains("plain integer"));
    }

    #[test]
    fn refuses_zero_and_negatives() {
        assert!(check_limit(&json!(0), &memory_rule()).unwrap_err().contains("at least 1"));
        assert!(check_limit(&json!(-5), &memory_rule()).unwrap_err().contains("at least 1"));
        assert!(check_limit(&json!(-5.0), &memory_rule()).unwrap_err().contains("at least 1"));
    }

    #[test]
    fn refuses_fractions_and_non_numbers() {
        assert!(check_limit(&json!(1.5), &memory_rule()).unwrap_err().contains("whole number"));
        assert!(check_limit(&json!("64"), &memory_rule()).unwrap_err().contains("whole number"));
        assert!(check_limit(&json!(null), &memory_rule()).unwrap_err().contains("whole number"));
    }

    #[test]
    fn refuses_overflow_before_the_ceiling() {
        let rule = LimitRule::positive(MIB, "bytes", Ceiling::builtin(u64::MAX));
        let err = check_limit(&json!(u64::MAX / MIB + 1), &rule).unwrap_err();
        assert!(err.contains("overflows"), "{err}");
        assert_eq!(check_limit(&json!(u64::MAX / MIB), &rule), Ok(u64::MAX / MIB));
        let err = check_limit(&json!(1e30), &rule).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn names_the_policy_ceiling_pointer() {
        let err = check_limit(&json!(2048), &memory_rule()).unwrap_err();
        assert!(err.contains("/sandbox/ceilings/max_memory_mb (1024)"), "{err}");
        let rule = LimitRule::positive(1, "seconds", Ceiling::builtin(10));
        assert!(check_limit(&json!(11), &rule).unwrap_err().contains("built-in maximum 10"));
    }

    #[test]
    fn zero_allowed_when_min_is_zero() {
        let rule = LimitRule { min: 0, unit: 1, unit_name: "seconds", ceiling: None };
        assert_eq!(check_limit(&json!(0), &rule), Ok(0));
        assert!(check_limit(&json!(-1), &rule).unwrap_err().contains("must not be negative"));
    }
}
