//! Where a client command's output goes: results on stdout, flushed per write so a followed
//! stream reaches a pipe item by item; remarks and the error line on stderr. A closed
//! stdout (`| head`) becomes [`CommandError::ReaderGone`] instead of a panic.

use super::failure::{error_line, CommandError};
use super::{json_out, render};
use crate::terminal_text::{self, json_line};
use serde_json::Value;
use std::io::Write;
use wf_protocol::control::Reply;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

pub struct Console<W: Write> {
    out: W,
    format: Format,
    /// What the command was doing (`stop alpha`), for remarks and the error line.
    context: String,
}

impl Console<std::io::StdoutLock<'static>> {
    pub fn stdout(format: Format, context: String) -> Self {
        Self::new(std::io::stdout().lock(), format, context)
    }
}

impl<W: Write> Console<W> {
    pub fn new(out: W, format: Format, context: String) -> Self {
        Self { out, format, context }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// A non-streaming command's result: one JSON document, or the human rendering and
    /// its remarks.
    pub fn reply(&mut self, reply: &Reply) -> Result<(), CommandError> {
        match self.format {
            Format::Json => self.json(&json_out::reply_document(reply)),
            Format::Human => {
                self.text(&render::reply_text(reply))?;
                render::reply_notes(reply).iter().for_each(|note| self.note(note));
                Ok(())
            }
        }
    }

    pub fn text(&mut self, text: &str) -> Result<(), CommandError> {
        self.out.write_all(text.as_bytes()).and_then(|()| self.out.flush()).map_err(CommandError::from_output)
    }

    /// One JSON value on one line, C1 and bidi characters escaped (still the same JSON).
    pub fn json(&mut self, value: &Value) -> Result<(), CommandError> {
        self.text(&(json_line(value) + "\n"))
    }

    /// A remark on stderr: `wfsandbox: <context>: <note>`. A failing stderr is ignored;
    /// there is nowhere left to report it.
    pub fn note(&self, note: &str) {
        let line = terminal_text::escape(&format!("wfsandbox: {}: {note}", self.context));
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    /// The command's one error line on stderr.
    pub fn error(&self, error: &CommandError) {
        let _ = writeln!(std::io::stderr(), "{}", error_line(&self.context, error));
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}
