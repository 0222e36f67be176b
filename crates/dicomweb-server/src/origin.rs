//! The base URL clients address the server by, for the RetrieveURL values of STOW and QIDO responses.
//!
//! `Host` and the forwarding headers (`Forwarded`, `X-Forwarded-Host`, `X-Forwarded-Proto`) are the client's to
//! choose, and viewers follow the URLs built from them. So: a configured `public_url` wins; without one, the
//! forwarding headers count only when the connection comes from a configured trusted proxy; and a value taken
//! from a header is used only when it is `http`/`https` (scheme) or a hostname or IP address with an optional
//! port (host). Otherwise the server's own scheme and the `Host` header (if valid), else its bind address, are
//! used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderName};
use ipnet::IpNet;

/// A validated public base URL: `http` or `https`, a host, an optional port and path prefix; no user
/// information, query or fragment, and no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(text: &str) -> anyhow::Result<PublicUrl> {
        let refuse = |why: &str| {
            anyhow::anyhow!(
                "public URL \"{text}\" {why}: give http(s)://host[:port][/path], e.g. https://pacs.example.org/dicomweb"
            )
        };
        let url =
            url::Url::parse(text.trim()).map_err(|e| refuse(&format!("is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse("must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(refuse("has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("must not hold user information"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refuse("must not have a query or a fragment"));
        }
        Ok(PublicUrl(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A trusted proxy: an IP address (`10.0.0.7`, `::1`) or a network in CIDR notation (`10.0.0.0/8`).
pub fn parse_trusted_proxy(text: &str) -> anyhow::Result<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            anyhow::anyhow!(
                "trusted proxy \"{text}\" is neither an IP address nor a network (10.0.0.0/8)"
            )
        })
}

/// How the base URL of a request is found (see the module documentation).
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    public_url: Option<PublicUrl>,
    trusted_proxies: Vec<IpNet>,
    /// The listener's scheme (`https` with TLS).
    own_scheme: &'static str,
    /// The bind address, for requests that name no valid host (`localhost` for an unspecified address).
    own_authority: String,
}

/// What a request says about where it was sent: its peer and the headers that name a host or a scheme.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestOrigin<'a> {
    pub peer: Option<IpAddr>,
    pub host: Option<&'a str>,
    pub forwarded: Option<&'a str>,
    pub x_forwarded_host: Option<&'a str>,
    pub x_forwarded_proto: Option<&'a str>,
}

impl<'a> RequestOrigin<'a> {
    pub fn of(req: &'a HttpRequest) -> RequestOrigin<'a> {
        // The last field line: the one the nearest proxy added.
        let last = |name: HeaderName| {
            req.headers()
                .get_all(name)
                .last()
                .and_then(|v| v.to_str().ok())
        };
        RequestOrigin {
            peer: req.peer_addr().map(|a| a.ip()),
            // HTTP/2 carries the host in the request's authority.
            host: last(header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str())),
            forwarded: last(header::FORWARDED),
            x_forwarded_host: last(HeaderName::from_static("x-forwarded-host")),
            x_forwarded_proto: last(HeaderName::from_static("x-forwarded-proto")),
        }
    }
}

impl OriginPolicy {
    pub fn new(
        public_url: Option<PublicUrl>,
        trusted_proxies: Vec<IpNet>,
        tls: bool,
        bind: SocketAddr,
    ) -> OriginPolicy {
        let own_authority = if bind.ip().is_unspecified() {
            format!("localhost:{}", bind.port())
        } else {
            bind.to_string()
        };
        OriginPolicy {
            public_url,
            trusted_proxies,
            own_scheme: if tls { "https" } else { "http" },
            own_authority,
        }
    }

    /// The base URL (`scheme://host[:port][/path]`, no trailing slash) a request's URLs start with.
    pub fn base_url(&self, request: &RequestOrigin<'_>) -> String {
        if let Some(url) = &self.public_url {
            return url.as_str().to_owned();
        }
        let trusted = request.peer.is_some_and(|peer| {
            // A v4 peer on a dual-stack listener arrives as ::ffff:a.b.c.d.
            let peer = peer.to_canonical();
            self.trusted_proxies.iter().any(|net| net.contains(&peer))
        });
        let (mut schemes, mut hosts) = (Vec::new(), Vec::new());
        if trusted {
            let forwarded = request.forwarded;
            schemes.push(forwarded.and_then(|f| forwarded_pair(f, "proto")));
            schemes.push(request.x_forwarded_proto.and_then(last_element));
            hosts.push(forwarded.and_then(|f| forwarded_pair(f, "host")));
            hosts.push(request.x_forwarded_host.and_then(last_element));
        }
        hosts.push(request.host);
        let scheme = schemes
            .into_iter()
            .flatten()
            .find_map(valid_scheme)
            .unwrap_or(self.own_scheme);
        let host = hosts
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|h| is_valid_authority(h))
            .unwrap_or(&self.own_authority);
        format!("{scheme}://{host}")
    }
}

