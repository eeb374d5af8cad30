//! Compiling the spec's syscall allowlist into a seccomp-bpf program (parent side).
//!
//! The program starts with a hand-written prefix, then the allowlist compiled by
//! `seccompiler` (which repeats its own arch check):
//!
//! 1. `arch != AUDIT_ARCH_X86_64` → `SECCOMP_RET_KILL_PROCESS` (never kill-thread);
//! 2. `nr >= 0x40000000` (the x32 bit; also every "negative" number) → the default action;
//! 3. `nr` in the spec's `enosys` list (e.g. `clone3`) → `ERRNO(ENOSYS)`, so libc falls back;
//! 4. the allowlist: a match is `ALLOW`, anything else the default action.
//!
//! Argument filters: `OneOf`/`NoneOf` compare only the low 32 bits of the argument
//! (`seccompiler`'s `Dword` loads just the low word), exactly like the kernel, which
//! truncates `int` arguments — so `ioctl(fd, 0xdead_0000_0000_5412)` is still TIOCSTI.
//! `MaskClear` is a full 64-bit compare.
//!
//! The program must be installed with `no_new_privs` set, after everything else,
//! right before `execve` — which it must allow (checked here).

use seccompiler::{
    BackendError, BpfProgram, SeccompAction as BackendAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use thiserror::Error;
use wf_policy::spec::{ArgFilter, SeccompAction, SeccompSpec, SyscallRule};

use crate::syscalls;

/// `AUDIT_ARCH_X86_64` (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Bit 30 marks x32 syscall numbers.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// The kernel's limit on classic BPF program length (`BPF_MAXINSNS`).
pub const MAX_PROGRAM_LEN: usize = 4096;
/// Highest errno a filter may return (`MAX_ERRNO`).
pub const MAX_ERRNO: i32 = 4095;
/// Bound on the rules one syscall expands to (the product of its `OneOf` filters).
pub const MAX_ALTERNATIVES: usize = 64;
/// Bound on `enosys` names, so every prefix jump fits in 8 bits.
pub const MAX_ENOSYS: usize = 200;

pub(crate) const OFFSET_NR: u32 = 0;
pub(crate) const OFFSET_ARCH: u32 = 4;

// Classic BPF opcodes: BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JA, BPF_JMP|BPF_JEQ|BPF_K,
// BPF_JMP|BPF_JGE|BPF_K, BPF_RET|BPF_K.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;

#[derive(Debug, Error)]
pub enum SeccompError {
    #[error("seccomp: unknown syscall {name:?} (not in the x86_64 table)")]
    UnknownSyscall { name: String },
    #[error("seccomp: {name} is both allowed and answered with ENOSYS")]
    AllowedAndEnosys { name: String },
    #[error("seccomp: {name}: argument index {index} out of range 0..=5")]
    ArgIndex { name: String, index: u8 },
    #[error("seccomp: {name}: argument {index} has an empty OneOf set (the rule could never match)")]
    EmptyOneOf { name: String, index: u8 },
    #[error("seccomp: {name}: {count} rule alternatives, more than {MAX_ALTERNATIVES}")]
    TooManyAlternatives { name: String, count: usize },
    #[error("seccomp: {count} ENOSYS syscalls, more than {MAX_ENOSYS}")]
    TooManyEnosys { count: usize },
    #[error("seccomp: default errno {errno} is outside 1..={MAX_ERRNO} (0 would mean success)")]
    InvalidErrno { errno: i32 },
    #[error("seccomp: the allowlist does not allow execve, so the entry point could never start")]
    ExecveNotAllowed,
    #[error("seccomp: program is {len} instructions, more than {MAX_PROGRAM_LEN}")]
    TooLong { len: usize },
    #[error("seccomp: allowlist compiler: {0}")]
    Backend(#[from] BackendError),
}

/// Compile `spec` into a complete program (prefix + allowlist), ready to install.
pub fn compile(spec: &SeccompSpec) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let default = default_action(spec.default_action.value)?;
    let enosys = enosys_numbers(spec)?;
    let rules = allowlist(&spec.allowed)?;
    if let Some(name) = spec.enosys.iter().find(|n| syscalls::number(n).is_some_and(|nr| rules.contains_key(&nr))) {
        return Err(SeccompError::AllowedAndEnosys { name: name.clone() });
    }
    if !syscalls::number("execve").is_some_and(|nr| rules.contains_key(&nr)) {
        return Err(SeccompError::ExecveNotAllowed);
    }
    let filter = SeccompFilter::new(rules, default.clone(), BackendAction::Allow, TargetArch::x86_64)?;
    let body: BpfProgram = filter.try_into()?;
    let mut program = prefix(u32::from(default), &enosys);
    program.extend(body.into_iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }));
    if program.len() > MAX_PROGRAM_LEN {
        return Err(SeccompError::TooLong { len: program.len() });
    }
    Ok(program)
}

