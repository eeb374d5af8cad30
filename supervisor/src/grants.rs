//! The manifest's topic grants as the broker enforces them.

use wf_policy::spec::EventGrants;
use wf_policy::topic::{topic_is_valid, topic_matches};

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
    fn read_grant_controls_delivery() {
        let g = grants(&["energy.update"], &[], true);
        assert!(check_delivery(&g, "energy.update").is_ok());
        let refused = check_delivery(&g, "ui.render").unwrap_err();
        assert_eq!(refused.rule, "/permissions/events/read");
    }
}
