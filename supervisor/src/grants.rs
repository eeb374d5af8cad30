//! The manifest's topic grants as the broker enforces them.
//!
//! [`Grants`] indexes a plugin's grants once per instance ([`TopicSet`]s), so that every check
//! on the event path costs a hash lookup, however many grants the manifest lists.

use crate::topic_set::TopicSet;
use std::collections::BTreeSet;
use wf_policy::spec::EventGrants;
use wf_policy::topic::{grant_is_valid, listed_len, listing_bytes, topic_is_valid};

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

/// A plugin's topic grants, indexed.
#[derive(Debug, Clone)]
pub struct Grants {
    read: TopicSet,
    write: TopicSet,
    ui_render: bool,
    /// The read grant's valid patterns as written: the initial subscription set.
    read_patterns: Vec<String>,
}

impl Grants {
    pub fn new(events: &EventGrants) -> Self {
        Self {
            read: TopicSet::from_patterns(events.read.value.iter().map(String::as_str)),
            write: TopicSet::from_patterns(events.write.value.iter().map(String::as_str)),
            ui_render: events.ui_render.value,
            read_patterns: events.read.value.iter().filter(|g| grant_is_valid(g)).cloned().collect(),
        }
    }
}

/// The topics `permissions.system.ui.render` grants by itself: `ui.render` and one
/// level below it (`ui.render.<widget>`). Any other `ui.*` topic needs a literal
/// (wildcard-free) write grant naming it *and* the ui.render grant.
fn ui_render_covers(topic: &str) -> bool {
    topic == "ui.render" || topic.strip_prefix("ui.render.").is_some_and(|rest| !rest.contains('.'))
}

/// May the plugin publish on `topic`?
pub fn check_publish(grants: &Grants, topic: &str) -> Result<(), Refusal> {
    if !topic_is_valid(topic) {
        return Err(Refusal { reason: "invalid topic name", rule: "topic charset".to_owned() });
    }
    if topic.starts_with(UI_PREFIX) {
        let literal = grants.write.contains_pattern(topic);
        if grants.ui_render && (ui_render_covers(topic) || literal) {
            return Ok(());
        }
        return Err(Refusal { reason: "ui topic not covered by the ui.render grant", rule: UI_RULE.to_owned() });
    }
    if grants.write.matches(topic) {
        return Ok(());
    }
    Err(Refusal { reason: "topic not granted for writing", rule: WRITE_RULE.to_owned() })
}

impl Grants {
    /// Does the read grant cover the topic, already known to be valid? (The broker checks the
    /// topic once per event, then this once per reader.)
    pub fn reads(&self, valid_topic: &str) -> bool {
        self.read.matches(valid_topic)
    }
}

/// May the plugin receive `topic`?
pub fn check_delivery(grants: &Grants, topic: &str) -> Result<(), Refusal> {
    if !topic_is_valid(topic) {
        return Err(Refusal { reason: "invalid topic name", rule: "topic charset".to_owned() });
    }
    if grants.read.matches(topic) {
        return Ok(());
    }
    Err(Refusal { reason: "topic not granted for reading", rule: READ_RULE.to_owned() })
}

/// Most patterns one plugin may hold in its subscription set, and name in one request (its
/// read grant has at most 256).
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// May the plugin subscribe to `pattern`? A topic must be matched by a read grant; a
/// `prefix.*` pattern only when the read grant names that same pattern, since no narrower
/// grant covers every topic it matches.
pub fn check_subscription(grants: &Grants, pattern: &str) -> Result<(), Refusal> {
    if !grant_is_valid(pattern) {
        return Err(Refusal { reason: "invalid topic pattern", rule: "topic charset".to_owned() });
    }
    let covered =
        if pattern.ends_with(".*") { grants.read.contains_pattern(pattern) } else { grants.read.matches(pattern) };
    if covered {
        return Ok(());
    }
    Err(Refusal { reason: "topic not granted for reading", rule: READ_RULE.to_owned() })
}

/// What a plugin has subscribed to: its whole read grant until it says otherwise. The set is
/// kept small enough to be listed in one `subscribed` frame of the plugin's cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriptions {
    patterns: BTreeSet<String>,
    listing_bytes: usize,
    max_listing_bytes: usize,
}

/// One pattern a subscribe request could not add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedPattern {
    pub pattern: String,
    pub refusal: Refusal,
}

impl Subscriptions {
    /// The read grant, for a plugin whose frames are at most `max_frame_bytes`.
    pub fn from_grants(grants: &Grants, max_frame_bytes: u32) -> Self {
        let patterns: BTreeSet<String> = grants.read_patterns.iter().cloned().collect();
        let listing_bytes = listing_bytes(patterns.iter().map(String::as_str));
        Self { patterns, listing_bytes, max_listing_bytes: max_frame_bytes as usize }
    }

