//! The state of one plugin instance's store: its WASI context (no files, no env, no sockets;
//! stdout/stderr captured into tracing), resource table and resource limits.

use tracing::Span;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::capabilities::Grants;

use super::stdio::LogStream;

/// Per-instance host state; created fresh for every request.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    /// What the plugin's manifest grants it.
    pub(crate) grants: Grants,
    /// The user this instance acts for (the request's principal), if any.
    pub(crate) user_id: Option<String>,
    pub(super) limits: InstanceLimits,
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

impl InstanceState {
    /// A sandboxed WASI context whose stdout and stderr become log lines under `span`, with
    /// linear memory capped at `memory_bytes`, the capabilities in `grants`, acting for `user_id`.
    pub fn new(span: Span, memory_bytes: usize, grants: Grants, user_id: Option<String>) -> Self {
        let wasi = WasiCtxBuilder::new()
            .stdout(LogStream::new(span.clone(), "stdout"))
            .stderr(LogStream::new(span, "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            grants,
            user_id,
            limits: InstanceLimits { memory_bytes, memory_exceeded: false },
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { hooks: &mut self.grants.outbound, table: &mut self.table, ctx: &mut self.http }
    }
}
