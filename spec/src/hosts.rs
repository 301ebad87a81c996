//! Where a plugin's outbound requests may go: `host` or `host:port` entries, written in the
//! manifest or given by a `{{ key }}` setting the operator may override, and the internal domain
//! under which each plugin answers other plugins.

use std::collections::BTreeMap;

use crate::{Manifest, config_reference, override_variable};

/// The domain under which each plugin answers internal requests: `{plugin}.autoflow.internal`.
pub const INTERNAL_DOMAIN: &str = "autoflow.internal";

/// [`INTERNAL_DOMAIN`] as a suffix of the hosts under it.
const INTERNAL_SUFFIX: &str = ".autoflow.internal";

/// Where a request goes, in the one form both the allow-list and the internal match use: the
/// host as a resolver treats it (lower-case, without the root's trailing dot)
/// and the port (the scheme's default when none is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    /// Parses `host`, `host:port` or `[v6]:port`; user info, empty labels and characters no host
    /// name has are refused.
    pub fn parse(text: &str) -> Option<Self> {
        let authority: http::uri::Authority = text.parse().ok()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let host = authority.host().to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host);
        let is_ipv6 = host.starts_with('[') && host.ends_with(']');
        let valid = if is_ipv6 {
            host[1..host.len() - 1].chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        } else {
            !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        valid.then(|| Self { host: host.to_owned(), port: authority.port_u16() })
    }

    /// The authority of a request URI, its port defaulted from the scheme.
    pub fn of_request(uri: &http::Uri) -> Option<Self> {
        let mut authority = Self::parse(uri.authority()?.as_str())?;
        if authority.port.is_none() {
            authority.port = match uri.scheme_str() {
                Some("https") => Some(443),
                _ => Some(80),
            };
        }
        Some(authority)
    }

    /// Whether this allow-list entry admits `target` (an entry without a port admits any port).
    pub fn admits(&self, target: &Authority) -> bool {
        self.host == target.host && self.port.is_none_or(|port| Some(port) == target.port)
    }

    /// Whether the host lies under [`INTERNAL_DOMAIN`], which never reaches a resolver.
    pub fn is_internal(&self) -> bool {
        self.host == INTERNAL_DOMAIN || self.host.ends_with(INTERNAL_SUFFIX)
    }

    /// The plugin an internal host such as `notes.autoflow.internal` names (one label).
    pub fn internal_plugin(&self) -> Option<&str> {
        self.host.strip_suffix(INTERNAL_SUFFIX).filter(|plugin| !plugin.contains('.'))
    }
}

/// The hosts `manifest`'s outbound requests may reach, with each `{{ key }}` entry replaced by the
/// comma-separated hosts of setting `key` in `settings`. Refuses any that could never match a
/// request: every literal entry and every host a setting gives must be `host` or `host:port` (a
/// URL is the usual slip; the message says what to write instead).
pub fn outbound_hosts(manifest: &Manifest, settings: &BTreeMap<String, String>) -> Result<Vec<Authority>, String> {
    let plugin = manifest.name.as_str();
    let mut allowed = Vec::new();
    for entry in &manifest.capabilities.outbound_hosts {
        let (hosts, from) = match config_reference(entry) {
            Some(key) => {
                let value = settings.get(key).map(String::as_str).unwrap_or_default();
                let from = format!(" (from setting `{key}`, {})", override_variable(plugin, key));
                (value.split(',').map(str::trim).filter(|host| !host.is_empty()).collect(), from)
            }
            None => (vec![entry.trim()], String::new()),
        };
        for host in hosts {
            let Some(authority) = Authority::parse(host) else {
                let hint = host
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|uri| uri.authority().map(|authority| format!(": write `{authority}`")))
                    .filter(|_| host.contains("://"))
                    .unwrap_or_default();
                return Err(format!("outbound-hosts entry `{host}`{from} is not `host` or `host:port`{hint}"));
            };
            allowed.push(authority);
        }
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(hosts: &str) -> Manifest {
        let text = format!(
            "name = \"p\"\nversion = \"1\"\nkind = \"task\"\n[[tasks]]\nname = \"t\"\n\
             [capabilities]\noutbound-hosts = {hosts}\n[config]\nhosts = \"a.test\"\n"
        );
        Manifest::parse(&text).unwrap()
    }

    fn settings(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("hosts".to_owned(), value.to_owned())])
    }

    #[test]
    fn settings_the_operator_may_override_are_expanded() {
        let templated = manifest(r#"["secrets.autoflow.internal", "{{ hosts }}"]"#);
        let allowed = outbound_hosts(&templated, &settings(" a.test:8080, ,b.test ")).unwrap();
        let expected: Vec<Authority> =
            ["secrets.autoflow.internal", "a.test:8080", "b.test"].map(|h| Authority::parse(h).unwrap()).into();
        assert_eq!(allowed, expected);
        assert!(outbound_hosts(&manifest(r#"["api.example.com", "[::1]:80"]"#), &settings("")).is_ok());
    }

    #[test]
    fn hosts_given_by_a_setting_are_checked_as_strictly_as_literal_ones() {
        let templated = manifest(r#"["{{ hosts }}"]"#);
        let error = outbound_hosts(&templated, &settings("a.test, https://b.test/x")).unwrap_err();
        assert!(error.contains("`https://b.test/x` (from setting `hosts`, AUTOFLOW_PLUGIN_P__HOSTS)"), "{error}");
        assert!(error.ends_with("write `b.test`"), "{error}");
    }

    #[test]
    fn every_spelling_of_an_internal_host_is_the_same_internal_host() {
        let entry = Authority::parse("secrets.autoflow.internal").unwrap();
        for spelling in [
            "http://secrets.autoflow.internal/api",
            "http://SECRETS.Autoflow.INTERNAL/api",
            "http://secrets.autoflow.internal./api",
            "http://secrets.autoflow.internal:80/api",
            "https://Secrets.autoflow.internal/api",
        ] {
            let target = Authority::of_request(&spelling.parse().unwrap()).unwrap();
            assert!(entry.admits(&target), "{spelling}");
            assert!(target.is_internal(), "{spelling}");
            assert_eq!(target.internal_plugin(), Some("secrets"), "{spelling}");
        }
    }

    #[test]
    fn hosts_under_the_internal_domain_name_one_plugin_or_none() {
        for other in ["autoflow.internal", "a.b.autoflow.internal", "A.B.Autoflow.Internal."] {
            let target = Authority::parse(other).unwrap();
            assert!(target.is_internal(), "{other}");
            assert_eq!(target.internal_plugin(), None, "{other}");
        }
        let near = Authority::parse("secrets.autoflow.internals").unwrap();
        assert!(!near.is_internal());
        for bad in ["", ".autoflow.internal", "a..autoflow.internal", "secrets.autoflow.internal..", "a b"] {
            assert_eq!(Authority::parse(bad), None, "{bad:?}");
        }
    }
}
