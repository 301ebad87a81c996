//! Precompiled components on disk, keyed by the component's content hash and the engine's
//! compatibility hash, so a restart or a reload of an unchanged component skips compilation.
//!
//! Only this host writes the cache directory (created owner-only); deserializing an artifact is
//! `unsafe` in wasmtime precisely because its contents are trusted machine code.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a loaded component's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactSource {
    /// Compiled now (and written to the cache, if there is one).
    Compiled,
    /// Read from the on-disk cache; nothing was compiled.
    Cached,
}

impl ArtifactSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactSource::Compiled => "compiled",
            ArtifactSource::Cached => "cached",
        }
    }
}

/// A directory of `<content-hash>-<engine-hash>.cwasm` files.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_hash: String,
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache directory for artifacts of `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        crate::private_fs::create_dir(dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Self { dir: dir.to_owned(), engine_hash })
    }

    fn path(&self, content_hash: &str) -> PathBuf {
        self.dir.join(format!("{content_hash}-{}.cwasm", self.engine_hash))
    }

    /// The cached component for `content_hash`, or a fresh compile of `bytes` stored for next time.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        content_hash: &str,
    ) -> wasmtime::Result<(Component, ArtifactSource)> {
        let path = self.path(content_hash);
        if path.is_file() {
            // SAFETY: files in this directory are only ever written by `store` below, from
            // `Component::serialize` of this engine configuration (the name carries its hash).
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, ArtifactSource::Cached)),
                Err(error) => tracing::warn!(path = %path.display(), %error, "discarding unusable cached artifact"),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(error) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), %error, "could not cache the compiled component");
        }
        Ok((component, ArtifactSource::Compiled))
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        let staging = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        std::io::Write::write_all(&mut crate::private_fs::file_options().open(&staging)?, &component.serialize()?)?;
        std::fs::rename(&staging, path)?;
        Ok(())
    }
}

/// Feeds `Hash` output into SHA-256, so the key is stable across processes and builds.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only the SHA-256 digest is read")
    }
}
