//! A tiny classic-BPF interpreter for the instructions seccomp filters use, so tests
//! can run a compiled program against hand-made `seccomp_data` without a kernel.

use thiserror::Error;

/// `struct seccomp_data` as the kernel lays it out (64 bytes, little-endian).
#[derive(Debug, Clone, Copy)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    pub fn x86_64(nr: i64, args: [u64; 6]) -> Self {
        // Truncation mirrors the kernel: `nr` is an int in seccomp_data.
        SeccompData { nr: nr as i32, arch: crate::seccomp::AUDIT_ARCH_X86_64, instruction_pointer: 0, args }
    }

    fn bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&self.nr.to_le_bytes());
        b[4..8].copy_from_slice(&self.arch.to_le_bytes());
        b[8..16].copy_from_slice(&self.instruction_pointer.to_le_bytes());
        for (i, arg) in self.args.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
        }
        b
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VmError {
    #[error("instruction {pc}: unsupported opcode {code:#06x}")]
    Opcode { pc: usize, code: u16 },
    #[error("instruction {pc}: load at offset {offset} outside seccomp_data or unaligned")]
    Load { pc: usize, offset: u32 },
    #[error("ran off the end of the program")]
    FellOff,
}

/// Run `program` on `data`; returns the filter's return value (action | data).
pub fn run(program: &[libc::sock_filter], data: &SeccompData) -> Result<u32, VmError> {
    let bytes = data.bytes();
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    while let Some(insn) = program.get(pc) {
        let next = pc + 1;
        match insn.code {
            0x20 => {
                let off = insn.k as usize;
                let word =
                    bytes.get(off..off + 4).filter(|_| off % 4 == 0).ok_or(VmError::Load { pc, offset: insn.k })?;
                acc = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                pc = next;
            }
            0x54 => {
                acc &= insn.k;
                pc = next;
            }
            0x05 => pc = next + insn.k as usize,
            0x15 | 0x25 | 0x35 | 0x45 => {
                let taken = match insn.code {
                    0x15 => acc == insn.k,
                    0x25 => acc > insn.k,
                    0x35 => acc >= insn.k,
                    _ => acc & insn.k != 0,
                };
                pc = next + usize::from(if taken { insn.jt } else { insn.jf });
            }
            0x06 => return Ok(insn.k),
            code => return Err(VmError::Opcode { pc, code }),
        }
    }
    Err(VmError::FellOff)
}
