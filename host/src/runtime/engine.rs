//! Engine configuration for untrusted code: component model, async, epoch interruption and the
//! pooling instance allocator (falling back to on-demand allocation where the machine refuses
//! the pool's virtual-memory reservation).

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::Limits;

/// Which instance allocator the engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatorKind {
    Pooling,
    OnDemand,
}

/// Bytes of each linear memory, table and async stack kept resident between instances, so a
/// fresh instance reuses warm pages instead of faulting them in again.
const KEEP_RESIDENT: usize = 1 << 20;

pub(super) fn build(limits: &Limits) -> wasmtime::Result<(Engine, AllocatorKind)> {
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(limits)));
    match Engine::new(&config) {
        Ok(engine) => Ok((engine, AllocatorKind::Pooling)),
        Err(error) => {
            tracing::warn!(%error, "pooling allocator unavailable; falling back to on-demand allocation");
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Ok((Engine::new(&config)?, AllocatorKind::OnDemand))
        }
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config
}

fn pooling(limits: &Limits) -> PoolingAllocationConfig {
    let slots = limits.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(4))
        .total_memories(slots.saturating_mul(2))
        .total_tables(slots.saturating_mul(2))
        .total_stacks(slots)
        .max_memory_size(limits.plugin_memory_bytes)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .async_stack_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    pool
}
