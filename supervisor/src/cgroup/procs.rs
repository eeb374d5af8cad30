//! Reading the member processes of a cgroup (`cgroup.procs`, one pid per line).
//!
//! These pids may be signalled, so each must be a positive number that cannot mean a
//! process group or "every process" to `kill(2)`.

use super::control::tree_deepest_first;
use super::error::{CgroupError, Step};
use super::fs::CgroupFs;
use std::path::Path;

/// The processes directly in `dir`.
pub(crate) fn list_pids(fs: &dyn CgroupFs, dir: &Path) -> Result<Vec<u32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    let text = fs.read(&path).map_err(CgroupError::io(Step::ListProcesses, &path))?;
    parse_pids(&path, &text)
}

/// The processes in `dir` and every cgroup below it.
pub(crate) fn list_pids_in_tree(fs: &dyn CgroupFs, dir: &Path) -> Result<Vec<u32>, CgroupError> {
    let mut pids = Vec::new();
    for cgroup in tree_deepest_first(fs, dir)? {
        pids.extend(list_pids(fs, &cgroup)?);
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

pub(crate) fn parse_pids(path: &Path, text: &str) -> Result<Vec<u32>, CgroupError> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.parse::<u32>()
                .ok()
                .filter(|pid| *pid > 0 && i32::try_from(*pid).is_ok())
                .ok_or_else(|| CgroupError::Parse { path: path.to_owned(), what: "a process id", content: line.into() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_parse_one_per_line() {
        assert_eq!(parse_pids(Path::new("/p"), "12\n345\n\n").unwrap(), vec![12, 345]);
        assert_eq!(parse_pids(Path::new("/p"), "").unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn pids_that_kill_would_misread_are_refused() {
        for bad in ["0", "-1", "4294967295", "2147483648", "12abc", " - "] {
            assert!(matches!(parse_pids(Path::new("/p"), bad), Err(CgroupError::Parse { .. })), "{bad:?} was accepted");
        }
    }
}
