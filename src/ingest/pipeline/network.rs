//! Network processors of Elasticsearch's ingest node that the Windows pipelines call:
//! `convert` to `ip`, `community_id` and `registered_domain`.

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

/// Whether `text` is an IPv4 or IPv6 address as Elasticsearch's `InetAddresses.forString`
/// accepts it (dotted quads without leading zeros, RFC 4291 IPv6 text).
pub fn is_ip(text: &str) -> bool {
    text.parse::<IpAddr>().is_ok()
}

/// Community ID v1 (seed 0) of a flow, as the `community_id` processor computes it from
/// `source.ip`/`port`, `destination.ip`/`port` and `network.transport`. Only transports with
/// ports are handled (TCP, UDP, SCTP: all Sysmon reports); `None` where the processor fails.
pub fn community_id(
    source: (&str, i64),
    destination: (&str, i64),
    transport: &str,
) -> Option<String> {
    let protocol: u8 = match transport.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        _ => return None,
    };
    let endpoint = |(ip, port): (&str, i64)| -> Option<(Vec<u8>, u16)> {
        let bytes = match ip.parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        Some((bytes, u16::try_from(port).ok()?))
    };
    let (mut a, mut b) = (endpoint(source)?, endpoint(destination)?);
    if a.0.len() != b.0.len() {
        return None;
    }
    if (&a.0, a.1) > (&b.0, b.1) {
        std::mem::swap(&mut a, &mut b);
    }
    let mut hasher = Sha1::new();
    hasher.update(0u16.to_be_bytes());
    hasher.update(&a.0);
    hasher.update(&b.0);
    hasher.update([protocol, 0]);
    hasher.update(a.1.to_be_bytes());
    hasher.update(b.1.to_be_bytes());
    let digest = hasher.finalize();
    Some(format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

/// What the `registered_domain` processor writes under its target object.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DomainParts {
    pub domain: String,
    pub registered_domain: Option<String>,
    pub top_level_domain: String,
    pub subdomain: Option<String>,
}

/// `registered_domain` with the Apache HttpClient `PublicSuffixMatcher` semantics
/// Elasticsearch uses (ICANN and private rules): nothing for a name under an unknown
/// top-level domain (`wpad`, `host.local`); the name alone for a public suffix itself.
///
/// The suffix list is the one of the `psl` crate, which is newer than the list bundled with
/// Elasticsearch's HttpClient: names under suffixes added since (`akamaized.net`) split
/// differently than in an Elasticsearch of that age.
pub fn registered_domain(name: &str) -> Option<DomainParts> {
    if name.starts_with('.') || name.ends_with('.') {
        return None;
    }
    let lower = name.to_lowercase();
    let suffix = psl::suffix(lower.as_bytes()).filter(psl::Suffix::is_known)?;
    let suffix = std::str::from_utf8(suffix.as_bytes()).ok()?;
    if suffix.len() == lower.len() {
        return Some(DomainParts {
            domain: name.to_string(),
            top_level_domain: name.to_string(),
            ..DomainParts::default()
        });
    }
    let head = &lower[..lower.len() - suffix.len() - 1];
    let label = head.rsplit('.').next().unwrap_or(head);
    let root = format!("{label}.{suffix}");
    let subdomain = name
        .rfind(&format!(".{root}"))
        .filter(|&i| i > 0)
        .map(|i| name[..i].to_string());
    Some(DomainParts {
        domain: name.to_string(),
        top_level_domain: root[label.len() + 1..].to_string(),
        registered_domain: Some(root),
        subdomain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_id_matches_the_reference_vector() {
        // The Community ID specification's TCP example (seed 0).
        assert_eq!(
            community_id(("128.232.110.120", 34855), ("66.35.250.204", 80), "tcp").as_deref(),
            Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
        );
        assert_eq!(community_id(("1.2.3.4", 1), ("::1", 2), "tcp"), None);
        assert_eq!(community_id(("1.2.3.4", 1), ("1.2.3.5", 2), "icmp"), None);
    }

    #[test]
    fn registered_domains_split_as_elasticsearch_does() {
        let d = registered_domain("go.microsoft.com").expect("known suffix");
        assert_eq!(d.registered_domain.as_deref(), Some("microsoft.com"));
        assert_eq!(d.top_level_domain, "com");
        assert_eq!(d.subdomain.as_deref(), Some("go"));
        let d = registered_domain("www.example.co.uk").expect("known suffix");
        assert_eq!(d.registered_domain.as_deref(), Some("example.co.uk"));
        assert_eq!(d.top_level_domain, "co.uk");
        assert_eq!(registered_domain("wpad"), None);
        assert_eq!(registered_domain("box.local"), None);
        let d = registered_domain("com").expect("a suffix itself");
        assert_eq!(
            (d.domain.as_str(), d.top_level_domain.as_str()),
            ("com", "com")
        );
        assert_eq!(d.registered_domain, None);
        let upper = registered_domain("WWW.Example.COM").expect("known suffix");
        assert_eq!(upper.registered_domain.as_deref(), Some("example.com"));
        assert_eq!(
            upper.subdomain, None,
            "the subdomain match is case-sensitive"
        );
    }
}
