//! Character rules for names: plugin names, versions, interpreter names, extensions.
//! The schemas carry the same rules as patterns; these are the checks the typed layer
//! relies on, with plain reasons.

/// `^[a-z][a-z0-9_-]{0,62}$`
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("must not be empty".to_owned()),
        Some(c) if !c.is_ascii_lowercase() => return Err("must start with a lowercase letter a-z".to_owned()),
        Some(_) => {}
    }
    if name.len() > 63 {
        return Err("must be at most 63 characters".to_owned());
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
        return Err("may only contain a-z, 0-9, '_' and '-'".to_owned());
    }
    Ok(())
}

/// Semantic-versioning shape: `MAJOR.MINOR.PATCH`, numbers without leading zeros,
/// optional `-prerelease` and `+build` of `[0-9A-Za-z.-]`, at most 64 characters.
pub fn check_version(version: &str) -> Result<(), String> {
    const SHAPE: &str = "must look like MAJOR.MINOR.PATCH (e.g. 1.0.0), optionally with -prerelease or +build";
    if version.len() > 64 {
        return Err("must be at most 64 characters".to_owned());
    }
    let (core, build) = split_once_opt(version, '+');
    let (core, pre) = split_once_opt(core, '-');
    let numbers: Vec<&str> = core.split('.').collect();
    let numbers_ok = numbers.len() == 3 && numbers.iter().all(|n| is_version_number(n));
    let suffix_ok = [pre, build].iter().flatten().all(|s| is_version_suffix(s));
    if numbers_ok && suffix_ok {
        Ok(())
    } else {
        Err(SHAPE.to_owned())
    }
}

fn split_once_opt(s: &str, sep: char) -> (&str, Option<&str>) {
    match s.split_once(sep) {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

fn is_version_number(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'))
}

fn is_version_suffix(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// `^[a-z][a-z0-9_.-]{0,31}$`
pub fn check_interpreter_name(name: &str) -> Result<(), String> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() <= 32 {
        Ok(())
    } else {
        Err("must be a lowercase letter followed by up to 31 of a-z, 0-9, '_', '.', '-'".to_owned())
    }
}

/// `^\.[A-Za-z0-9_]{1,15}$`
pub fn check_extension(extension: &str) -> Result<(), String> {
    let ok = extension.len() >= 2
        && extension.len() <= 16
        && extension.starts_with('.')
        && extension[1..].chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err("must be a dot followed by 1 to 15 of A-Z, a-z, 0-9, '_' (e.g. .py)".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names() {
        for good in ["my_plugin", "a", "x-1_b", &format!("a{}", "b".repeat(62))] {
            assert!(check_plugin_name(good).is_ok(), "{good}");
        }
        for bad in ["", "My", "1a", "_a", "a b", "a.b", "a/b", "ä", &format!("a{}", "b".repeat(63))] {
            assert!(check_plugin_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions() {
        for good in ["1.0.0", "0.0.1", "10.20.30", "1.0.0-alpha.1", "1.0.0+build.5", "1.0.0-rc-1+x"] {
            assert!(check_version(good).is_ok(), "{good}");
        }
        for bad in ["1", "1.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.0.0+", "a.b.c", "1.0.0-ü", "", "1..0"] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
        assert!(check_version(&format!("1.0.0-{}", "a".repeat(60))).is_err());
    }

    #[test]
    fn interpreter_names_and_extensions() {
        assert!(check_interpreter_name("python3").is_ok());
        assert!(check_interpreter_name("python3.11").is_ok());
        assert!(check_interpreter_name("Python").is_err());
        assert!(check_interpreter_name("").is_err());
        assert!(check_interpreter_name("../bin/sh").is_err());
        assert!(check_extension(".py").is_ok());
        assert!(check_extension("py").is_err());
        assert!(check_extension(".").is_err());
        assert!(check_extension(".p/y").is_err());
        assert!(check_extension(".ü").is_err());
    }
}
