//! How a plugin's main process ended, as its parent (the launcher) saw it in the wait status.

/// The end of a plugin's main process. Only the launcher's `waitid`/pidfd result is trusted
/// for this; nothing the plugin says about itself is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called `exit`/returned from `main` with this status (0..=255).
    Code(i32),
    /// A signal ended it (including the SIGKILL of an OOM kill or a cgroup kill).
    Signal(i32),
}

impl Exit {
    /// Decodes a raw `wait(2)` status. A stopped or continued child has not ended: `None`.
    pub fn from_wait_status(status: i32) -> Option<Self> {
        if libc::WIFEXITED(status) {
            Some(Self::Code(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(Self::Signal(libc::WTERMSIG(status)))
        } else {
            None
        }
    }

    /// Exit status 0 is the only clean end; any other status or any signal is a failure.
    pub fn is_clean(self) -> bool {
        self == Self::Code(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Raw statuses as the kernel encodes them: exit code in bits 8..16, signal in bits 0..7.
    const EXITED_0: i32 = 0;
    const EXITED_3: i32 = 3 << 8;
    const KILLED_BY_SIGKILL: i32 = 9;
    const STOPPED_BY_SIGSTOP: i32 = (19 << 8) | 0x7f;
    const CONTINUED: i32 = 0xffff;

    #[test]
    fn wait_statuses_decode_to_codes_and_signals() {
        assert_eq!(Exit::from_wait_status(EXITED_0), Some(Exit::Code(0)));
        assert_eq!(Exit::from_wait_status(EXITED_3), Some(Exit::Code(3)));
        assert_eq!(Exit::from_wait_status(KILLED_BY_SIGKILL), Some(Exit::Signal(9)));
    }

    #[test]
    fn stopped_or_continued_children_have_not_ended() {
        assert_eq!(Exit::from_wait_status(STOPPED_BY_SIGSTOP), None);
        assert_eq!(Exit::from_wait_status(CONTINUED), None);
    }

    #[test]
    fn only_code_zero_is_clean() {
        assert!(Exit::Code(0).is_clean());
        assert!(!Exit::Code(1).is_clean());
        assert!(!Exit::Code(255).is_clean());
        assert!(!Exit::Signal(15).is_clean());
        assert!(!Exit::Signal(0).is_clean());
    }
}
