//! Transport settings and host identity: agent state the product sets (SPEC §8).
//!
//! Only the core knows whether a change is allowed (not while registered, not on a subscriber
//! node); these types only validate the values, with the exact 400 messages of seed
//! 000:1532-1536. The `transport` module turns valid settings into connections.

use std::fmt;
use std::net::IpAddr;

use crate::error::Error;

/// The default direct (cloud) endpoint (SPEC §8).
pub const DIRECT_URL: &str = "https://tools.cisco.com/its/service/oddce/services/DDCEService";

/// The two on-prem paths the products accept (000:458-464, 003:74).
pub const GATEWAY_PATHS: [&str; 2] = [
    "/SmartTransport",
    "/Transportgateway/services/DeviceRequestHandler",
];

/// A host as written in settings: DNS name (lowercased) or IP address. Only [`Host::parse`]
/// makes one, so every `Host` is valid.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Host(HostKind);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum HostKind {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// The IP address, if the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match &self.0 {
            HostKind::Ip(ip) => Some(*ip),
            HostKind::Name(_) => None,
        }
    }

    /// The DNS name, if the host is one.
    pub fn name(&self) -> Option<&str> {
        match &self.0 {
            HostKind::Name(n) => Some(n),
            HostKind::Ip(_) => None,
        }
    }

    /// Parses a DNS name, an IPv4 address, or an IPv6 address with or without brackets.
    pub fn parse(s: &str) -> Option<Host> {
        let inner = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = inner.parse::<IpAddr>() {
            let bracketed = inner.len() != s.len();
            // Brackets belong to IPv6 only (`[::1]`), as in URLs.
            if bracketed && ip.is_ipv4() {
                return None;
            }
            return Some(Host(HostKind::Ip(ip)));
        }
        if inner.len() != s.len() {
            return None; // brackets around something that is not IPv6
        }
        valid_dns_name(s).then(|| Host(HostKind::Name(s.to_ascii_lowercase())))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            HostKind::Name(n) => f.write_str(n),
            HostKind::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            HostKind::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, at most 253
/// characters; not all-numeric (that would be a mistyped IPv4 address).
pub(crate) fn valid_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels_ok = s.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let all_numeric = s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    labels_ok && !all_numeric
}

/// Credentials for the HTTP proxy (basic auth). `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyCredentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl fmt::Debug for ProxyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A validated on-prem (satellite / transport gateway) URL; only [`GatewayUrl::parse`] makes
/// one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GatewayUrl {
    host: Host,
    port: u16,
    path: String,
}

impl GatewayUrl {
    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port, 443 when the URL has none.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// One of [`GATEWAY_PATHS`].
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Parses `https://<dns | ipv4 | [ipv6]>[:port]/SmartTransport` or the legacy
    /// `…/Transportgateway/services/DeviceRequestHandler`, or the GUI's shorthand
    /// `fqdn_of_smart_software_manager:port_number` (003:195): `host`, `host:port`, `ipv4`,
    /// `ipv4:port`, `[ipv6]` or `[ipv6]:port` alone stands for
    /// `https://…/SmartTransport`. Anything else (`http://`, user information, a query, a
    /// fragment, another path, an IPv6 address without brackets) is
    /// "Please enter a valid Transport Gateway URL". [`url`](Self::url) is the long form
    /// either way.
    ///
    /// ```
    /// use smart_agent::settings::GatewayUrl;
    /// let short = GatewayUrl::parse("ssm.example.com:8443").unwrap();
    /// assert_eq!(short.url(), "https://ssm.example.com:8443/SmartTransport");
    /// assert_eq!(GatewayUrl::parse(&short.url()), Ok(short));
    /// assert!(GatewayUrl::parse("http://ssm.example.com:8443").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<GatewayUrl, Error> {
        let bad = Error::InvalidGatewayUrl;
        let (authority, path) = match url.strip_prefix("https://") {
            Some(rest) => rest.split_at(rest.find('/').ok_or(bad.clone())?),
            // No scheme at all: the shorthand, an authority alone. `/`, `?`, `#` and `@` are
            // not in any host or port, so a path, query, fragment or user information in it
            // is refused below.
            None if !url.contains("://") => (url, GATEWAY_PATHS[0]),
            None => return Err(bad),
        };
        if !GATEWAY_PATHS.contains(&path) {
            return Err(bad);
        }
        let (host, port) = split_authority(authority).ok_or(bad.clone())?;
        let host = Host::parse(host).ok_or(bad.clone())?;
        if matches!(host.ip(), Some(IpAddr::V6(_))) != authority.starts_with('[') {
            return Err(bad);
        }
        Ok(GatewayUrl {
            host,
            port,
            path: path.to_string(),
        })
    }

    /// The URL, normalized (`https://host[:port]/path`).
    pub fn url(&self) -> String {
        if self.port == 443 {
            format!("https://{}{}", self.host, self.path)
        } else {
            format!("https://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// Splits `host[:port]` / `[v6][:port]`; the port must be 1–65535.
fn split_authority(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(end) = authority.strip_prefix('[').and(authority.find(']')) {
        let (h, rest) = authority.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if rest.is_empty() => (h, None),
            None => return None,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => 443,
        Some(p) => parse_port(p)?,
    };
    (!host.is_empty()).then_some((host, port))
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&n| n >= 1)
}

/// A validated HTTP CONNECT proxy; only [`TransportSettings::proxy`] makes one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProxySettings {
    host: Host,
    port: u16,
    credentials: Option<ProxyCredentials>,
}

impl ProxySettings {
    /// Proxy host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Proxy port (1–65535; 443 is valid, CSCvc94366).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Basic-auth credentials, if any.
    pub fn credentials(&self) -> Option<&ProxyCredentials> {
        self.credentials.as_ref()
    }
}

/// How the agent reaches the manager (SPEC §8; modes numbered as in 003:194-196).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum TransportSettings {
    /// Mode 0: straight to Cisco ([`DIRECT_URL`]).
    #[default]
    Direct,
    /// Mode 1: an on-prem manager or transport gateway.
    OnPrem(GatewayUrl),
    /// Mode 2: through an HTTP CONNECT proxy.
    Proxy(ProxySettings),
}

