//! A cheap structural pre-scan of a frame body, run before any JSON parser sees it.
//!
//! It bounds nesting depth without recursion (serde_json's own limit is 128 and the Python
//! parser's is the interpreter's stack), insists that the body is one object with nothing
//! after its closing brace, and respects strings and escapes so brackets inside strings do
//! not count. It does not validate JSON; the parser that follows does.

use crate::error::ProtocolError;

/// Checks that `body` starts with `{`, ends with the brace that closes it, and never nests
/// deeper than `max_depth`.
pub(crate) fn check_structure(body: &[u8], max_depth: u32) -> Result<(), ProtocolError> {
    if body.first() != Some(&b'{') {
        return Err(ProtocolError::malformed("frame body is not a JSON object"));
    }
    let mut depth: u32 = 0;
    let mut index = 0;
    while index < body.len() {
        match body[index] {
            b'"' => index = end_of_string(body, index + 1)?,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(ProtocolError::TooDeep { max: max_depth });
                }
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1).ok_or_else(|| ProtocolError::malformed("unbalanced closing bracket"))?;
                if depth == 0 && index + 1 != body.len() {
                    return Err(ProtocolError::malformed("trailing bytes after the JSON object"));
                }
            }
            _ => {}
        }
        index += 1;
    }
    if depth != 0 {
        return Err(ProtocolError::malformed("unterminated JSON object"));
    }
    Ok(())
}

/// The index of the quote that closes the string whose contents start at `from`, skipping
/// escaped characters. Strings are most of a large payload, so they are skipped with `memchr`
/// rather than byte by byte.
fn end_of_string(body: &[u8], mut from: usize) -> Result<usize, ProtocolError> {
    let unterminated = || ProtocolError::malformed("unterminated JSON object");
    loop {
        let rest = body.get(from..).ok_or_else(unterminated)?;
        let at = from + memchr::memchr2(b'"', b'\\', rest).ok_or_else(unterminated)?;
        if body[at] == b'"' {
            return Ok(at);
        }
        from = at + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{{\"a\":{}1{}}}", "[".repeat(levels - 1), "]".repeat(levels - 1))
    }

    #[test]
    fn depth_limit_is_inclusive() {
        assert!(check_structure(nested(32).as_bytes(), 32).is_ok());
        assert!(matches!(check_structure(nested(33).as_bytes(), 32), Err(ProtocolError::TooDeep { max: 32 })));
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let body = format!(r#"{{"a":"{}\"{}\\"}}"#, "[{".repeat(100), "]}".repeat(3));
        assert!(check_structure(body.as_bytes(), 2).is_ok());
    }

    #[test]
    fn escaped_quote_does_not_end_a_string() {
        // If the scanner ended the string at \" it would count the [[ as depth 3.
        assert!(check_structure(br#"{"a":"\"[[","b":1}"#, 1).is_ok());
    }

    #[test]
    fn an_escaped_backslash_before_the_quote_ends_the_string_and_a_trailing_backslash_does_not() {
        assert!(check_structure(br#"{"a":"x\\","b":[1]}"#, 2).is_ok());
        for body in [&br#"{"a":"\"#[..], br#"{"a":"\\\"}"#] {
            assert!(matches!(check_structure(body, 32), Err(ProtocolError::Malformed(_))), "{body:?}");
        }
    }

    #[test]
    fn rejects_non_objects_and_trailing_bytes() {
        for body in [&b"[1]"[..], b" {}", b"1", b"", b"\"x\""] {
            assert!(matches!(check_structure(body, 32), Err(ProtocolError::Malformed(_))), "{body:?}");
        }
        for body in [&b"{} "[..], b"{}{}", b"{}x", b"{}\n"] {
            assert!(matches!(check_structure(body, 32), Err(ProtocolError::Malformed(_))), "{body:?}");
        }
    }

    #[test]
    fn rejects_unbalanced_and_unterminated() {
        for body in [&b"{]]"[..], b"{\"a\":[}", b"{\"a", b"{\"a\":\"\\\"}"] {
            assert!(matches!(check_structure(body, 32), Err(ProtocolError::Malformed(_))), "{body:?}");
        }
    }
}
