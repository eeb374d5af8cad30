//! Lexical path rules. Nothing here touches the file system: the supervisor resolves
//! every path again on disk without following symlinks out of its tree.

/// Longest path accepted (PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single component accepted (NAME_MAX).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Checks a path relative to some base (e.g. the entry point inside the plugin directory):
/// not empty, not absolute, and no component that is empty, `.`, `..` or holds a NUL or
/// other control character. Without `..` the path cannot leave its base lexically.
pub fn check_relative(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if path.starts_with('/') {
        return Err("must be a relative path, not an absolute one".to_owned());
    }
    check_common(path)?;
    check_components(path.split('/'))
}

/// Checks an absolute, normalised path: starts with `/`, and no component that is
/// empty (`//`, trailing `/`), `.`, `..` or holds a control character. `/` itself passes.
pub fn check_absolute(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must be an absolute path (starting with '/')".to_owned());
    }
    check_common(path)?;
    if path == "/" {
        return Ok(());
    }
    check_components(path[1..].split('/'))
}

fn check_common(path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("is longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.contains('\0') {
        return Err("must not contain a NUL byte".to_owned());
    }
    if path.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

fn check_components<'a>(components: impl Iterator<Item = &'a str>) -> Result<(), String> {
    for component in components {
        match component {
            "" => return Err("must not contain empty components ('//' or a trailing '/')".to_owned()),
            "." => return Err("must not contain '.' components".to_owned()),
            ".." => return Err("must not contain '..' (it could leave its directory)".to_owned()),
            c if c.len() > MAX_COMPONENT_BYTES => {
                return Err(format!("has a component longer than {MAX_COMPONENT_BYTES} bytes"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// True if `path` is `base` or lies beneath it, comparing whole components
/// (`/srv/data2` is not within `/srv/data`). Both must be normalised absolute paths.
pub fn is_within(path: &str, base: &str) -> bool {
    if base == "/" {
        return path.starts_with('/');
    }
    path == base || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
}

/// True if one path is within the other.
pub fn overlaps(a: &str, b: &str) -> bool {
    is_within(a, b) || is_within(b, a)
}

/// The file extension of the last component, with its dot (`main.py` → `.py`).
/// Hidden files without another dot (`.profile`) have none.
pub fn extension(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?;
    let dot = name.rfind('.')?;
    (dot > 0).then(|| &name[dot..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert!(check_relative("main.py").is_ok());
        assert!(check_relative("bin/plugin").is_ok());
        for (bad, why) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../x", "'..'"),
            ("a/../../x", "'..'"),
            ("a/./b", "'.'"),
            ("a//b", "empty components"),
            ("a/", "empty components"),
            ("a\0b", "NUL"),
            ("a\nb", "control"),
            ("a\u{7f}b", "control"),
        ] {
            let err = check_relative(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(check_relative(&"a".repeat(256)).unwrap_err().contains("component longer"));
        assert!(check_relative(&"a/".repeat(2100)).unwrap_err().contains("longer than 4096"));
    }

    #[test]
    fn absolute_paths() {
        assert!(check_absolute("/").is_ok());
        assert!(check_absolute("/usr/lib/python3.11").is_ok());
        for bad in ["usr/lib", "/usr/../etc", "/usr/./lib", "/usr//lib", "/usr/", "/a\0", "/a\tb", ""] {
            assert!(check_absolute(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn within_compares_whole_components() {
        assert!(is_within("/srv/data", "/srv/data"));
        assert!(is_within("/srv/data/x", "/srv/data"));
        assert!(!is_within("/srv/data2", "/srv/data"));
        assert!(!is_within("/srv", "/srv/data"));
        assert!(is_within("/anything", "/"));
        assert!(overlaps("/srv", "/srv/data"));
        assert!(!overlaps("/srv/a", "/srv/b"));
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("main.py"), Some(".py"));
        assert_eq!(extension("dir.d/main"), None);
        assert_eq!(extension(".profile"), None);
        assert_eq!(extension("a/b.tar.gz"), Some(".gz"));
    }
}