impl TransportSettings {
    /// On-prem settings from a URL or its `host[:port]` shorthand ([`GatewayUrl::parse`]).
    pub fn on_prem(url: &str) -> Result<Self, Error> {
        GatewayUrl::parse(url).map(TransportSettings::OnPrem)
    }

    /// Proxy settings from the strings a form or CLI gives; empty user means no credentials.
    ///
    /// ```
    /// use smart_agent::{Error, TransportSettings};
    /// assert!(TransportSettings::proxy("proxy.example.com", "443", None).is_ok());
    /// assert_eq!(TransportSettings::proxy("", "", None), Err(Error::MissingProxy));
    /// assert_eq!(TransportSettings::proxy("proxy", "0", None), Err(Error::InvalidProxyPort));
    /// assert_eq!(TransportSettings::proxy("-bad-", "80", None), Err(Error::InvalidProxyAddress));
    /// assert_eq!(
    ///     TransportSettings::proxy("proxy", "80", Some(("us:er", "pw"))),
    ///     Err(Error::InvalidProxyCredentials)
    /// );
    /// ```
    pub fn proxy(host: &str, port: &str, credentials: Option<(&str, &str)>) -> Result<Self, Error> {
        let (host, port) = (host.trim(), port.trim());
        if host.is_empty() && port.is_empty() {
            return Err(Error::MissingProxy);
        }
        let host = Host::parse(host).ok_or(Error::InvalidProxyAddress)?;
        let port = parse_port(port).ok_or(Error::InvalidProxyPort)?;
        let credentials = match credentials.filter(|(user, _)| !user.is_empty()) {
            None => None,
            // Basic authentication joins them with `:` (RFC 7617): a user name with one would
            // be split elsewhere, and neither may carry control characters.
            Some((user, password))
                if user.contains(':')
                    || user.chars().chain(password.chars()).any(char::is_control) =>
            {
                return Err(Error::InvalidProxyCredentials)
            }
            Some((username, password)) => Some(ProxyCredentials {
                username: username.to_string(),
                password: password.to_string(),
            }),
        };
        Ok(TransportSettings::Proxy(ProxySettings {
            host,
            port,
            credentials,
        }))
    }

