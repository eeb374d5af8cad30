//! The daemon's lifecycle bookkeeping (issue 3, point 4), free of any runtime or syscall:
//! the plugin state machine ([`state`]), how an end is read from a wait status ([`exit`]), the
//! restart decision ([`restart`]), the bounded per-plugin log buffer ([`log_buffer`], with
//! [`rate_cap`] and [`log_sanitizer`]) and the plugin table ([`registry`]). Time comes from a
//! [`crate::clock::Clock`], so tests drive it with [`crate::clock::FakeClock`] and never sleep.

pub mod exit;
pub mod log_buffer;
pub mod log_sanitizer;
pub mod rate_cap;
pub mod registry;
pub mod restart;
pub mod state;

pub use crate::clock::{Clock, FakeClock, SystemClock};
pub use exit::Exit;
pub use log_buffer::{LogBuffer, LogLimits, LogPiece, LogRead, LogStream, LogTime, PushOutcome};
pub use registry::{ExitOutcome, PluginEntry, PluginRow, Registry, RegistryError, RestartTicket, MAX_PLUGINS};
pub use restart::{next_action, NextAction, RestartHistory, RestartRule};
pub use state::{Event, InvalidTransition, PluginState};
