//! A plugin's event limits: the largest event frame and the publish rate, as the manifest
//! asks for them (`permissions.events.max_event_bytes`, `permissions.events.rate`), with
//! defaults and ceilings from the policy (`sandbox.defaults.event_rate`,
//! `sandbox.ceilings.max_event_bytes`, `sandbox.ceilings.max_event_rate`).
//!
//! One table of fields, shared by the manifest checks, the policy checks and the derivation,
//! so the pointers and bounds cannot drift apart.

use crate::limits::{hard, Ceiling, LimitRule};
use crate::security_policy::SecurityPolicy;

/// The manifest's largest event frame.
pub const MAX_EVENT_BYTES_POINTER: &str = "/permissions/events/max_event_bytes";
/// The manifest's publish rate (an object of [`RateField`]s).
pub const RATE_POINTER: &str = "/permissions/events/rate";
/// The policy ceiling of the largest event frame, also its default.
pub const MAX_EVENT_BYTES_CEILING_POINTER: &str = "/sandbox/ceilings/max_event_bytes";
/// The policy's default publish rate.
pub const RATE_DEFAULTS_POINTER: &str = "/sandbox/defaults/event_rate";
/// The policy's ceiling of the publish rate.
pub const RATE_CEILINGS_POINTER: &str = "/sandbox/ceilings/max_event_rate";

/// Smallest event frame anyone may set: room for the hello (a 32-character name and its
/// instance id) and a small event with its sender.
pub const MIN_EVENT_BYTES: u64 = 1024;

/// One field of an event rate (the same three in manifest, policy defaults and ceilings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateField {
    /// Sustained publishes a second.
    EventsPerSecond,
    /// Publishes admitted at once above the sustained rate.
    Burst,
    /// Channel bytes the broker reads from the plugin a second.
    BytesPerSecond,
}

impl RateField {
    pub const ALL: [RateField; 3] = [RateField::EventsPerSecond, RateField::Burst, RateField::BytesPerSecond];

    /// The field's name in every document.
    pub fn name(self) -> &'static str {
        match self {
            RateField::EventsPerSecond => "events_per_second",
            RateField::Burst => "burst",
            RateField::BytesPerSecond => "bytes_per_second",
        }
    }

    /// Smallest accepted value: never 0, which could read as "unlimited".
    pub fn min(self) -> u64 {
        match self {
            RateField::EventsPerSecond | RateField::Burst => 1,
            RateField::BytesPerSecond => 1024,
        }
    }

    /// Built-in maximum (the schemas carry the same numbers).
    pub fn hard_max(self) -> u64 {
        match self {
            RateField::EventsPerSecond => hard::EVENTS_PER_SECOND,
            RateField::Burst => hard::EVENT_BURST,
            RateField::BytesPerSecond => hard::EVENT_BYTES_PER_SECOND,
        }
    }

    pub fn unit_name(self) -> &'static str {
        match self {
            RateField::EventsPerSecond | RateField::Burst => "events",
            RateField::BytesPerSecond => "bytes",
        }
    }

    pub fn manifest_pointer(self) -> String {
        format!("{RATE_POINTER}/{}", self.name())
    }

    pub fn default_pointer(self) -> String {
        format!("{RATE_DEFAULTS_POINTER}/{}", self.name())
    }

    pub fn ceiling_pointer(self) -> String {
        format!("{RATE_CEILINGS_POINTER}/{}", self.name())
    }

    /// Bounds of the value with built-in limits only (policy ceilings are checked this way).
    pub fn builtin_rule(self) -> LimitRule {
        LimitRule {
            min: self.min(),
            unit: 1,
            unit_name: self.unit_name(),
            ceiling: Some(Ceiling::builtin(self.hard_max())),
        }
    }

    /// Bounds of a manifest's (or the policy default's) value under `ceiling`.
    pub fn rule_under(self, ceiling: Ceiling) -> LimitRule {
        LimitRule { min: self.min(), unit: 1, unit_name: self.unit_name(), ceiling: Some(ceiling) }
    }

    /// Bounds of a manifest's value under `policy`.
    pub fn manifest_rule(self, policy: &SecurityPolicy) -> LimitRule {
        let ceiling = policy.sandbox.ceilings.max_event_rate.get(self);
        self.rule_under(Ceiling::policy(ceiling, &self.ceiling_pointer()))
    }
}

/// Bounds of the largest event frame under a ceiling (the policy's, or the built-in maximum).
pub fn max_event_bytes_rule(ceiling: Ceiling) -> LimitRule {
    LimitRule { min: MIN_EVENT_BYTES, unit: 1, unit_name: "bytes", ceiling: Some(ceiling) }
}

/// Bounds of a manifest's largest event frame under `policy`.
pub fn manifest_max_event_bytes_rule(policy: &SecurityPolicy) -> LimitRule {
    let ceiling = u64::from(policy.sandbox.ceilings.max_event_bytes);
    max_event_bytes_rule(Ceiling::policy(ceiling, MAX_EVENT_BYTES_CEILING_POINTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::check_limit;
    use serde_json::json;

    #[test]
    fn pointers_name_the_documented_fields() {
        let pointers: Vec<String> = RateField::ALL.iter().map(|f| f.manifest_pointer()).collect();
        assert_eq!(
            pointers,
            [
                "/permissions/events/rate/events_per_second",
                "/permissions/events/rate/burst",
                "/permissions/events/rate/bytes_per_second"
            ]
        );
        assert_eq!(RateField::Burst.default_pointer(), "/sandbox/defaults/event_rate/burst");
        assert_eq!(RateField::BytesPerSecond.ceiling_pointer(), "/sandbox/ceilings/max_event_rate/bytes_per_second");
    }

    #[test]
    fn builtin_bounds() {
        let rule = RateField::BytesPerSecond.builtin_rule();
        assert!(check_limit(&json!(1023), &rule).unwrap_err().contains("at least 1024"));
        assert_eq!(check_limit(&json!(1_073_741_824u64), &rule), Ok(1_073_741_824));
        assert!(check_limit(&json!(1_073_741_825u64), &rule).unwrap_err().contains("built-in maximum"));
        let rule = RateField::EventsPerSecond.builtin_rule();
        assert!(check_limit(&json!(0), &rule).unwrap_err().contains("never means unlimited"));
        assert!(check_limit(&json!(1_000_001), &rule).unwrap_err().contains("built-in maximum 1000000"));
        let rule = max_event_bytes_rule(Ceiling::builtin(hard::EVENT_BYTES));
        assert!(check_limit(&json!(1023), &rule).unwrap_err().contains("at least 1024"));
    }

    #[test]
    fn manifest_rules_use_the_policy_ceilings() {
        let policy = SecurityPolicy::default();
        let err = check_limit(&json!(10_001), &RateField::EventsPerSecond.manifest_rule(&policy)).unwrap_err();
        assert!(err.contains("/sandbox/ceilings/max_event_rate/events_per_second (10000)"), "{err}");
        let err = check_limit(&json!(65_537), &manifest_max_event_bytes_rule(&policy)).unwrap_err();
        assert!(err.contains("/sandbox/ceilings/max_event_bytes (65536)"), "{err}");
    }
}
