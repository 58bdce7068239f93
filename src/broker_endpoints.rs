//! Where the broker is and who god is there: the AMQP URL, the management URL, the
//! credentials and the vhost. Passwords never leave this module in printable form.

use std::fmt;

use url::Url;

use crate::error::{GodError, Result};

/// The AMQP URL used when neither `--amqp-url` nor `RABBITMQ_URL` is given.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The management URL used when neither `--management-url` nor `RABBITMQ_MANAGEMENT_URL` is given.
pub const DEFAULT_MANAGEMENT_URL: &str = "http://127.0.0.1:15672";

/// A username and a password that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name, safe to show.
    pub user: String,
    password: String,
}

impl Credentials {
    /// Pairs a user with its password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The password, for the one place that sends it to the broker.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}:***)", self.user)
    }
}

/// An AMQP URL's parts, decoded.
#[derive(Debug, Clone)]
pub struct AmqpAddress {
    /// Host name or address (an IPv6 address keeps its brackets, ready for `host:port`).
    pub host: String,
    /// TCP port (5672, or 5671 for amqps, unless the URL says otherwise).
    pub port: u16,
    /// User and password.
    pub credentials: Credentials,
    /// The vhost.
    pub vhost: String,
    /// Whether the URL asks for TLS (amqps).
    pub tls: bool,
}

/// The resolved connection settings of one god run.
#[derive(Clone)]
pub struct BrokerEndpoints {
    /// The full AMQP URL, with credentials and vhost (never print it: use [`Self::amqp_display`]).
    amqp_url: Url,
    /// The management API base URL, without credentials.
    pub management_url: Url,
    /// Credentials for the management API.
    pub management_credentials: Credentials,
    /// The vhost god works on.
    pub vhost: String,
    /// Whether the vhost was spelled out by the user (an explicit AMQP URL path).
    pub vhost_explicit: bool,
}

impl fmt::Debug for BrokerEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerEndpoints")
            .field("amqp_url", &self.amqp_display())
            .field("management_url", &self.management_display())
            .field("management_credentials", &self.management_credentials)
            .field("vhost", &self.vhost)
            .finish()
    }
}

impl BrokerEndpoints {
    /// Resolves the endpoints from the (optional) user-given URLs.
    pub fn resolve(amqp_url: Option<&str>, management_url: Option<&str>) -> Result<Self> {
        let explicit = amqp_url.is_some();
        let amqp = parse_amqp(amqp_url.unwrap_or(DEFAULT_AMQP_URL))?;
        let vhost = vhost_of(&amqp);
        let amqp_credentials = credentials_of(&amqp);
        let mut management =
            Url::parse(management_url.unwrap_or(DEFAULT_MANAGEMENT_URL)).map_err(|e| {
                GodError::Usage(format!(
                    "invalid management URL {}: {e}\nhint: it looks like http://127.0.0.1:15672",
                    mask_url_str(management_url.unwrap_or_default())
                ))
            })?;
        if !matches!(management.scheme(), "http" | "https") {
            return Err(GodError::Usage(format!(
                "invalid management URL {}: the scheme must be http or https",
                mask_url(&management)
            )));
        }
        let management_credentials = if management.username().is_empty() {
            amqp_credentials
        } else {
            credentials_of(&management)
        };
        let _ = management.set_username("");
        let _ = management.set_password(None);
        Ok(Self {
            amqp_url: amqp,
            management_url: management,
            management_credentials,
            vhost_explicit: explicit && has_vhost_path(amqp_url.unwrap_or_default()),
            vhost,
        })
    }

    /// Points the endpoints at another vhost (the registry's `vhost`), keeping everything else.
    pub fn with_vhost(mut self, vhost: &str) -> Self {
        let encoded = percent_encoding::utf8_percent_encode(vhost, SEGMENT).to_string();
        self.amqp_url.set_path(&format!("/{encoded}"));
        self.vhost = vhost.to_string();
        self
    }

    /// The AMQP URL to connect with (contains the password: never print it).
    pub fn amqp_url_secret(&self) -> &str {
        self.amqp_url.as_str()
    }

    /// The AMQP URL as it may be shown: password masked.
    pub fn amqp_display(&self) -> String {
        mask_url(&self.amqp_url)
    }

    /// The AMQP user name.
    pub fn amqp_user(&self) -> String {
        percent_decode(self.amqp_url.username())
    }

    /// The AMQP URL taken apart, for clients that connect from its parts.
    pub fn amqp_address(&self) -> AmqpAddress {
        let tls = self.amqp_url.scheme() == "amqps";
        AmqpAddress {
            host: self.amqp_url.host_str().unwrap_or("127.0.0.1").to_string(),
            port: self
                .amqp_url
                .port()
                .unwrap_or(if tls { 5671 } else { 5672 }),
            credentials: credentials_of(&self.amqp_url),
            vhost: vhost_of(&self.amqp_url),
            tls,
        }
    }

