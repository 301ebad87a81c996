//! The state of one plugin instance's store: its WASI context (no files, no env, no sockets;
//! stdout/stderr captured into tracing), resource table, resource limits and the capabilities it
//! was granted, bound to its call.

use std::sync::Arc;

use tracing::Span;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::CapabilitySet;
use super::stdio::{CallOutput, LogStream, PanicReader, Stream};

/// Per-instance host state, created with the instance; what belongs to one call (the grants bound
/// to it, where its output goes) is rebound when a warm instance serves another call.
pub struct InstanceState<G> {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    /// What the plugin's manifest grants it, bound to this instance's call.
    pub grants: G,
    pub(super) limits: InstanceLimits,
    /// Reads a panic the plugin reports on stderr.
    pub(super) panic: Arc<PanicReader>,
    output: CallOutput,
}

/// Most elements any table of an instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Caps an instance's memory and tables, remembering whether it refused a memory growth so a
/// resulting trap can be reported as what it is.
pub struct InstanceLimits {
    memory_bytes: usize,
    pub(super) memory_exceeded: bool,
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        self.memory_exceeded |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

impl<G: CapabilitySet> InstanceState<G> {
    /// A sandboxed WASI context whose stdout and stderr become log lines under `span`, with
    /// linear memory capped at `memory_bytes` and the capabilities in `grants`.
    pub fn new(span: Span, memory_bytes: usize, grants: G) -> Self {
        let output = CallOutput::new(span);
        let panic = PanicReader::new(output.clone());
        let wasi = WasiCtxBuilder::new()
            .stdout(LogStream::new(output.clone(), Stream::Stdout))
            .stderr(LogStream::new(output.clone(), Stream::Stderr).with_panics(panic.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            grants,
            limits: InstanceLimits { memory_bytes, memory_exceeded: false },
            panic,
            output,
        }
    }

    /// Binds the instance to its next call: `grants` bound to that call, output under `span`.
    pub(super) fn rebind(&mut self, span: Span, grants: G) {
        self.grants = grants;
        self.output.rebind(span);
    }
}

impl<G: Send + 'static> WasiView for InstanceState<G> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl<G: CapabilitySet> WasiHttpView for InstanceState<G> {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { hooks: self.grants.http_hooks(), table: &mut self.table, ctx: &mut self.http }
    }
}
