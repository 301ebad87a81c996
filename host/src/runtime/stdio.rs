//! A plugin's stdout and stderr, turned into `tracing` events line by line under the request's span.
//! Output is bounded per instance: past [`OUTPUT_BUDGET`] bytes the rest is dropped and counted.
//! A Rust panic's report on stderr (`thread '…' panicked at file:line:col:`, the message, the
//! backtrace note) becomes one ERROR event, and its message is kept for the call's error.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tracing::Span;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Most bytes of stdout or stderr logged per instance.
pub const OUTPUT_BUDGET: usize = 256 * 1024;
/// A line longer than this is logged in pieces.
const MAX_LINE: usize = 8 * 1024;

/// Reads the panic report a plugin writes to stderr, whichever stream each line arrives on:
/// logs it as one ERROR event under the call's span and keeps its message for the call's error.
pub struct PanicReader {
    span: Span,
    state: Mutex<PanicState>,
}

#[derive(Default)]
struct PanicState {
    /// A report being read: where the panic happened and its message lines so far.
    reading: Option<(String, Vec<String>)>,
    /// The message of the last report read.
    message: Option<String>,
}

impl PanicReader {
    pub fn new(span: Span) -> Arc<Self> {
        Arc::new(Self { span, state: Mutex::default() })
    }

    /// Whether `line` belongs to a panic report (and was taken as part of it).
    fn consume(&self, line: &str) -> bool {
        let mut state = self.state.lock().expect("panic state");
        if let Some(location) = panic_location(line) {
            self.finish(&mut state);
            state.reading = Some((location.to_owned(), Vec::new()));
            return true;
        }
        let Some((_, message)) = &mut state.reading else { return false };
        if line.starts_with("note: ") {
            self.finish(&mut state);
        } else {
            message.push(line.to_owned());
        }
        true
    }

    /// The message of the panic the plugin reported, if it reported one.
    pub fn take_message(&self) -> Option<String> {
        let mut state = self.state.lock().expect("panic state");
        self.finish(&mut state);
        state.message.take()
    }

    fn finish(&self, state: &mut PanicState) {
        let Some((location, lines)) = state.reading.take() else { return };
        let message = lines.join("\n");
        self.span.in_scope(|| tracing::error!(target: "autoflow::plugin", %location, "plugin panicked: {message}"));
        state.message = Some(message);
    }
}

/// Where the panic a report line announces happened (`src/lib.rs:44:5`), if it is such a line
/// (`thread '<unnamed>' (1) panicked at src/lib.rs:44:5:`).
fn panic_location(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("thread '")?;
    let (_, location) = rest.split_once(" panicked at ")?;
    Some(location.trim_end_matches(':'))
}

/// Factory for a plugin's stdout or stderr.
#[derive(Clone)]
pub struct LogStream {
    span: Span,
    stream: &'static str,
    /// Where panic reports go (stderr only).
    panics: Option<Arc<PanicReader>>,
}

impl LogStream {
    pub fn new(span: Span, stream: &'static str) -> Self {
        Self { span, stream, panics: None }
    }

    /// A stream whose panic reports `reader` reads.
    pub fn with_panics(self, reader: Arc<PanicReader>) -> Self {
        Self { panics: Some(reader), ..self }
    }

    fn writer(&self) -> LineLogger {
        LineLogger {
            span: self.span.clone(),
            stream: self.stream,
            line: Vec::new(),
            budget: OUTPUT_BUDGET,
            dropped: 0,
            panics: self.panics.clone(),
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }
}

/// Buffers bytes until a newline, then logs the line.
struct LineLogger {
    span: Span,
    stream: &'static str,
    line: Vec<u8>,
    budget: usize,
    dropped: usize,
    panics: Option<Arc<PanicReader>>,
}

impl LineLogger {
    fn push(&mut self, mut data: &[u8]) {
        let taken = data.len().min(self.budget);
        self.dropped += data.len() - taken;
        self.budget -= taken;
        data = &data[..taken];
        while let Some(newline) = data.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&data[..newline]);
            self.emit();
            data = &data[newline + 1..];
        }
        self.line.extend_from_slice(data);
        if self.line.len() >= MAX_LINE {
            self.emit();
        }
    }

    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line).trim_end_matches('\r').to_owned();
        self.line.clear();
        if self.panics.as_ref().is_some_and(|reader| reader.consume(&text)) {
            return;
        }
        self.span.in_scope(|| tracing::info!(target: "autoflow::plugin", stream = self.stream, "{text}"));
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.emit();
        if self.dropped > 0 {
            let (stream, dropped) = (self.stream, self.dropped);
            self.span.in_scope(
                || tracing::warn!(target: "autoflow::plugin", stream, dropped, "plugin output over budget was dropped"),
            );
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

impl OutputStream for LineLogger {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for LineLogger {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().push(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().emit();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_report_becomes_its_message_whichever_stream_its_lines_use() {
        let reader = PanicReader::new(Span::none());
        let stderr = LogStream::new(Span::none(), "stderr").with_panics(reader.clone());
        stderr.writer().push(b"before\n\nthread '<unnamed>' (1) panicked at src/lib.rs:44:5:\n");
        stderr.writer().push(b"test-tasks traps on purpose\n");
        stderr.writer().push(b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n");
        assert_eq!(reader.take_message().as_deref(), Some("test-tasks traps on purpose"));
        assert_eq!(reader.take_message(), None, "taken once");

        stderr.writer().push(b"thread 'main' panicked at a.rs:1:1:\nfirst line\nsecond line\n");
        assert_eq!(reader.take_message().as_deref(), Some("first line\nsecond line"), "a report cut short counts");
        assert_eq!(panic_location("thread 'main' panicked at a.rs:1:1:"), Some("a.rs:1:1"));
        assert_eq!(panic_location("the thread panicked at"), None);
    }
}
