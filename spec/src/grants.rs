//! Which manifest line grants each interface a component may import: the one table the host's
//! capability units, its loader and `cargo xtask build-plugins` all read, so a build importing an
//! interface its manifest does not grant is refused before it is published and again at load.

use crate::Manifest;

/// A capability a plugin may import, and the manifest line that grants it.
#[derive(Debug)]
pub struct Capability {
    /// The interface, unversioned (`autoflow:platform/cache`).
    pub interface: &'static str,
    /// The manifest line that grants it, as an error message shows it.
    pub grant: &'static str,
    granted: fn(&Manifest) -> bool,
}

impl Capability {
    /// Whether `manifest` grants it.
    pub fn is_granted(&self, manifest: &Manifest) -> bool {
        (self.granted)(manifest)
    }
}

pub const OUTBOUND_HTTP: Capability = Capability {
    interface: "wasi:http/outgoing-handler",
    grant: "[capabilities] outbound-hosts = [\"host:port\", …]",
    granted: |manifest| !manifest.capabilities.outbound_hosts.is_empty(),
};
pub const IDENTITY: Capability = Capability {
    interface: "autoflow:platform/identity",
    grant: "[capabilities] identity = true",
    granted: |manifest| manifest.capabilities.identity,
};
pub const CACHE: Capability = Capability {
    interface: "autoflow:platform/cache",
    grant: "[capabilities] cache = true",
    granted: |manifest| manifest.capabilities.cache,
};
pub const CRYPTO: Capability = Capability {
    interface: "autoflow:platform/crypto",
    grant: "[capabilities] crypto = true",
    granted: |manifest| manifest.capabilities.crypto,
};
pub const RECORDS: Capability = Capability {
    interface: "autoflow:platform/records",
    grant: "[capabilities.records] <collection> = \"shared\" | \"user\"",
    granted: |manifest| !manifest.capabilities.records.is_empty(),
};
pub const QUEUE: Capability = Capability {
    interface: "autoflow:platform/queue",
    grant: "[capabilities] queue = [\"task-name\", …]",
    granted: |manifest| !manifest.capabilities.queue.is_empty(),
};
pub const PROGRESS: Capability = Capability {
    interface: "autoflow:platform/progress",
    grant: "[[tasks]] (only a plugin that handles tasks reports progress)",
    granted: Manifest::handles_tasks,
};

/// Every grantable capability.
pub const CAPABILITIES: [&Capability; 7] = [&OUTBOUND_HTTP, &IDENTITY, &CACHE, &CRYPTO, &RECORDS, &QUEUE, &PROGRESS];

/// The first of `imports` (interface names, possibly versioned) that `manifest` does not grant,
/// with the capability it needs. Imports no capability governs (WASI, logging, config) are free.
pub fn ungranted<'a>(manifest: &Manifest, imports: &'a [String]) -> Option<(&'a str, &'static Capability)> {
    imports.iter().find_map(|import| {
        let unversioned = import.split('@').next().unwrap_or(import);
        let capability = CAPABILITIES.into_iter().find(|capability| capability.interface == unversioned)?;
        (!capability.is_granted(manifest)).then_some((import.as_str(), capability))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_needs_its_grant_and_free_interfaces_need_none() {
        let manifest = Manifest::parse(
            "name = \"a\"\nversion = \"1\"\nkind = \"feature\"\n[[routes]]\nmethod = \"GET\"\npath = \"/a\"\n\
             [capabilities]\ncache = true\n",
        )
        .unwrap();
        let imports = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();

        let free = imports(&["wasi:io/streams@0.2.4", "autoflow:platform/log@0.1.0", "autoflow:platform/cache@0.1.0"]);
        assert!(ungranted(&manifest, &free).is_none());
        let needs = imports(&["autoflow:platform/cache@0.1.0", "wasi:http/outgoing-handler@0.2.4"]);
        let (import, capability) = ungranted(&manifest, &needs).unwrap();
        assert_eq!((import, capability.grant), ("wasi:http/outgoing-handler@0.2.4", OUTBOUND_HTTP.grant));
        let (_, capability) = ungranted(&manifest, &imports(&["autoflow:platform/progress@0.1.0"])).unwrap();
        assert_eq!(capability.interface, "autoflow:platform/progress");
    }
}
