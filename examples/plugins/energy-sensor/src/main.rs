//! energy_sensor: publishes a synthetic household power reading on `energy.update` every
//! `--interval-ms` (default 500) for `--count` readings (default: until stopped), as a typed
//! payload `{"watts": f64, "seq": u64, "source": String}`.

mod args;
mod meter;

use args::Args;
use meter::Meter;
use serde::Serialize;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use wf_sdk::{Channel, SdkError};

const TOPIC: &str = "energy.update";

/// One reading, as published on `energy.update`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnergyReading {
    /// Power drawn, in watts, to 0.1 W.
    pub watts: f64,
    /// 1 for the first reading of this run, then one more for each.
    pub seq: u64,
    /// Which meter produced it.
    pub source: String,
}

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{}", args::USAGE);
        return ExitCode::SUCCESS;
    }
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("energy_sensor: {message}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("energy_sensor: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), SdkError> {
    let mut channel = Channel::from_env()?;
    let mut meter = Meter::new(seed(&channel.hello().instance));
    let interval = Duration::from_millis(args.interval_ms);
    let mut due = Instant::now();
    let mut seq = 0u64;
    while args.count.is_none_or(|count| seq < count) {
        seq += 1;
        let reading = EnergyReading { watts: meter.next_watts(), seq, source: args.source.clone() };
        channel.publish_as(TOPIC, &reading)?;
        if args.count == Some(seq) {
            break;
        }
        // Fixed-rate schedule: a slow publish does not push every later reading back.
        due += interval;
        let now = Instant::now();
        match due.checked_duration_since(now) {
            Some(wait) => std::thread::sleep(wait),
            None => due = now,
        }
    }
    channel.flush()
}

/// A seed that differs between runs (the instance id) but needs no randomness source.
fn seed(instance: &str) -> u64 {
    instance.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
