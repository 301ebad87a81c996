//! The `bindgen!`s of the `autoflow:platform` contract: host-side types and traits for every
//! interface plugins import, and the two exports: `handler` (features) and `task-handler` (tasks).
//! The task world imports the feature world's interfaces, whose bindings it reuses, and
//! `progress`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "autoflow:platform/feature",
    imports: {
        "autoflow:platform/identity": async,
        "autoflow:platform/cache": async,
        "autoflow:platform/crypto": async,
        "autoflow:platform/records": async,
        "autoflow:platform/queue": async,
    },
    exports: { default: async },
});

/// The `task` world: the imports above and `progress`, exporting `task-handler`.
pub mod task {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "autoflow:platform/task",
        imports: { default: async },
        exports: { default: async },
        with: {
            "autoflow:platform/types": super::autoflow::platform::types,
            "autoflow:platform/log": super::autoflow::platform::log,
            "autoflow:platform/config": super::autoflow::platform::config,
            "autoflow:platform/cache": super::autoflow::platform::cache,
            "autoflow:platform/crypto": super::autoflow::platform::crypto,
            "autoflow:platform/identity": super::autoflow::platform::identity,
            "autoflow:platform/records": super::autoflow::platform::records,
            "autoflow:platform/queue": super::autoflow::platform::queue,
        },
    });
}
