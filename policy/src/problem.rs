//! Validation problems: every reason a manifest or policy is refused, each tied to the
//! JSON pointer of the offending value.

use std::fmt;

/// Longest reason kept; longer ones (a schema error quoting a huge value) are cut.
const MAX_REASON_CHARS: usize = 300;

/// One reason a document is refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Problem {
    /// JSON pointer (RFC 6901) into the document; `""` is the whole document.
    pub pointer: String,
    /// Plain-language reason.
    pub reason: String,
}

impl Problem {
    pub fn new(pointer: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), reason: shorten(reason.into()) }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() { "(document)" } else { &self.pointer };
        write!(f, "{pointer}: {}", self.reason)
    }
}

/// Every problem found in one document, sorted by pointer, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn single(pointer: impl Into<String>, reason: impl Into<String>) -> Self {
        Self(vec![Problem::new(pointer, reason)])
    }

    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    pub fn extend(&mut self, problems: impl IntoIterator<Item = Problem>) {
        self.0.extend(problems);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }

    /// True if some problem sits exactly at `pointer`.
    pub fn has_pointer(&self, pointer: &str) -> bool {
        self.0.iter().any(|p| p.pointer == pointer)
    }

    /// Sorts by pointer (keeping the order of reasons at one pointer) and drops exact repeats.
    pub fn normalized(mut self) -> Self {
        self.0.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        self.0.dedup();
        self
    }

    /// `Ok(value)` if there are no problems, else `Err(self)` normalised.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self.normalized())
        }
    }
}

impl IntoIterator for Problems {
    type Item = Problem;
    type IntoIter = std::vec::IntoIter<Problem>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Problem> for Problems {
    fn from(problem: Problem) -> Self {
        Self(vec![problem])
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Appends one reference token to a JSON pointer, escaping `~` and `/` (RFC 6901).
pub fn child(pointer: &str, token: &str) -> String {
    let escaped = token.replace('~', "~0").replace('/', "~1");
    format!("{pointer}/{escaped}")
}

/// Appends an array index to a JSON pointer.
pub fn index(pointer: &str, i: usize) -> String {
    format!("{pointer}/{i}")
}

fn shorten(reason: String) -> String {
    if reason.chars().count() <= MAX_REASON_CHARS {
        return reason;
    }
    let mut cut: String = reason.chars().take(MAX_REASON_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_prints_one_problem_per_line() {
        let mut problems = Problems::new();
        problems.push(Problem::new("/name", "bad name"));
        problems.push(Problem::new("", "broken"));
        assert_eq!(problems.to_string(), "/name: bad name\n(document): broken");
    }

    #[test]
    fn normalized_sorts_by_pointer_and_drops_repeats() {
        let mut problems = Problems::new();
        problems.push(Problem::new("/b", "x"));
        problems.push(Problem::new("/a", "y"));
        problems.push(Problem::new("/b", "x"));
        let problems = problems.normalized();
        let pointers: Vec<_> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/a", "/b"]);
    }

    #[test]
    fn child_escapes_tilde_and_slash() {
        assert_eq!(child("/a", "b/c~d"), "/a/b~1c~0d");
        assert_eq!(index("/list", 3), "/list/3");
    }

    #[test]
    fn long_reasons_are_cut() {
        let problem = Problem::new("", "x".repeat(10_000));
        assert!(problem.reason.chars().count() <= MAX_REASON_CHARS + 1);
    }

    #[test]
    fn problems_is_an_error() {
        let boxed: Box<dyn std::error::Error> = Box::new(Problems::single("/x", "bad"));
        assert_eq!(boxed.to_string(), "/x: bad");
    }
}
