//! A plugin's stdout and stderr, turned into `tracing` events line by line under the request's span.
//! Output is bounded per instance: past [`OUTPUT_BUDGET`] bytes the rest is dropped and counted.

use std::io;
use std::pin::Pin;
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

/// Factory for a plugin's stdout or stderr.
#[derive(Clone)]
pub struct LogStream {
    span: Span,
    stream: &'static str,
}

impl LogStream {
    pub fn new(span: Span, stream: &'static str) -> Self {
        Self { span, stream }
    }

    fn writer(&self) -> LineLogger {
        LineLogger { span: self.span.clone(), stream: self.stream, line: Vec::new(), budget: OUTPUT_BUDGET, dropped: 0 }
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
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        self.span.in_scope(|| tracing::info!(target: "autoflow::plugin", stream = self.stream, "{text}"));
        self.line.clear();
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
