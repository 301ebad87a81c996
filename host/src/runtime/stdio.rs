//! A plugin's stdout and stderr, turned into `tracing` events line by line under the span of the
//! call the instance is serving. Output is bounded per call: past [`OUTPUT_BUDGET`] bytes of a
//! stream the rest is dropped and counted.
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

/// Most bytes of stdout or stderr logged per call.
pub const OUTPUT_BUDGET: usize = 256 * 1024;
/// A line longer than this is logged in pieces.
const MAX_LINE: usize = 8 * 1024;

/// Where an instance's output goes for the call it serves now: that call's span, and what is
/// left of each stream's budget. A warm instance's is rebound for each call. Cheap to clone.
#[derive(Clone)]
pub struct CallOutput(Arc<Mutex<OutputState>>);

struct OutputState {
    span: Span,
    /// Per [`Stream`]: bytes the call may still log, and bytes dropped past that.
    budgets: [(usize, usize); 2],
}

/// One of an instance's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl CallOutput {
    pub fn new(span: Span) -> Self {
        Self(Arc::new(Mutex::new(OutputState { span, budgets: [(OUTPUT_BUDGET, 0); 2] })))
    }

    /// Sends what follows to the next call's `span`, each stream with its whole budget again.
    pub fn rebind(&self, span: Span) {
        let mut state = self.0.lock().expect("output state");
        state.report_dropped();
        *state = OutputState { span, budgets: [(OUTPUT_BUDGET, 0); 2] };
    }

    fn span(&self) -> Span {
        self.0.lock().expect("output state").span.clone()
    }

    /// How many of `wanted` bytes of `stream` may still be logged in this call.
    fn take(&self, stream: Stream, wanted: usize) -> usize {
        let mut state = self.0.lock().expect("output state");
        let (left, dropped) = &mut state.budgets[stream as usize];
        let taken = wanted.min(*left);
        *left -= taken;
        *dropped += wanted - taken;
        taken
    }
}

impl OutputState {
    fn report_dropped(&mut self) {
        for (stream, (_, dropped)) in [Stream::Stdout, Stream::Stderr].into_iter().zip(&mut self.budgets) {
            if *dropped > 0 {
                let (stream, dropped) = (stream.name(), std::mem::take(dropped));
                self.span.in_scope(
                    || tracing::warn!(target: "autoflow::plugin", stream, dropped, "plugin output over budget was dropped"),
                );
            }
        }
    }
}

impl Drop for OutputState {
    fn drop(&mut self) {
        self.report_dropped();
    }
}

/// Reads the panic report a plugin writes to stderr, whichever stream each line arrives on:
/// logs it as one ERROR event under the call's span and keeps its message for the call's error.
pub struct PanicReader {
    output: CallOutput,
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
    pub fn new(output: CallOutput) -> Arc<Self> {
        Arc::new(Self { output, state: Mutex::default() })
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
        self.output
            .span()
            .in_scope(|| tracing::error!(target: "autoflow::plugin", %location, "plugin panicked: {message}"));
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
    output: CallOutput,
    stream: Stream,
    /// Where panic reports go (stderr only).
    panics: Option<Arc<PanicReader>>,
}

impl LogStream {
    pub fn new(output: CallOutput, stream: Stream) -> Self {
        Self { output, stream, panics: None }
    }

    /// A stream whose panic reports `reader` reads.
    pub fn with_panics(self, reader: Arc<PanicReader>) -> Self {
        Self { panics: Some(reader), ..self }
    }

    fn writer(&self) -> LineLogger {
        LineLogger { output: self.output.clone(), stream: self.stream, line: Vec::new(), panics: self.panics.clone() }
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
    output: CallOutput,
    stream: Stream,
    line: Vec<u8>,
    panics: Option<Arc<PanicReader>>,
}

impl LineLogger {
    fn push(&mut self, mut data: &[u8]) {
        data = &data[..self.output.take(self.stream, data.len())];
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
        let stream = self.stream.name();
        self.output.span().in_scope(|| tracing::info!(target: "autoflow::plugin", stream, "{text}"));
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.emit();
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
        let output = CallOutput::new(Span::none());
        let reader = PanicReader::new(output.clone());
        let stderr = LogStream::new(output, Stream::Stderr).with_panics(reader.clone());
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

    #[test]
    fn each_call_has_the_whole_budget_again() {
        let output = CallOutput::new(Span::none());
        let stdout = LogStream::new(output.clone(), Stream::Stdout);
        stdout.writer().push(&vec![b'x'; OUTPUT_BUDGET - 10]);
        assert_eq!(output.take(Stream::Stdout, 100), 10, "the rest of this call's budget");
        assert_eq!(output.take(Stream::Stderr, 100), 100, "each stream has its own");
        output.rebind(Span::none());
        assert_eq!(output.take(Stream::Stdout, 100), 100, "the next call starts afresh");
    }
}
