//! The manifest's topic grants as the broker enforces them.

use std::collections::BTreeSet;
use wf_policy::spec::EventGrants;
use wf_policy::topic::{grant_is_valid, topic_is_valid, topic_matches};

/// Why a publish or delivery was refused; names the manifest field that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub rule: String,
}

/// Topic prefix reserved for UI rendering; writable only with `permissions.system.ui.render`.
const UI_PREFIX: &str = "ui.";

/// The manifest fields that decide refusals (named even when the manifest omits them).
const WRITE_RULE: &str = "/permissions/events/write";
const READ_RULE: &str = "/permissions/events/read";
const UI_RULE: &str = "/permissions/system/ui/render";

/// The topics `permissions.system.ui.render` grants by itself: `ui.render` and one
/// level below it (`ui.render.<widget>`). Any other `ui.*` topic needs a literal
/// (wildcard-free) write grant naming it *and* the ui.render grant.
fn ui_render_covers(topic: &str) -> bool {
    topic == "ui.render" || topic.strip_prefix("ui.render.").is_some_and(|rest| !rest.contains('.'))
}

/// May the plugin publish on `topic`?
pub fn check_publish(grants: &EventGrants, topic: &str) -> Result<(), Refusal> {
    if !topic_is_valid(topic) {
        return Err(Refusal { reason: "invalid topic name", rule: "topic charset".to_owned() });
    }
    if topic.starts_with(UI_PREFIX) {
        let literal = grants.write.value.iter().any(|grant| grant == topic);
        if grants.ui_render.value && (ui_render_covers(topic) || literal) {
            return Ok(());
        }
        return Err(Refusal { reason: "ui topic not covered by the ui.render grant", rule: UI_RULE.to_owned() });
    }
    if grants.write.value.iter().any(|grant| topic_matches(grant, topic)) {
        return Ok(());
    }
    Err(Refusal { reason: "topic not granted for writing", rule: WRITE_RULE.to_owned() })
}

/// May the plugin receive `topic`?
pub fn check_delivery(grants: &EventGrants, topic: &str) -> Result<(), Refusal> {
    if !topic_is_valid(topic) {
        return Err(Refusal { reason: "invalid topic name", rule: "topic charset".to_owned() });
    }
    if grants.read.value.iter().any(|grant| topic_matches(grant, topic)) {
        return Ok(());
    }
    Err(Refusal { reason: "topic not granted for reading", rule: READ_RULE.to_owned() })
}

/// Most patterns one plugin may hold in its subscription set (its read grant has at most 256).
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// May the plugin subscribe to `pattern`? A topic must be matched by a read grant; a
/// `prefix.*` pattern only when the read grant names that same pattern, since no narrower
/// grant covers every topic it matches.
pub fn check_subscription(grants: &EventGrants, pattern: &str) -> Result<(), Refusal> {
    if !grant_is_valid(pattern) {
        return Err(Refusal { reason: "invalid topic pattern", rule: "topic charset".to_owned() });
    }
    let covered = if pattern.ends_with(".*") {
        grants.read.value.iter().any(|grant| grant == pattern)
    } else {
        grants.read.value.iter().any(|grant| topic_matches(grant, pattern))
    };
    if covered {
        return Ok(());
    }
    Err(Refusal { reason: "topic not granted for reading", rule: READ_RULE.to_owned() })
}

/// What a plugin has subscribed to: its whole read grant until it says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriptions {
    patterns: BTreeSet<String>,
}

/// One pattern a subscribe request could not add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedPattern {
    pub pattern: String,
    pub refusal: Refusal,
}

impl Subscriptions {
    pub fn from_grants(grants: &EventGrants) -> Self {
        Self { patterns: grants.read.value.iter().filter(|g| grant_is_valid(g)).cloned().collect() }
    }

    /// Adds every pattern the grants cover; returns the refused ones, in request order.
    pub fn subscribe(&mut self, grants: &EventGrants, patterns: &[String]) -> Vec<RefusedPattern> {
        let mut refused = Vec::new();
        for pattern in patterns {
            let checked = check_subscription(grants, pattern).and_then(|()| {
                if self.patterns.len() >= MAX_SUBSCRIPTIONS && !self.patterns.contains(pattern) {
                    return Err(Refusal {
                        reason: "too many subscriptions",
                        rule: format!("builtin: at most {MAX_SUBSCRIPTIONS} patterns"),
                    });
                }
                Ok(())
            });
            match checked {
                Ok(()) => {
                    self.patterns.insert(pattern.clone());
                }
                Err(refusal) => refused.push(RefusedPattern { pattern: pattern.clone(), refusal }),
            }
        }
        refused
    }

