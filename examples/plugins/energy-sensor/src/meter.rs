//! A synthetic household power meter: a base load that drifts slowly, a fridge compressor
//! cycling on and off, now and then a kettle or an oven, and a little noise. Deterministic
//! for a given seed (no randomness source needed inside the sandbox).

/// Readings are rounded to tenths of a watt, like a real meter's display.
const STEPS_PER_WATT: f64 = 10.0;

#[derive(Debug)]
pub struct Meter {
    rng: XorShift,
    tick: u64,
    base: f64,
    /// Readings left of the appliance that is on, and its draw.
    appliance: Option<(u32, f64)>,
}

impl Meter {
    pub fn new(seed: u64) -> Self {
        let mut rng = XorShift::new(seed);
        let base = 180.0 + 120.0 * rng.unit();
        Self { rng, tick: 0, base, appliance: None }
    }

    /// The next reading in watts, at least 0, to 0.1 W.
    pub fn next_watts(&mut self) -> f64 {
        self.tick += 1;
        // Base load: a slow random walk kept between 120 and 450 W.
        self.base = (self.base + (self.rng.unit() - 0.5) * 8.0).clamp(120.0, 450.0);
        // Fridge: 40 readings on, 60 off.
        let fridge = if self.tick % 100 < 40 { 95.0 } else { 0.0 };
        // A kettle (~2 kW) or an oven (~2.8 kW) switches on about once every 60 readings.
        self.appliance = match self.appliance {
            Some((left, draw)) if left > 1 => Some((left - 1, draw)),
            Some(_) => None,
            None if self.rng.unit() < 1.0 / 60.0 => {
                let (readings, draw) = if self.rng.unit() < 0.7 { (6, 2000.0) } else { (20, 2800.0) };
                Some((readings, draw + 100.0 * (self.rng.unit() - 0.5)))
            }
            None => None,
        };
        let appliance = self.appliance.map_or(0.0, |(_, draw)| draw);
        let noise = (self.rng.unit() - 0.5) * 6.0;
        let watts = (self.base + fridge + appliance + noise).max(0.0);
        // Dividing the whole number of tenths (rather than multiplying by 0.1) gives the double
        // nearest to the decimal value, so it prints as e.g. `42.3`, not `42.300000000000004`.
        (watts * STEPS_PER_WATT).round() / STEPS_PER_WATT
    }
}

/// xorshift64*: small, fast and good enough for plausible-looking numbers.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_plausible_household_loads() {
        let mut meter = Meter::new(42);
        let readings: Vec<f64> = (0..10_000).map(|_| meter.next_watts()).collect();
        assert!(readings.iter().all(|w| w.is_finite() && (100.0..3500.0).contains(w)), "out of range");
        let average = readings.iter().sum::<f64>() / readings.len() as f64;
        assert!((200.0..800.0).contains(&average), "average {average}");
        assert!(readings.iter().any(|w| *w > 1800.0), "an appliance switches on now and then");
    }

    #[test]
    fn readings_have_a_tenth_of_a_watt_resolution() {
        let mut meter = Meter::new(7);
        for _ in 0..1000 {
            let watts = meter.next_watts();
            let tenths = watts * 10.0;
            assert!((tenths - tenths.round()).abs() < 1e-6, "{watts}");
            // What a consumer renders with one decimal is the reading itself.
            assert_eq!(format!("{watts:.1}").parse::<f64>().ok(), Some(watts));
        }
    }

    #[test]
    fn a_seed_gives_the_same_series() {
        let series = |seed| {
            let mut meter = Meter::new(seed);
            (0..50).map(|_| meter.next_watts()).collect::<Vec<_>>()
        };
        assert_eq!(series(1), series(1));
        assert_ne!(series(1), series(2));
    }
}
