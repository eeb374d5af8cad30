//! The limits one plugin cgroup gets, their bounds, and how a value read back from the
//! kernel is compared with the value written.

use super::error::CgroupError;
use serde::Serialize;
use wf_policy::spec::CgroupLimits;

/// Largest memory / swap limit accepted (1 PiB): far below the kernel's "unlimited"
/// sentinel, so no accepted value can silently mean "no limit".
pub const MAX_MEMORY_BYTES: u64 = 1 << 50;
/// The kernel accepts CFS periods from 1 ms to 1 s.
pub const MIN_CPU_PERIOD_US: u64 = 1_000;
pub const MAX_CPU_PERIOD_US: u64 = 1_000_000;
/// The kernel refuses quotas below 1 ms.
pub const MIN_CPU_QUOTA_US: u64 = 1_000;
/// A quota of 4096 full CPUs at the longest period; larger is a typo, not a limit.
pub const MAX_CPU_QUOTA_US: u64 = 4096 * MAX_CPU_PERIOD_US;
/// `PID_MAX_LIMIT` on 64-bit Linux.
pub const MAX_PIDS: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub memory_max_bytes: u64,
    /// Swap allowed on top of memory; the effective spec always asks for 0.
    pub swap_max_bytes: u64,
    pub cpu_quota_us: u64,
    pub cpu_period_us: u64,
    pub pids_max: u64,
}

impl Limits {
    pub fn from_spec(spec: &CgroupLimits) -> Self {
        Limits {
            memory_max_bytes: spec.memory_max_bytes.value,
            swap_max_bytes: spec.swap_max_bytes.value,
            cpu_quota_us: spec.cpu_quota_us.value,
            cpu_period_us: spec.cpu_period_us.value,
            pids_max: spec.pids_max.value,
        }
    }

    /// Refuses 0, out-of-range and overflowing values: none may turn into "unlimited".
    pub fn validate(&self, page_size: u64) -> Result<(), CgroupError> {
        let invalid = |name, value, reason| Err(CgroupError::InvalidLimit { name, value, reason });
        if self.memory_max_bytes < page_size {
            return invalid("memory_max_bytes", self.memory_max_bytes, "below one page");
        }
        if self.memory_max_bytes > MAX_MEMORY_BYTES {
            return invalid("memory_max_bytes", self.memory_max_bytes, "above 1 PiB");
        }
        if self.swap_max_bytes > MAX_MEMORY_BYTES {
            return invalid("swap_max_bytes", self.swap_max_bytes, "above 1 PiB");
        }
        if !(MIN_CPU_PERIOD_US..=MAX_CPU_PERIOD_US).contains(&self.cpu_period_us) {
            return invalid("cpu_period_us", self.cpu_period_us, "outside 1000..=1000000 microseconds");
        }
        if !(MIN_CPU_QUOTA_US..=MAX_CPU_QUOTA_US).contains(&self.cpu_quota_us) {
            return invalid("cpu_quota_us", self.cpu_quota_us, "outside 1 ms ..= 4096 CPUs x 1 s");
        }
        if !(1..=MAX_PIDS).contains(&self.pids_max) {
            return invalid("pids_max", self.pids_max, "outside 1..=4194304");
        }
        Ok(())
    }

    /// The v1 `memory.memsw.limit_in_bytes` value: memory plus the swap allowance.
    pub fn memsw_bytes(&self) -> u64 {
        // Both are bounded by MAX_MEMORY_BYTES after validate(); saturate regardless.
        self.memory_max_bytes.saturating_add(self.swap_max_bytes)
    }
}

/// The system page size (the granularity of memory limits).
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// The kernel stores memory limits in whole pages, rounding down: a read-back value
/// matches when it is at most the request and less than one page below it.
pub fn memory_matches(requested: u64, read_back: u64, page_size: u64) -> bool {
    read_back <= requested && requested - read_back < page_size
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Limits {
        Limits {
            memory_max_bytes: 64 << 20,
            swap_max_bytes: 0,
            cpu_quota_us: 10_000,
            cpu_period_us: 100_000,
            pids_max: 64,
        }
    }

    #[test]
    fn sane_limits_pass() {
        good().validate(4096).unwrap();
    }

    #[test]
    fn zero_huge_and_out_of_range_values_are_refused() {
        let cases: Vec<(&str, Limits)> = vec![
            ("memory_max_bytes", Limits { memory_max_bytes: 0, ..good() }),
            ("memory_max_bytes", Limits { memory_max_bytes: 4095, ..good() }),
            ("memory_max_bytes", Limits { memory_max_bytes: u64::MAX, ..good() }),
            ("memory_max_bytes", Limits { memory_max_bytes: MAX_MEMORY_BYTES + 1, ..good() }),
            ("swap_max_bytes", Limits { swap_max_bytes: u64::MAX, ..good() }),
            ("cpu_period_us", Limits { cpu_period_us: 0, ..good() }),
            ("cpu_period_us", Limits { cpu_period_us: 999, ..good() }),
            ("cpu_period_us", Limits { cpu_period_us: 1_000_001, ..good() }),
            ("cpu_quota_us", Limits { cpu_quota_us: 0, ..good() }),
            ("cpu_quota_us", Limits { cpu_quota_us: 999, ..good() }),
            ("cpu_quota_us", Limits { cpu_quota_us: u64::MAX, ..good() }),
            ("pids_max", Limits { pids_max: 0, ..good() }),
            ("pids_max", Limits { pids_max: MAX_PIDS + 1, ..good() }),
        ];
        for (field, limits) in cases {
            match limits.validate(4096) {
                Err(CgroupError::InvalidLimit { name, .. }) => assert_eq!(name, field, "{limits:?}"),
                other => panic!("{limits:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn boundaries_are_accepted() {
        Limits { memory_max_bytes: 4096, ..good() }.validate(4096).unwrap();
        Limits { memory_max_bytes: MAX_MEMORY_BYTES, ..good() }.validate(4096).unwrap();
        Limits { cpu_period_us: 1_000, cpu_quota_us: 1_000, ..good() }.validate(4096).unwrap();
        Limits { pids_max: 1, ..good() }.validate(4096).unwrap();
        Limits { pids_max: MAX_PIDS, ..good() }.validate(4096).unwrap();
    }

    #[test]
    fn memsw_is_memory_plus_swap() {
        assert_eq!(good().memsw_bytes(), 64 << 20);
        assert_eq!(Limits { swap_max_bytes: 4096, ..good() }.memsw_bytes(), (64 << 20) + 4096);
    }

    #[test]
    fn memory_read_back_allows_only_page_rounding_down() {
        assert!(memory_matches(10_000, 8192, 4096));
        assert!(memory_matches(8192, 8192, 4096));
        assert!(!memory_matches(10_000, 4096, 4096), "more than a page lost");
        assert!(!memory_matches(8192, 12_288, 4096), "kernel holds more than asked");
        assert!(!memory_matches(8192, u64::MAX, 4096));
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two());
    }

    #[test]
    fn from_spec_copies_every_value() {
        use wf_policy::spec::{Origin, Sourced};
        let s = |v| Sourced::new(v, Origin::builtin("test"));
        let spec = CgroupLimits {
            memory_max_bytes: s(1),
            swap_max_bytes: s(2),
            cpu_quota_us: s(3),
            cpu_period_us: s(4),
            pids_max: s(5),
        };
        assert_eq!(
            Limits::from_spec(&spec),
            Limits { memory_max_bytes: 1, swap_max_bytes: 2, cpu_quota_us: 3, cpu_period_us: 4, pids_max: 5 }
        );
    }
}
