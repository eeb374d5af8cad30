//! Which plugin ports subscribe to which topic, indexed so that a publish costs two map
//! lookups whatever the number of plugins: one for the exact topic, one for the `prefix.*`
//! pattern of its parent (a wildcard matches exactly one more segment).

use std::collections::HashMap;

pub type PortId = u64;

#[derive(Default)]
pub struct Routes {
    exact: HashMap<String, Vec<PortId>>,
    /// Keyed by the prefix, without the trailing `.*`.
    wildcard: HashMap<String, Vec<PortId>>,
}

impl Routes {
    pub fn add(&mut self, pattern: &str, port: PortId) {
        let ports = self.slot(pattern).entry(key(pattern).to_owned()).or_default();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }

    pub fn remove(&mut self, pattern: &str, port: PortId) {
        let map = self.slot(pattern);
        if let Some(ports) = map.get_mut(key(pattern)) {
            ports.retain(|p| *p != port);
            if ports.is_empty() {
                map.remove(key(pattern));
            }
        }
    }

    /// Every port subscribed to `topic`, each once, into `out` (cleared first).
    pub fn recipients(&self, topic: &str, out: &mut Vec<PortId>) {
        out.clear();
        if let Some(ports) = self.exact.get(topic) {
            out.extend_from_slice(ports);
        }
        let parent = topic.rsplit_once('.').map(|(parent, _)| parent);
        if let Some(ports) = parent.and_then(|parent| self.wildcard.get(parent)) {
            if out.is_empty() {
                out.extend_from_slice(ports);
            } else {
                out.extend(ports.iter().filter(|p| !out.contains(p)).copied().collect::<Vec<_>>());
            }
        }
    }

    fn slot(&mut self, pattern: &str) -> &mut HashMap<String, Vec<PortId>> {
        if pattern.ends_with(".*") {
            &mut self.wildcard
        } else {
            &mut self.exact
        }
    }
}

fn key(pattern: &str) -> &str {
    pattern.strip_suffix(".*").unwrap_or(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipients(routes: &Routes, topic: &str) -> Vec<PortId> {
        let mut out = Vec::new();
        routes.recipients(topic, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn exact_and_one_segment_wildcard_routes_each_port_once() {
        let mut routes = Routes::default();
        routes.add("energy.update", 1);
        routes.add("energy.*", 1);
        routes.add("energy.*", 2);
        routes.add("energy.update.raw", 3);
        assert_eq!(recipients(&routes, "energy.update"), [1, 2]);
        assert_eq!(recipients(&routes, "energy.other"), [1, 2]);
        assert_eq!(recipients(&routes, "energy.update.raw"), [3], "a wildcard matches one segment only");
        assert!(recipients(&routes, "energy").is_empty());
    }

    #[test]
    fn removing_a_route_removes_only_that_port_and_pattern() {
        let mut routes = Routes::default();
        routes.add("t.a", 1);
        routes.add("t.a", 2);
        routes.add("t.*", 1);
        routes.remove("t.a", 1);
        assert_eq!(recipients(&routes, "t.a"), [1, 2], "still through t.*");
        routes.remove("t.*", 1);
        assert_eq!(recipients(&routes, "t.a"), [2]);
        routes.remove("t.a", 2);
        assert!(routes.exact.is_empty() && routes.wildcard.is_empty());
    }
}
