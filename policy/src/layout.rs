//! Fixed places inside every sandbox. Runtime binds and host grants may not overlap them.

/// Where the plugin directory appears (read-only); also the working directory.
pub const PLUGIN_DIR_INSIDE: &str = "/plugin";
/// The private, size-limited tmpfs.
pub const TMP_INSIDE: &str = "/tmp";
pub const PROC_INSIDE: &str = "/proc";
pub const DEV_INSIDE: &str = "/dev";
/// Parent of files the supervisor itself places in the sandbox.
pub const SUPERVISOR_FILES_INSIDE: &str = "/opt/wfsandbox";
/// The dependency-free Python SDK, on `PYTHONPATH` for Python plugins.
pub const PYTHON_SDK_INSIDE: &str = "/opt/wfsandbox/python";
/// Hostname inside every sandbox.
pub const HOSTNAME: &str = "wfsandbox";

/// Paths inside the sandbox that the supervisor owns.
pub const RESERVED_INSIDE: [&str; 5] =
    [PLUGIN_DIR_INSIDE, TMP_INSIDE, PROC_INSIDE, DEV_INSIDE, SUPERVISOR_FILES_INSIDE];

/// The reserved path that `path` overlaps (is, contains, or lies beneath), if any.
/// `/` overlaps everything.
pub fn reserved_overlap(path: &str) -> Option<&'static str> {
    RESERVED_INSIDE.iter().copied().find(|reserved| crate::path_rules::overlaps(path, reserved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_paths_overlap_in_both_directions() {
        assert_eq!(reserved_overlap("/tmp"), Some(TMP_INSIDE));
        assert_eq!(reserved_overlap("/tmp/x"), Some(TMP_INSIDE));
        assert_eq!(reserved_overlap("/opt"), Some(SUPERVISOR_FILES_INSIDE));
        assert!(reserved_overlap("/").is_some());
        assert_eq!(reserved_overlap("/data"), None);
        assert_eq!(reserved_overlap("/tmpdata"), None);
    }
}