    /// The management URL as it may be shown (it never holds credentials).
    pub fn management_display(&self) -> String {
        self.management_url
            .as_str()
            .trim_end_matches('/')
            .to_string()
    }
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn parse_amqp(raw: &str) -> Result<Url> {
    let url = Url::parse(raw).map_err(|e| {
        GodError::Usage(format!(
            "invalid AMQP URL {}: {e}\nhint: it looks like amqp://user:password@127.0.0.1:5672/%2f (the path is the vhost)",
            mask_url_str(raw)
        ))
    })?;
    if !matches!(url.scheme(), "amqp" | "amqps") {
        return Err(GodError::Usage(format!(
            "invalid AMQP URL {}: the scheme must be amqp or amqps",
            mask_url(&url)
        )));
    }
    Ok(url)
}

fn has_vhost_path(raw: &str) -> bool {
    Url::parse(raw).map(|u| u.path().len() > 1).unwrap_or(false)
}

/// The vhost named by an AMQP URL's path; no path means the default vhost "/".
fn vhost_of(url: &Url) -> String {
    let path = url.path().trim_start_matches('/');
    if path.is_empty() {
        "/".to_string()
    } else {
        percent_decode(path)
    }
}

fn credentials_of(url: &Url) -> Credentials {
    let user = if url.username().is_empty() {
        "guest".to_string()
    } else {
        percent_decode(url.username())
    };
    let password = url.password().map(percent_decode).unwrap_or_else(|| {
        if url.username().is_empty() {
            "guest".to_string()
        } else {
            String::new()
        }
    });
    Credentials::new(user, password)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Shows a URL with its password replaced by `***`.
pub fn mask_url(url: &Url) -> String {
    crate::model::containers::masked_url(url.as_str()).unwrap_or_else(|| url.to_string())
}

/// Masks the password of something that may or may not parse as a URL.
pub fn mask_url_str(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => mask_url(&url),
        Err(_) => match (raw.find("://"), raw.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &raw[..scheme], &raw[at + 1..])
            }
            _ => raw.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_endpoints_use_guest_on_the_default_vhost() {
        let e = BrokerEndpoints::resolve(None, None).unwrap();
        assert_eq!(e.vhost, "/");
        assert_eq!(e.management_credentials.user, "guest");
        assert_eq!(e.management_credentials.password(), "guest");
        assert_eq!(e.amqp_display(), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert!(!e.vhost_explicit);
    }

    #[test]
    fn vhost_comes_from_the_url_path_and_management_takes_amqp_credentials() {
        let e = BrokerEndpoints::resolve(Some("amqp://ops:s3cr%2Ft@10.0.0.1:5672/team%2Fa"), None)
            .unwrap();
        assert_eq!(e.vhost, "team/a");
        assert!(e.vhost_explicit);
        assert_eq!(e.management_credentials.user, "ops");
        assert_eq!(e.management_credentials.password(), "s3cr/t");
        assert!(!e.amqp_display().contains("s3cr"));
        assert!(!format!("{e:?}").contains("s3cr"));
    }

    #[test]
    fn management_url_credentials_win_and_are_stripped_from_the_url() {
        let e = BrokerEndpoints::resolve(
            Some("amqp://a:b@127.0.0.1/"),
            Some("http://admin:topsecret@127.0.0.1:15672"),
        )
        .unwrap();
        assert_eq!(e.management_credentials.user, "admin");
        assert_eq!(e.management_display(), "http://127.0.0.1:15672");
        assert_eq!(e.vhost, "/");
    }

    #[test]
    fn invalid_urls_are_reported_without_their_password() {
        let err = BrokerEndpoints::resolve(Some("http://u:hunter2@host/"), None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("scheme must be amqp"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(mask_url_str("amqp://u:hunter2@ho st"), "amqp://***@ho st");
    }

    #[test]
    fn with_vhost_rewrites_the_amqp_path() {
        let e = BrokerEndpoints::resolve(None, None)
            .unwrap()
            .with_vhost("a b/c");
        assert_eq!(e.vhost, "a b/c");
        assert!(e.amqp_url_secret().ends_with("/a%20b%2Fc"));
    }

    #[test]
    fn the_amqp_address_is_the_url_decoded_into_parts() {
        let e = BrokerEndpoints::resolve(Some("amqp://ops:s3cr%2Ft@[::1]/team%2Fa"), None).unwrap();
        let address = e.amqp_address();
        assert_eq!((address.host.as_str(), address.port), ("[::1]", 5672));
        assert_eq!(address.credentials.user, "ops");
        assert_eq!(address.credentials.password(), "s3cr/t");
        assert_eq!(address.vhost, "team/a");
        assert!(!address.tls);
        let tls = BrokerEndpoints::resolve(Some("amqps://broker.example"), None).unwrap();
        let address = tls.amqp_address();
        assert_eq!(
            (address.port, address.vhost.as_str(), address.tls),
            (5671, "/", true)
        );
        assert_eq!(address.credentials.user, "guest");
    }
}