/// The last element of a comma-separated header value (the one the nearest proxy appended).
fn last_element(value: &str) -> Option<&str> {
    value.rsplit(',').next().map(str::trim)
}

/// The value of `key` in the last element of a `Forwarded` header (RFC 7239), unquoted.
fn forwarded_pair<'a>(forwarded: &'a str, key: &str) -> Option<&'a str> {
    last_element(forwarded)?.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"'))
    })
}

fn valid_scheme(scheme: &str) -> Option<&'static str> {
    let scheme = scheme.trim();
    if scheme.eq_ignore_ascii_case("https") {
        Some("https")
    } else if scheme.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// `host[:port]`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port from 1 to 65535.
pub fn is_valid_authority(text: &str) -> bool {
    let (host_ok, port) = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, after)) => (ip.parse::<Ipv6Addr>().is_ok(), after),
            None => return false,
        },
        None => {
            let end = text.find(':').unwrap_or(text.len());
            (is_hostname(&text[..end]), &text[end..])
        }
    };
    host_ok
        && (port.is_empty()
            || port.strip_prefix(':').is_some_and(|p| {
                p.len() <= 5
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && p.parse::<u16>().is_ok_and(|n| n > 0)
            }))
}

/// Labels of letters, digits and inner hyphens, at most 63 characters each and 253 in all. A name whose last
/// label is numeric (or hexadecimal `0x…`) is an IPv4 address to URL parsers, so it must be one.
fn is_hostname(host: &str) -> bool {
    let labels_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let last = host.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x"));
    labels_ok && (!numeric || host.parse::<Ipv4Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(trusted: &[&str]) -> OriginPolicy {
        OriginPolicy::new(
            None,
            trusted
                .iter()
                .map(|t| parse_trusted_proxy(t).unwrap())
                .collect(),
            false,
            "127.0.0.1:8080".parse().unwrap(),
        )
    }

    fn from(peer: &str) -> RequestOrigin<'static> {
        RequestOrigin {
            peer: Some(peer.parse().unwrap()),
            ..Default::default()
        }
    }

    const HOSTILE: RequestOrigin<'static> = RequestOrigin {
        peer: None,
        host: Some("javascript://evil.example.com/x"),
        forwarded: Some("proto=javascript;host=evil.example.com"),
        x_forwarded_host: Some("evil.example.com"),
        x_forwarded_proto: Some("javascript"),
    };

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let request = RequestOrigin {
            host: Some("pacs.internal:8080"),
            ..from("203.0.113.9")
        };
        let with_forwarding = RequestOrigin {
            forwarded: HOSTILE.forwarded,
            x_forwarded_host: HOSTILE.x_forwarded_host,
            x_forwarded_proto: Some("https"),
            ..request
        };
        let policy = policy(&["10.0.0.0/8"]);
        assert_eq!(policy.base_url(&request), "http://pacs.internal:8080");
        assert_eq!(
            policy.base_url(&with_forwarding),
            "http://pacs.internal:8080"
        );
    }

    #[test]
    fn a_trusted_proxy_names_scheme_and_host_and_forwarded_wins() {
        let policy = policy(&["10.0.0.0/8", "::1"]);
        let request = RequestOrigin {
            host: Some("dicomweb:8080"),
            x_forwarded_host: Some("spoofed.example, pacs.example.org"),
            x_forwarded_proto: Some("https"),
            ..from("10.1.2.3")
        };
        assert_eq!(policy.base_url(&request), "https://pacs.example.org");
        let forwarded = RequestOrigin {
            forwarded: Some(
                "for=1.2.3.4;host=a.example, for=5.6.7.8;proto=HTTPS;host=\"[2001:db8::1]:8443\"",
            ),
            ..request
        };
        assert_eq!(policy.base_url(&forwarded), "https://[2001:db8::1]:8443");
        // An IPv4 proxy reaching a dual-stack listener.
        let mapped = RequestOrigin {
            peer: Some("::ffff:10.0.0.1".parse().unwrap()),
            ..request
        };
        assert_eq!(policy.base_url(&mapped), "https://pacs.example.org");
    }

    #[test]
    fn hostile_values_fall_back_to_the_own_scheme_and_address() {
        let request = RequestOrigin {
            peer: Some("192.0.2.1".parse().unwrap()),
            ..HOSTILE
        };
        assert_eq!(policy(&[]).base_url(&request), "http://127.0.0.1:8080");
        // A trusted proxy's host is believed when it is one; its scheme is not, when it is not http(s).
        assert_eq!(
            policy(&["0.0.0.0/0"]).base_url(&request),
            "http://evil.example.com"
        );
        let unspecified = OriginPolicy::new(None, vec![], true, "0.0.0.0:443".parse().unwrap());
        assert_eq!(
            unspecified.base_url(&RequestOrigin::default()),
            "https://localhost:443"
        );
    }

    #[test]
    fn a_public_url_wins_over_every_header() {
        let public = PublicUrl::parse("https://PACS.example.org:8443/dicomweb/").unwrap();
        let policy = OriginPolicy::new(
            Some(public),
            vec![parse_trusted_proxy("0.0.0.0/0").unwrap()],
            false,
            "127.0.0.1:8080".parse().unwrap(),
        );
        let request = RequestOrigin {
            peer: Some("10.0.0.1".parse().unwrap()),
            ..HOSTILE
        };
        assert_eq!(
            policy.base_url(&request),
            "https://pacs.example.org:8443/dicomweb"
        );
    }

    #[test]
    fn public_urls_and_trusted_proxies_are_checked() {
        for bad in [
            "javascript://evil.example.com/",
            "ftp://pacs.example.org",
            "https://user:pw@pacs.example.org",
            "https://pacs.example.org/?a=b",
            "https://pacs.example.org/#x",
            "pacs.example.org",
            "file:///etc",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PublicUrl::parse("http://127.0.0.1:9000").unwrap().as_str(),
            "http://127.0.0.1:9000"
        );
        assert!(parse_trusted_proxy("10.0.0.1").is_ok());
        assert!(parse_trusted_proxy("fd00::/8").is_ok());
        assert!(parse_trusted_proxy("proxy.example").is_err());
        assert!(parse_trusted_proxy("10.0.0.0/33").is_err());
    }

    #[test]
    fn authorities_are_hostnames_or_addresses_with_a_port() {
        for good in [
            "localhost",
            "pacs.example.org:443",
            "10.0.0.1:8080",
            "[::1]:8080",
            "[2001:db8::1]",
            "xn--mller-kva.example",
        ] {
            assert!(is_valid_authority(good), "{good}");
        }
        for bad in [
            "",
            "javascript://evil.example.com",
            "evil.example.com/path",
            "a@b",
            "host:0",
            "host:65536",
            "host:",
            "[::1",
            "[::1]x",
            "-a.example",
            "a..b",
            "999.1.1.1",
            "a.0x1",
            "exa mple",
            "host\r\nx",
        ] {
            assert!(!is_valid_authority(bad), "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Whatever the headers say, and whoever sends them, the base URL is an http(s) URL with a valid host
        /// and nothing after it.
        #[test]
        fn any_headers_give_an_http_url_with_a_valid_host(
            host in proptest::option::of(header_value()),
            forwarded in proptest::option::of(header_value()),
            x_forwarded_host in proptest::option::of(header_value()),
            x_forwarded_proto in proptest::option::of(header_value()),
            trusted in proptest::bool::ANY,
        ) {
            let request = RequestOrigin {
                peer: Some("10.0.0.1".parse().unwrap()),
                host: host.as_deref(),
                forwarded: forwarded.as_deref(),
                x_forwarded_host: x_forwarded_host.as_deref(),
                x_forwarded_proto: x_forwarded_proto.as_deref(),
            };
            let base = policy(if trusted { &["10.0.0.0/8"] } else { &[] }).base_url(&request);
            let (scheme, authority) = base.split_once("://").unwrap();
            proptest::prop_assert!(scheme == "http" || scheme == "https", "{}", base);
            proptest::prop_assert!(is_valid_authority(authority), "{}", base);
            let url = url::Url::parse(&base);
            proptest::prop_assert!(url.is_ok(), "{} {:?}", base, url);
            let url = url.unwrap();
            proptest::prop_assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{}", base);
            proptest::prop_assert!(url.username().is_empty() && url.password().is_none(), "{}", base);
            proptest::prop_assert!(url.query().is_none() && url.fragment().is_none(), "{}", base);
            proptest::prop_assert_eq!(url.path(), "/");
        }
    }

    /// Header values: arbitrary text, and text built from the pieces of schemes, hosts and forwarding lists.
    fn header_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "\\PC{0,40}",
            proptest::collection::vec(
                prop_oneof![
                    Just("https".to_owned()),
                    Just("http".to_owned()),
                    Just("javascript".to_owned()),
                    Just("://".to_owned()),
                    Just("host=".to_owned()),
                    Just("proto=".to_owned()),
                    Just(";".to_owned()),
                    Just(",".to_owned()),
                    Just("\"".to_owned()),
                    Just(":".to_owned()),
                    Just("[".to_owned()),
                    Just("]".to_owned()),
                    Just("::1".to_owned()),
                    Just("@".to_owned()),
                    Just("/".to_owned()),
                    Just(".".to_owned()),
                    "[a-z0-9-]{1,8}",
                    "[0-9]{1,6}",
                ],
                0..10,
            )
            .prop_map(|pieces| pieces.concat()),
        ]
    }
}