    pub fn unsubscribe(&mut self, patterns: &[String]) {
        for pattern in patterns {
            self.patterns.remove(pattern);
        }
    }

    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(String::as_str)
    }

    pub fn contains(&self, pattern: &str) -> bool {
        self.patterns.contains(pattern)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.patterns.iter().cloned().collect()
    }

    /// Does some pattern match `topic`?
    pub fn matches(&self, topic: &str) -> bool {
        self.patterns.iter().any(|pattern| topic_matches(pattern, topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_policy::spec::{Origin, Sourced};

    fn grants(read: &[&str], write: &[&str], ui: bool) -> EventGrants {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        EventGrants {
            read: Sourced::new(list(read), Origin::manifest("/permissions/events/read")),
            write: Sourced::new(list(write), Origin::manifest("/permissions/events/write")),
            ui_render: Sourced::new(ui, Origin::manifest("/permissions/system/ui/render")),
            max_event_bytes: Sourced::new(65536, Origin::policy("/sandbox/ceilings/max_event_bytes")),
            rate: wf_policy::spec::EventRate::for_tests(),
        }
    }

    #[test]
    fn write_grant_is_literal() {
        let g = grants(&[], &["energy.update"], false);
        assert!(check_publish(&g, "energy.update").is_ok());
        assert!(check_publish(&g, "energy.updates").is_err());
        assert!(check_publish(&g, "Energy.update").is_err());
        assert!(check_publish(&g, "energy..update").is_err());
    }

    #[test]
    fn ui_topics_need_the_ui_render_grant() {
        assert!(check_publish(&grants(&[], &[], true), "ui.render").is_ok());
        assert!(check_publish(&grants(&[], &[], true), "ui.render.energy").is_ok());
        let refused = check_publish(&grants(&[], &[], false), "ui.render").unwrap_err();
        assert_eq!(refused.rule, "/permissions/system/ui/render");
        // A write grant alone is not enough for a ui topic.
        assert!(check_publish(&grants(&[], &["ui.render"], false), "ui.render").is_err());
    }

    #[test]
    fn the_ui_render_grant_is_bounded() {
        let g = grants(&[], &[], true);
        assert!(check_publish(&g, "ui.admin.exec.command").is_err());
        assert!(check_publish(&g, "ui.render.a.b").is_err());
        assert!(check_publish(&g, "ui.admin").is_err());
        // Other ui topics need a literal write grant on top of ui.render; a wildcard is not one.
        assert!(check_publish(&grants(&[], &["ui.toast"], true), "ui.toast").is_ok());
        assert!(check_publish(&grants(&[], &["ui.*"], true), "ui.admin").is_err());
    }

    #[test]
    fn a_subscription_needs_a_read_grant_and_a_wildcard_needs_the_same_wildcard() {
        let g = grants(&["energy.update", "sensor.*"], &[], false);
        assert!(check_subscription(&g, "energy.update").is_ok());
        assert!(check_subscription(&g, "sensor.temp").is_ok());
        assert!(check_subscription(&g, "sensor.*").is_ok());
        assert_eq!(check_subscription(&g, "energy.*").unwrap_err().rule, READ_RULE);
        assert!(check_subscription(&g, "secret.keys").is_err());
        assert!(check_subscription(&g, "*").is_err());
        assert!(check_subscription(&g, "Energy.update").is_err());
    }

    #[test]
    fn subscriptions_start_as_the_read_grant_and_change_only_within_it() {
        let g = grants(&["energy.update", "sensor.*"], &[], false);
        let mut subs = Subscriptions::from_grants(&g);
        assert!(subs.matches("sensor.temp") && subs.matches("energy.update"));
        subs.unsubscribe(&["sensor.*".to_owned()]);
        assert!(!subs.matches("sensor.temp"));
        let refused = subs.subscribe(&g, &["sensor.temp".to_owned(), "secret.keys".to_owned()]);
        assert_eq!(refused.iter().map(|r| r.pattern.as_str()).collect::<Vec<_>>(), ["secret.keys"]);
        assert!(subs.matches("sensor.temp") && !subs.matches("sensor.humidity") && !subs.matches("secret.keys"));
        assert_eq!(subs.to_vec(), ["energy.update", "sensor.temp"]);
    }

    #[test]
    fn read_grant_controls_delivery() {
        let g = grants(&["energy.update"], &[], true);
        assert!(check_delivery(&g, "energy.update").is_ok());
        let refused = check_delivery(&g, "ui.render").unwrap_err();
        assert_eq!(refused.rule, "/permissions/events/read");
    }
}