    /// Settings from the REST form: a mode number and the fields that mode needs.
    pub fn from_mode(
        mode: i64,
        url: &str,
        proxy_host: &str,
        proxy_port: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self, Error> {
        match mode {
            0 => Ok(TransportSettings::Direct),
            1 => TransportSettings::on_prem(url),
            2 => TransportSettings::proxy(proxy_host, proxy_port, credentials),
            _ => Err(Error::InvalidTransportMode),
        }
    }

    /// The mode number (0 direct, 1 on-prem, 2 proxy).
    pub fn mode(&self) -> u8 {
        match self {
            TransportSettings::Direct => 0,
            TransportSettings::OnPrem(_) => 1,
            TransportSettings::Proxy(_) => 2,
        }
    }
}

/// The product's host name and address, sent unless privacy is on (SPEC §8); only
/// [`HostIdentity::new`] makes one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostIdentity {
    name: String,
    ip: IpAddr,
}

impl HostIdentity {
    /// Validates the name; the 400 is [`Error::InvalidHostName`].
    pub fn new(name: &str, ip: IpAddr) -> Result<Self, Error> {
        if !valid_dns_name(name) {
            return Err(Error::InvalidHostName);
        }
        Ok(HostIdentity {
            name: name.to_string(),
            ip,
        })
    }

