//! Reading the SDK's settings from the environment the supervisor sets.

use crate::error::SdkError;
use wf_protocol::{CHANNEL_FD_ENV, DEFAULT_MAX_FRAME_BYTES, MAX_FRAME_BYTES_CEILING, MAX_FRAME_BYTES_ENV};

/// The channel fd named by `value` (the content of `WFSANDBOX_CHANNEL_FD`).
pub(crate) fn parse_channel_fd(value: Option<&str>) -> Result<i32, SdkError> {
    let value = value.ok_or(SdkError::NoChannel { var: CHANNEL_FD_ENV })?;
    let fd = parse_decimal(value).ok_or_else(|| bad(CHANNEL_FD_ENV, value, "not a decimal fd number"))?;
    let fd = i32::try_from(fd).map_err(|_| bad(CHANNEL_FD_ENV, value, "fd number out of range"))?;
    if fd < 3 {
        return Err(bad(CHANNEL_FD_ENV, value, "the channel is never on stdin/stdout/stderr"));
    }
    Ok(fd)
}

/// The frame cap named by `value` (the content of `WFSANDBOX_MAX_FRAME_BYTES`), or the
/// default when it is absent.
pub(crate) fn parse_max_frame_bytes(value: Option<&str>) -> Result<u32, SdkError> {
    let Some(value) = value else {
        return Ok(DEFAULT_MAX_FRAME_BYTES);
    };
    let max = parse_decimal(value).ok_or_else(|| bad(MAX_FRAME_BYTES_ENV, value, "not a decimal byte count"))?;
    match u32::try_from(max) {
        Ok(0) => Err(bad(MAX_FRAME_BYTES_ENV, value, "must be at least 1")),
        Ok(max) if max <= MAX_FRAME_BYTES_CEILING => Ok(max),
        _ => Err(bad(MAX_FRAME_BYTES_ENV, value, "above the 16 MiB ceiling")),
    }
}

/// Plain ASCII digits only: no sign, no whitespace, at most 10 digits.
fn parse_decimal(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn bad(var: &'static str, value: &str, reason: &'static str) -> SdkError {
    SdkError::BadEnv { var, value: value.chars().take(64).collect(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_fd_accepts_plain_numbers_from_3() {
        assert_eq!(parse_channel_fd(Some("3")).ok(), Some(3));
        assert_eq!(parse_channel_fd(Some("1023")).ok(), Some(1023));
    }

    #[test]
    fn channel_fd_rejects_everything_else() {
        assert!(matches!(parse_channel_fd(None), Err(SdkError::NoChannel { .. })));
        for value in ["", "0", "2", "-3", "+3", " 3", "3 ", "0x3", "3.0", "99999999999", "2147483648", "٣"] {
            assert!(matches!(parse_channel_fd(Some(value)), Err(SdkError::BadEnv { .. })), "{value:?}");
        }
    }

    #[test]
    fn max_frame_defaults_and_bounds() {
        assert_eq!(parse_max_frame_bytes(None).ok(), Some(DEFAULT_MAX_FRAME_BYTES));
        assert_eq!(parse_max_frame_bytes(Some("1")).ok(), Some(1));
        assert_eq!(parse_max_frame_bytes(Some("16777216")).ok(), Some(MAX_FRAME_BYTES_CEILING));
        for value in ["0", "16777217", "4294967296", "-1", "", "64k"] {
            assert!(matches!(parse_max_frame_bytes(Some(value)), Err(SdkError::BadEnv { .. })), "{value:?}");
        }
    }
}