/// SHA-256 (lowercase hex) of the raw instructions, each as `code` (LE u16), `jt`, `jf`, `k` (LE u32).
pub fn program_hash(program: &[libc::sock_filter]) -> String {
    let mut hasher = Sha256::new();
    for insn in program {
        hasher.update(insn.code.to_le_bytes());
        hasher.update([insn.jt, insn.jf]);
        hasher.update(insn.k.to_le_bytes());
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn default_action(action: SeccompAction) -> Result<BackendAction, SeccompError> {
    match action {
        SeccompAction::KillProcess => Ok(BackendAction::KillProcess),
        SeccompAction::Errno { errno } if (1..=MAX_ERRNO).contains(&errno) => {
            // In range 1..=4095, so the cast is exact.
            Ok(BackendAction::Errno(errno as u32))
        }
        SeccompAction::Errno { errno } => Err(SeccompError::InvalidErrno { errno }),
    }
}

fn syscall_number(name: &str) -> Result<i64, SeccompError> {
    syscalls::number(name).ok_or_else(|| SeccompError::UnknownSyscall { name: name.to_owned() })
}

fn enosys_numbers(spec: &SeccompSpec) -> Result<Vec<u32>, SeccompError> {
    if spec.enosys.len() > MAX_ENOSYS {
        return Err(SeccompError::TooManyEnosys { count: spec.enosys.len() });
    }
    let mut numbers = Vec::with_capacity(spec.enosys.len());
    for name in &spec.enosys {
        // Table numbers are 0..=469, so the cast is exact.
        numbers.push(syscall_number(name)? as u32);
    }
    numbers.sort_unstable();
    numbers.dedup();
    Ok(numbers)
}

/// `None` = allowed unconditionally; `Some(rules)` = allowed if any rule matches.
type Alternatives = Option<Vec<SeccompRule>>;

fn allowlist(allowed: &[SyscallRule]) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    let mut merged: BTreeMap<i64, Alternatives> = BTreeMap::new();
    for rule in allowed {
        let nr = syscall_number(&rule.name)?;
        let alternatives = rule_alternatives(rule)?;
        let slot = merged.entry(nr).or_insert_with(|| Some(Vec::new()));
        match (slot.as_mut(), alternatives) {
            (Some(existing), Some(more)) => existing.extend(more),
            _ => *slot = None,
        }
    }
    Ok(merged.into_iter().map(|(nr, alts)| (nr, alts.unwrap_or_default())).collect())
}

/// Expand one rule's filters (all must hold) into OR-ed seccompiler rules:
/// every `OneOf` multiplies the alternatives, `NoneOf`/`MaskClear` add to each.
fn rule_alternatives(rule: &SyscallRule) -> Result<Alternatives, SeccompError> {
    let mut every: Vec<SeccompCondition> = Vec::new();
    let mut alternatives: Vec<Vec<SeccompCondition>> = vec![Vec::new()];
    for filter in &rule.filters {
        match filter {
            ArgFilter::OneOf { index, values, .. } => {
                let index = arg_index(rule, *index)?;
                if values.is_empty() {
                    return Err(SeccompError::EmptyOneOf { name: rule.name.clone(), index });
                }
                let count = alternatives.len().saturating_mul(values.len());
                if count > MAX_ALTERNATIVES {
                    return Err(SeccompError::TooManyAlternatives { name: rule.name.clone(), count });
                }
                let mut next = Vec::with_capacity(count);
                for base in &alternatives {
                    for value in values {
                        let mut alt = base.clone();
                        alt.push(dword(index, SeccompCmpOp::Eq, *value)?);
                        next.push(alt);
                    }
                }
                alternatives = next;
            }
            ArgFilter::NoneOf { index, values, .. } => {
                let index = arg_index(rule, *index)?;
                for value in values {
                    every.push(dword(index, SeccompCmpOp::Ne, *value)?);
                }
            }
            ArgFilter::MaskClear { index, mask, .. } => {
                let index = arg_index(rule, *index)?;
                every.push(SeccompCondition::new(index, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(*mask), 0)?);
            }
        }
    }
    if every.is_empty() && alternatives.iter().all(Vec::is_empty) {
        return Ok(None);
    }
    let rules = alternatives
        .into_iter()
        .map(|mut conditions| {
            conditions.extend(every.iter().cloned());
            SeccompRule::new(conditions)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(rules))
}

fn arg_index(rule: &SyscallRule, index: u8) -> Result<u8, SeccompError> {
    if index <= 5 {
        Ok(index)
    } else {
        Err(SeccompError::ArgIndex { name: rule.name.clone(), index })
    }
}

fn dword(index: u8, op: SeccompCmpOp, value: u32) -> Result<SeccompCondition, SeccompError> {
    Ok(SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, u64::from(value))?)
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The hand-written head of the program; see the module docs. `enosys.len() <= MAX_ENOSYS`.
fn prefix(default_ret: u32, enosys: &[u32]) -> Vec<libc::sock_filter> {
    // Layout, with k = enosys.len():
    //   0 ld arch; 1 jeq x86_64 ? 3 : 2; 2 ret kill_process; 3 ld nr;
    //   4 jge x32 ? ret_default : 5; 5..5+k jeq enosys[i] ? ret_enosys : next;
    //   5+k ja body; 6+k ret default; 7+k ret errno(ENOSYS); 8+k body
    let k = enosys.len();
    let mut p = Vec::with_capacity(8 + k);
    p.push(stmt(BPF_LD_W_ABS, OFFSET_ARCH));
    p.push(jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0));
    p.push(stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS));
    p.push(stmt(BPF_LD_W_ABS, OFFSET_NR));
    // k <= MAX_ENOSYS (200), so every offset below fits in a u8.
    p.push(jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, (k + 1) as u8, 0));
    for (i, nr) in enosys.iter().enumerate() {
        p.push(jump(BPF_JMP_JEQ_K, *nr, (k + 1 - i) as u8, 0));
    }
    p.push(stmt(BPF_JMP_JA, 2));
    p.push(stmt(BPF_RET_K, default_ret));
    p.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    p
}

#[cfg(test)]
#[path = "seccomp_tests.rs"]
mod tests;
