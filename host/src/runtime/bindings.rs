//! The one `bindgen!` for the `autoflow:platform` contract: host-side types and traits for every
//! interface plugins import or export.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "autoflow:platform/feature",
    imports: {
        "autoflow:platform/identity": async,
        "autoflow:platform/cache": async,
        "autoflow:platform/crypto": async,
        "autoflow:platform/records": async,
    },
    exports: { default: async },
});
