//! The state of one plugin instance's store: its WASI context (no files, no env, no sockets;
//! stdout/stderr captured into tracing) and resource table.

use tracing::Span;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::stdio::LogStream;

/// Per-instance host state; created fresh for every request.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl InstanceState {
    /// A sandboxed WASI context whose stdout and stderr become log lines under `span`.
    pub fn new(span: Span) -> Self {
        let wasi = WasiCtxBuilder::new()
            .stdout(LogStream::new(span.clone(), "stdout"))
            .stderr(LogStream::new(span, "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self { wasi, table: ResourceTable::new() }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
