//! Which runtime runs a manifest's entry point: an interpreter the manifest names, one
//! the policy assigns to the entry point's extension, or none (a native executable).

use crate::path_rules::extension;
use crate::problem::child;
use crate::security_policy::{InterpreterPolicy, SecurityPolicy};
use crate::spec::Origin;

pub const INTERPRETERS_POINTER: &str = "/sandbox/runtimes/interpreters";
pub const NATIVE_PATHS_POINTER: &str = "/sandbox/runtimes/native/paths";

#[derive(Debug, Clone, Copy)]
pub enum RuntimeChoice<'p> {
    Native,
    Interpreter { name: &'p str, interpreter: &'p InterpreterPolicy, explicit: bool },
}

/// Chooses the runtime; `Err` carries a plain reason about `requested`.
pub fn select<'p>(
    entry_point: &str,
    requested: Option<&str>,
    policy: &'p SecurityPolicy,
) -> Result<RuntimeChoice<'p>, String> {
    let interpreters = &policy.sandbox.runtimes.interpreters;
    if let Some(name) = requested {
        return match interpreters.get_key_value(name) {
            Some((name, interpreter)) => Ok(RuntimeChoice::Interpreter { name, interpreter, explicit: true }),
            None => Err(format!(
                "interpreter {name:?} is not provided by the policy ({INTERPRETERS_POINTER} has: {})",
                available(policy)
            )),
        };
    }
    Ok(extension(entry_point).and_then(|ext| policy.interpreter_for_extension(ext)).map_or(
        RuntimeChoice::Native,
        |(name, interpreter)| RuntimeChoice::Interpreter { name, interpreter, explicit: false },
    ))
}

fn available(policy: &SecurityPolicy) -> String {
    let names: Vec<&str> = policy.sandbox.runtimes.interpreters.keys().map(String::as_str).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

impl<'p> RuntimeChoice<'p> {
    /// Host paths bound read-only for this runtime.
    pub fn paths(&self, policy: &'p SecurityPolicy) -> &'p [String] {
        match self {
            RuntimeChoice::Native => &policy.sandbox.runtimes.native.paths,
            RuntimeChoice::Interpreter { interpreter, .. } => &interpreter.paths,
        }
    }

    /// Policy pointer of the list returned by [`Self::paths`].
    pub fn paths_pointer(&self) -> String {
        match self {
            RuntimeChoice::Native => NATIVE_PATHS_POINTER.to_owned(),
            RuntimeChoice::Interpreter { name, .. } => {
                format!("{}/paths", child(INTERPRETERS_POINTER, name))
            }
        }
    }

    /// The field that decided this runtime.
    pub fn origin(&self) -> Origin {
        match self {
            RuntimeChoice::Native => Origin::builtin(
                "native: no runtime.interpreter and no policy interpreter claims the entry point's extension",
            ),
            RuntimeChoice::Interpreter { explicit: true, .. } => Origin::manifest("/runtime/interpreter"),
            RuntimeChoice::Interpreter { name, explicit: false, .. } => {
                Origin::policy(&format!("{}/extensions", child(INTERPRETERS_POINTER, name)))
            }
        }
    }

    pub fn is_python(&self) -> bool {
        matches!(self, RuntimeChoice::Interpreter { name, .. } if name.starts_with("python"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_selects_the_interpreter() {
        let policy = SecurityPolicy::default();
        let choice = select("main.py", None, &policy).unwrap();
        assert!(matches!(choice, RuntimeChoice::Interpreter { name: "python3", explicit: false, .. }));
        assert_eq!(choice.origin(), Origin::policy("/sandbox/runtimes/interpreters/python3/extensions"));
        assert_eq!(choice.paths_pointer(), "/sandbox/runtimes/interpreters/python3/paths");
        assert!(choice.is_python());
    }

    #[test]
    fn no_matching_extension_means_native() {
        let policy = SecurityPolicy::default();
        let choice = select("bin/plugin", None, &policy).unwrap();
        assert!(matches!(choice, RuntimeChoice::Native));
        assert_eq!(choice.paths(&policy), policy.sandbox.runtimes.native.paths.as_slice());
        assert!(!choice.is_python());
    }

    #[test]
    fn explicit_interpreter_must_exist() {
        let policy = SecurityPolicy::default();
        let choice = select("run", Some("python3"), &policy).unwrap();
        assert_eq!(choice.origin(), Origin::manifest("/runtime/interpreter"));
        let err = select("main.rb", Some("ruby"), &policy).unwrap_err();
        assert!(err.contains("\"ruby\" is not provided") && err.contains("python3"), "{err}");
    }
}
