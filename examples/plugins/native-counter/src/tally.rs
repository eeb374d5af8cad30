//! The running count of energy readings and its rendering.

use serde_json::{json, Value};

#[derive(Debug, Default)]
pub struct Tally {
    /// Every energy.update event, valid or not.
    events: u64,
    /// Events whose payload carried a finite `watts` number.
    readings: u64,
    total_watts: f64,
    peak_watts: Option<f64>,
}

impl Tally {
    pub fn record(&mut self, payload: &Value) {
        self.events += 1;
        let Some(watts) = payload.get("watts").and_then(Value::as_f64).filter(|w| w.is_finite()) else {
            return;
        };
        self.readings += 1;
        self.total_watts += watts;
        self.peak_watts = Some(self.peak_watts.map_or(watts, |peak| peak.max(watts)));
    }

    pub fn summary(&self, last: bool) -> Value {
        let average = (self.readings > 0).then(|| self.total_watts / self.readings as f64);
        let text = match (average, self.peak_watts) {
            (Some(avg), Some(peak)) => {
                format!("{}, average {avg:.1} W, peak {peak:.1} W", plural(self.readings, "reading"))
            }
            _ => format!("{}, no valid readings", plural(self.events, "event")),
        };
        json!({
            "widget": "energy_counter",
            "text": text,
            "events": self.events,
            "readings": self.readings,
            "average_watts": average,
            "peak_watts": self.peak_watts,
            "final": last,
        })
    }
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_averages_and_peaks() {
        let mut tally = Tally::default();
        tally.record(&json!({"watts": 40}));
        tally.record(&json!({"watts": 50.5}));
        tally.record(&json!({"volts": 230}));
        let summary = tally.summary(true);
        assert_eq!(summary["events"], 3);
        assert_eq!(summary["readings"], 2);
        assert_eq!(summary["average_watts"], 45.25);
        assert_eq!(summary["peak_watts"], 50.5);
        assert_eq!(summary["final"], true);
        assert_eq!(summary["text"], "2 readings, average 45.2 W, peak 50.5 W");
    }

    #[test]
    fn no_readings_renders_without_numbers() {
        let mut tally = Tally::default();
        tally.record(&json!("garbage"));
        tally.record(&json!({"watts": true}));
        let summary = tally.summary(false);
        assert_eq!(summary["text"], "2 events, no valid readings");
        assert_eq!(summary["average_watts"], Value::Null);
    }

    #[test]
    fn one_reading_is_singular() {
        let mut tally = Tally::default();
        tally.record(&json!({"watts": 7}));
        assert_eq!(tally.summary(false)["text"], "1 reading, average 7.0 W, peak 7.0 W");
    }
}