    /// The host name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The IP address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_of_the_seeds_are_accepted() {
        for (url, port) in [
            ("https://example.com/SmartTransport", 443),
            ("https://satellite.example.com:8443/SmartTransport", 8443),
            (
                "https://10.0.0.5/Transportgateway/services/DeviceRequestHandler",
                443,
            ),
            ("https://[::1]:8443/SmartTransport", 8443),
            ("https://[2001:db8::1]/SmartTransport", 443),
        ] {
            let parsed = GatewayUrl::parse(url).unwrap();
            assert_eq!(parsed.port, port, "{url}");
            assert_eq!(GatewayUrl::parse(&parsed.url()).unwrap(), parsed);
        }
    }

    #[test]
    fn the_long_form_is_stored_as_before() {
        // Snapshots store `url()`: for every long-form input it stays what it was.
        for (url, stored) in [
            (
                "https://example.com/SmartTransport",
                "https://example.com/SmartTransport",
            ),
            (
                "https://Satellite.Example.com:8443/SmartTransport",
                "https://satellite.example.com:8443/SmartTransport",
            ),
            (
                "https://example.com:443/SmartTransport",
                "https://example.com/SmartTransport",
            ),
            (
                "https://10.0.0.5/Transportgateway/services/DeviceRequestHandler",
                "https://10.0.0.5/Transportgateway/services/DeviceRequestHandler",
            ),
            (
                "https://[2001:DB8::1]:8443/SmartTransport",
                "https://[2001:db8::1]:8443/SmartTransport",
            ),
        ] {
            assert_eq!(GatewayUrl::parse(url).unwrap().url(), stored, "{url}");
        }
    }

    #[test]
    fn the_guis_host_and_port_shorthand_means_smart_transport() {
        // 003:195: "fqdn_of_smart_software_manager:port_number".
        for (short, long) in [
            ("ssm.example.com", "https://ssm.example.com/SmartTransport"),
            (
                "ssm.example.com:8443",
                "https://ssm.example.com:8443/SmartTransport",
            ),
            (
                "SSM.Example.com:443",
                "https://ssm.example.com/SmartTransport",
            ),
            ("localhost:1", "https://localhost:1/SmartTransport"),
            ("10.0.0.5", "https://10.0.0.5/SmartTransport"),
            ("10.0.0.5:65535", "https://10.0.0.5:65535/SmartTransport"),
            ("[::1]:8443", "https://[::1]:8443/SmartTransport"),
            ("[2001:db8::1]", "https://[2001:db8::1]/SmartTransport"),
        ] {
            let parsed = GatewayUrl::parse(short).unwrap_or_else(|e| panic!("{short}: {e}"));
            assert_eq!(parsed.url(), long, "{short}");
            assert_eq!(parsed.path(), "/SmartTransport");
            assert_eq!(GatewayUrl::parse(long), Ok(parsed), "{short}");
        }
    }

    #[test]
    fn other_gateway_urls_are_rejected_with_the_seed_message() {
        for url in [
            "http://example.com/SmartTransport",
            "https://example.com/",
            "https://example.com/smarttransport",
            "https://example.com:0/SmartTransport",
            "https://example.com:65536/SmartTransport",
            "https://example.com:/SmartTransport",
            "https://::1/SmartTransport",
            "https://[example.com]/SmartTransport",
            "https:///SmartTransport",
            "https://user@example.com/SmartTransport",
            "https://user:pw@example.com/SmartTransport",
            "https://example.com/SmartTransport?x=1",
            "https://example.com/SmartTransport#top",
            "https://example.com",
            "HTTPS://example.com/SmartTransport",
            // Shorthand: an authority alone, nothing else.
            "example.com/SmartTransport",
            "example.com:8443/SmartTransport",
            "example.com/",
            "http://example.com",
            "http://example.com:8443",
            "ftp://example.com",
            "//example.com",
            "user@example.com",
            "user:pw@example.com:8443",
            "example.com?x=1",
            "example.com:8443?x=1",
            "example.com#top",
            "example.com:",
            ":8443",
            "example.com:0",
            "example.com:65536",
            "example.com:84a3",
            "example.com:8443:1",
            "::1",
            "2001:db8::1",
            "[::1",
            "[::1]8443",
            "[10.0.0.5]:8443",
            "[example.com]",
            "999.1.1.1",
            "bad_host",
            "a b",
            " example.com",
            "",
        ] {
            let err = GatewayUrl::parse(url).unwrap_err();
            assert_eq!(
                err.to_string(),
                "Please enter a valid Transport Gateway URL",
                "{url}"
            );
        }
    }

    #[test]
    fn proxy_validation_uses_the_three_seed_messages() {
        assert!(TransportSettings::proxy("192.0.2.1", "65535", Some(("u", "p"))).is_ok());
        assert!(TransportSettings::proxy("2001:db8::1", "8080", None).is_ok());
        assert!(TransportSettings::proxy("[2001:db8::1]", "8080", None).is_ok());
        assert_eq!(
            TransportSettings::proxy(" ", "", None),
            Err(Error::MissingProxy)
        );
        for port in ["0", "65536", "-1", "80a", "", "443 1"] {
            assert_eq!(
                TransportSettings::proxy("proxy", port, None),
                Err(Error::InvalidProxyPort),
                "{port}"
            );
        }
        for host in ["", "a b", "999.1.1.1", "[proxy]", "x_y", "[192.0.2.1]"] {
            assert_eq!(
                TransportSettings::proxy(host, "80", None),
                Err(Error::InvalidProxyAddress),
                "{host}"
            );
        }
        assert_eq!(
            TransportSettings::from_mode(3, "", "", "", None),
            Err(Error::InvalidTransportMode)
        );
    }

    #[test]
    fn proxy_port_443_and_ipv6_proxies_are_accepted() {
        // CSCvc94366 (002:135): 443 must pass validation; IPv6 with or without brackets.
        for (host, port, shown) in [
            ("proxy.example.com", "443", "proxy.example.com"),
            ("192.0.2.1", "443", "192.0.2.1"),
            ("2001:db8::1", "443", "[2001:db8::1]"),
            ("[2001:db8::1]", "443", "[2001:db8::1]"),
            ("::1", "3128", "[::1]"),
            (" [::1] ", " 1 ", "[::1]"),
        ] {
            let Ok(TransportSettings::Proxy(proxy)) = TransportSettings::proxy(host, port, None)
            else {
                panic!("{host} {port} refused");
            };
            assert_eq!(proxy.host().to_string(), shown);
            assert_eq!(proxy.port().to_string(), port.trim());
        }
        for host in ["[2001:db8::1", "2001:db8::1]", "2001:db8::g"] {
            assert_eq!(
                TransportSettings::proxy(host, "443", None),
                Err(Error::InvalidProxyAddress),
                "{host}"
            );
        }
    }

    #[test]
    fn proxy_credentials_basic_authentication_cannot_carry_are_refused() {
        for (user, password) in [
            ("us:er", "pw"),
            (":", "pw"),
            ("user\n", "pw"),
            ("user", "p\rw"),
            ("user", "pw\u{7}"),
            ("us\u{85}er", "pw"),
        ] {
            assert_eq!(
                TransportSettings::proxy("proxy", "80", Some((user, password))),
                Err(Error::InvalidProxyCredentials),
                "{user:?} {password:?}"
            );
        }
        // A colon in the password is fine: Basic splits at the first one.
        assert!(TransportSettings::proxy("proxy", "80", Some(("user", "p:w:d"))).is_ok());
        assert!(TransportSettings::proxy("proxy", "80", Some(("üser", "pässword"))).is_ok());
        assert_eq!(
            Error::InvalidProxyCredentials.code().status(),
            400,
            "a refused parameter"
        );
    }

    #[test]
    fn proxy_password_is_not_in_debug() {
        let s = TransportSettings::proxy("p", "80", Some(("user", "hunter2"))).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