    /// Adds every pattern the grants cover and the limits allow; returns the refused ones, in
    /// request order. A request naming more than [`MAX_SUBSCRIPTIONS`] patterns is refused as
    /// a whole, unread.
    pub fn subscribe(&mut self, grants: &Grants, patterns: &[String]) -> Result<Vec<RefusedPattern>, Refusal> {
        if patterns.len() > MAX_SUBSCRIPTIONS {
            return Err(too_many());
        }
        let mut refused = Vec::new();
        for pattern in patterns {
            match check_subscription(grants, pattern).and_then(|()| self.room_for(pattern)) {
                Ok(()) => {
                    if self.patterns.insert(pattern.clone()) {
                        self.listing_bytes += listed_len(pattern);
                    }
                }
                Err(refusal) => refused.push(RefusedPattern { pattern: pattern.clone(), refusal }),
            }
        }
        Ok(refused)
    }

    /// Removes `patterns` (compared literally); refused as a whole past [`MAX_SUBSCRIPTIONS`].
    pub fn unsubscribe(&mut self, patterns: &[String]) -> Result<(), Refusal> {
        if patterns.len() > MAX_SUBSCRIPTIONS {
            return Err(too_many());
        }
        for pattern in patterns {
            if self.patterns.remove(pattern) {
                self.listing_bytes -= listed_len(pattern);
            }
        }
        Ok(())
    }

    fn room_for(&self, pattern: &str) -> Result<(), Refusal> {
        if self.patterns.contains(pattern) {
            return Ok(());
        }
        if self.patterns.len() >= MAX_SUBSCRIPTIONS {
            return Err(too_many());
        }
        if self.listing_bytes + listed_len(pattern) > self.max_listing_bytes {
            return Err(Refusal {
                reason: "the subscription set would not fit in one frame of max_event_bytes",
                rule: "/permissions/events/max_event_bytes".to_owned(),
            });
        }
        Ok(())
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
}

fn too_many() -> Refusal {
    Refusal { reason: "too many subscriptions", rule: format!("builtin: at most {MAX_SUBSCRIPTIONS} patterns") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_policy::spec::{Origin, Sourced};

    fn grants(read: &[&str], write: &[&str], ui: bool) -> Grants {
        Grants::new(&event_grants(read, write, ui))
    }

    fn event_grants(read: &[&str], write: &[&str], ui: bool) -> EventGrants {
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
        let mut subs = Subscriptions::from_grants(&g, 65536);
        assert_eq!(subs.to_vec(), ["energy.update", "sensor.*"]);
        subs.unsubscribe(&["sensor.*".to_owned()]).expect("unsubscribe");
        let refused = subs.subscribe(&g, &["sensor.temp".to_owned(), "secret.keys".to_owned()]).expect("subscribe");
        assert_eq!(refused.iter().map(|r| r.pattern.as_str()).collect::<Vec<_>>(), ["secret.keys"]);
        assert_eq!(subs.to_vec(), ["energy.update", "sensor.temp"]);
    }

    #[test]
    fn a_request_of_too_many_patterns_is_refused_whole_and_the_set_stays_listable() {
        let g = grants(&["t.*"], &[], false);
        let mut subs = Subscriptions::from_grants(&g, 1024);
        let many: Vec<String> = (0..=MAX_SUBSCRIPTIONS).map(|n| format!("t.pattern_number_{n}")).collect();
        assert!(subs.subscribe(&g, &many).is_err() && subs.unsubscribe(&many).is_err());
        assert_eq!(subs.to_vec(), ["t.*"], "nothing of a refused request is applied");
        // A 1 KiB cap lists only so many: the rest are refused, and the listing always fits.
        let refused = subs.subscribe(&g, &many[..100]).expect("within the request cap");
        assert!(!refused.is_empty() && refused.iter().all(|r| r.refusal.rule.ends_with("max_event_bytes")));
        let listing = serde_json::json!({"type": "subscribed", "topics": subs.to_vec()}).to_string();
        assert!(listing.len() <= 1024, "{} bytes", listing.len());
        assert_eq!(listing.len(), subs.listing_bytes - if subs.patterns.is_empty() { 0 } else { 1 });
    }

    #[test]
    fn the_listing_bound_is_what_a_subscribed_frame_takes_plus_one() {
        let read = vec!["energy.update".to_owned(), "sensor.*".to_owned()];
        let listing = serde_json::json!({"type": "subscribed", "topics": read}).to_string();
        assert_eq!(listing_bytes(read.iter().map(String::as_str)), listing.len() + 1);
    }

    #[test]
    fn read_grant_controls_delivery() {
        let g = grants(&["energy.update"], &[], true);
        assert!(check_delivery(&g, "energy.update").is_ok());
        let refused = check_delivery(&g, "ui.render").unwrap_err();
        assert_eq!(refused.rule, "/permissions/events/read");
    }
}
