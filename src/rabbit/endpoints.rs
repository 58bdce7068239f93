//! Where the broker is and who god is there: the AMQP URL, the management URL, the
//! credentials and the vhost. Passwords never leave this module in printable form.

use std::collections::BTreeSet;
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
    /// The vhost it connects to.
    pub vhost: String,
    /// Whether the URL asks for TLS (amqps).
    pub tls: bool,
}

/// The resolved connection settings of one god run. Each URL option may list several nodes of
/// one cluster, comma-separated: god uses the first that answers and moves on when it fails.
#[derive(Clone)]
pub struct BrokerEndpoints {
    /// The AMQP URLs, with credentials and vhost (never print them: use [`Self::amqp_display`]).
    amqp_urls: Vec<Url>,
    /// The management API base URLs, without credentials.
    management_urls: Vec<Url>,
    /// Credentials for the management API.
    pub management_credentials: Credentials,
    /// The vhost god works on.
    pub vhost: String,
    /// Whether the vhost was spelled out by the user (an explicit AMQP URL path).
    pub vhost_explicit: bool,
}

/// One AMQP URL of the list: what to connect with, and what may be shown of it.
#[derive(Clone, Copy)]
pub struct AmqpEndpoint<'a> {
    url: &'a Url,
}

impl AmqpEndpoint<'_> {
    /// The URL to connect with (contains the password: never print it).
    pub fn secret(&self) -> &str {
        self.url.as_str()
    }

    /// The URL as it may be shown: password masked.
    pub fn display(&self) -> String {
        mask_url(self.url)
    }

    /// The user name.
    pub fn user(&self) -> String {
        credentials_of(self.url).user
    }

    /// The URL taken apart, for clients that connect from its parts.
    pub fn address(&self) -> AmqpAddress {
        let tls = self.url.scheme() == "amqps";
        AmqpAddress {
            host: self.url.host_str().unwrap_or("127.0.0.1").to_string(),
            port: self.url.port().unwrap_or(if tls { 5671 } else { 5672 }),
            credentials: credentials_of(self.url),
            vhost: vhost_of(self.url),
            tls,
        }
    }
}

impl fmt::Debug for BrokerEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerEndpoints")
            .field("amqp_urls", &self.amqp_display())
            .field("management_urls", &self.management_display())
            .field("management_credentials", &self.management_credentials)
            .field("vhost", &self.vhost)
            .finish()
    }
}

impl BrokerEndpoints {
    /// Resolves the endpoints from the (optional) user-given URL lists.
    pub fn resolve(amqp_urls: Option<&str>, management_urls: Option<&str>) -> Result<Self> {
        let mut amqp = AMQP.parse_list(amqp_urls.unwrap_or(DEFAULT_AMQP_URL))?;
        let explicit: Vec<&Url> = amqp.iter().filter(|url| url.path().len() > 1).collect();
        // The default URL's path is not the user's choice.
        let vhost_explicit = amqp_urls.is_some() && !explicit.is_empty();
        let vhost = agreed_vhost(&explicit)?;
        for url in amqp.iter_mut().filter(|url| url.path().len() <= 1) {
            url.set_path(&vhost_path(&vhost));
        }
        let mut management =
            MANAGEMENT.parse_list(management_urls.unwrap_or(DEFAULT_MANAGEMENT_URL))?;
        let management_credentials = management
            .iter()
            .find(|url| !url.username().is_empty())
            .map(credentials_of)
            .unwrap_or_else(|| credentials_of(&amqp[0]));
        for url in &mut management {
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        Ok(Self {
            amqp_urls: amqp,
            management_urls: management,
            management_credentials,
            vhost_explicit,
            vhost,
        })
    }

    /// Points the endpoints at another vhost (the registry's `vhost`), keeping everything else.
    pub fn with_vhost(mut self, vhost: &str) -> Self {
        for url in &mut self.amqp_urls {
            url.set_path(&vhost_path(vhost));
        }
        self.vhost = vhost.to_string();
        self
    }

    /// The AMQP URLs, comma-separated, as the bundled services are given them (contains the
    /// passwords: never print it).
    pub fn amqp_urls_secret(&self) -> String {
        self.amqp_urls
            .iter()
            .map(Url::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The AMQP URLs in the order they are tried.
    pub fn amqp_endpoints(&self) -> impl Iterator<Item = AmqpEndpoint<'_>> {
        self.amqp_urls.iter().map(|url| AmqpEndpoint { url })
    }

    /// The first AMQP URL (the one god names the broker by).
    pub fn first_amqp(&self) -> AmqpEndpoint<'_> {
        AmqpEndpoint {
            url: &self.amqp_urls[0],
        }
    }

    /// The AMQP URLs as they may be shown: passwords masked, comma-separated.
    pub fn amqp_display(&self) -> String {
        self.amqp_endpoints()
            .map(|e| e.display())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The management API base URLs in the order they are tried (they never hold credentials).
    pub fn management_bases(&self) -> Vec<String> {
        self.management_urls
            .iter()
            .map(|url| url.as_str().trim_end_matches('/').to_string())
            .collect()
    }

    /// The management URLs as they may be shown, comma-separated.
    pub fn management_display(&self) -> String {
        self.management_bases().join(",")
    }
}

/// The nodes of one broker as one of god's clients tries them: their URLs as they may be
/// shown, what they serve (for messages: "the management API", "RabbitMQ"), and the
/// environment variable that lists them.
pub struct NodeList<'a> {
    /// Each node's URL, without password.
    pub shown: &'a [String],
    /// What the nodes serve.
    pub service: &'a str,
    /// The variable that lists them.
    pub variable: &'static str,
}

impl NodeList<'_> {
    /// Runs `attempt` on node `start`, then on each next node (round the list) while a node
    /// cannot be reached. Returns the node that answered, with its answer, and says on stderr
    /// when that was not the node tried first; when no node answers, returns `start` with an
    /// error naming each node and why.
    pub async fn first_answering<T>(
        &self,
        start: usize,
        attempt: impl AsyncFn(usize) -> Result<T>,
    ) -> (usize, Result<T>) {
        let mut unreachable = Vec::new();
        for step in 0..self.shown.len() {
            let node = (start + step) % self.shown.len();
            match attempt(node).await {
                Err(GodError::Unreachable { reason, .. }) => unreachable.push((node, reason)),
                answered => {
                    if node != start {
                        tracing::warn!(
                            "{} at {} does not answer; using {}",
                            self.service,
                            self.listed(&unreachable),
                            self.shown[node]
                        );
                    }
                    return (node, answered);
                }
            }
        }
        let reason = match unreachable.as_slice() {
            [(_, reason)] => reason.clone(),
            _ => format!("no node answers: {}", self.listed(&unreachable)),
        };
        let error = GodError::Unreachable {
            endpoint: self.shown.join(","),
            reason,
            variable: self.variable,
        };
        (start, Err(error))
    }

    /// The nodes that did not answer, each with why: `URL (reason), …`.
    fn listed(&self, unreachable: &[(usize, String)]) -> String {
        unreachable
            .iter()
            .map(|(node, reason)| format!("{} ({reason})", self.shown[*node]))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The items of a comma-separated URL list (a comma inside a password is written `%2C`).
fn list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// The vhost the AMQP URLs that name one (`explicit`) agree on; "/" when none names one.
fn agreed_vhost(explicit: &[&Url]) -> Result<String> {
    let named: BTreeSet<String> = explicit.iter().map(|url| vhost_of(url)).collect();
    if named.len() > 1 {
        return Err(GodError::Usage(format!(
            "the AMQP URLs {} name different vhosts ({})\nhint: every URL of the list is a node of one broker: give them the same path, or a path on the first only",
            explicit
                .iter()
                .map(|url| mask_url(url))
                .collect::<Vec<_>>()
                .join(","),
            named
                .into_iter()
                .map(|v| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(named.into_iter().next().unwrap_or_else(|| "/".to_string()))
}

/// One kind of URL god takes: its name in messages, its schemes, and what one looks like.
struct UrlKind {
    name: &'static str,
    schemes: [&'static str; 2],
    example: &'static str,
    hint: &'static str,
}

const AMQP: UrlKind = UrlKind {
    name: "AMQP",
    schemes: ["amqp", "amqps"],
    example: "amqp://user:password@127.0.0.1:5672/%2f",
    hint: "the path is the vhost",
};

const MANAGEMENT: UrlKind = UrlKind {
    name: "management",
    schemes: ["http", "https"],
    example: "http://127.0.0.1:15672",
    hint: "several nodes: comma-separated",
};

impl UrlKind {
    /// The URLs of a comma-separated list, each checked; an empty list is an error.
    fn parse_list(&self, raw: &str) -> Result<Vec<Url>> {
        let urls: Vec<Url> = list(raw)
            .map(|item| self.parse(item))
            .collect::<Result<_>>()?;
        if urls.is_empty() {
            return Err(GodError::Usage(format!(
                "the {} URL list is empty\nhint: give at least one URL, such as {}; several nodes are comma-separated",
                self.name, self.example
            )));
        }
        Ok(urls)
    }

    fn parse(&self, raw: &str) -> Result<Url> {
        let url = Url::parse(raw).map_err(|e| {
            GodError::Usage(format!(
                "invalid {} URL {}: {e}\nhint: it looks like {} ({})",
                self.name,
                mask_url_str(raw),
                self.example,
                self.hint
            ))
        })?;
        if !self.schemes.contains(&url.scheme()) {
            return Err(GodError::Usage(format!(
                "invalid {} URL {}: the scheme must be {} or {}",
                self.name,
                mask_url(&url),
                self.schemes[0],
                self.schemes[1]
            )));
        }
        Ok(url)
    }
}

/// The path of an AMQP URL naming `vhost`.
fn vhost_path(vhost: &str) -> String {
    format!("/{}", percent_encoding::utf8_percent_encode(vhost, SEGMENT))
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

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
        assert!(e.amqp_urls_secret().ends_with("/a%20b%2Fc"));
    }

    #[test]
    fn the_amqp_address_is_the_url_decoded_into_parts() {
        let e = BrokerEndpoints::resolve(Some("amqp://ops:s3cr%2Ft@[::1]/team%2Fa"), None).unwrap();
        let address = e.first_amqp().address();
        assert_eq!((address.host.as_str(), address.port), ("[::1]", 5672));
        assert_eq!(address.credentials.user, "ops");
        assert_eq!(address.credentials.password(), "s3cr/t");
        assert_eq!(address.vhost, "team/a");
        assert!(!address.tls);
        let tls = BrokerEndpoints::resolve(Some("amqps://broker.example"), None).unwrap();
        let address = tls.first_amqp().address();
        assert_eq!(
            (address.port, address.vhost.as_str(), address.tls),
            (5671, "/", true)
        );
        assert_eq!(address.credentials.user, "guest");
    }

    #[test]
    fn comma_separated_lists_are_nodes_of_one_broker_on_one_vhost() {
        let e = BrokerEndpoints::resolve(
            Some("amqp://ops:pw@127.0.0.1:5701/team, amqp://ops:pw@127.0.0.1:5702"),
            Some("http://127.0.0.1:15701,http://admin:secret@127.0.0.1:15702/"),
        )
        .unwrap();
        assert_eq!(e.vhost, "team");
        assert!(e.vhost_explicit);
        let shown: Vec<String> = e.amqp_endpoints().map(|a| a.display()).collect();
        assert_eq!(
            shown,
            [
                "amqp://ops:***@127.0.0.1:5701/team",
                "amqp://ops:***@127.0.0.1:5702/team"
            ]
        );
        assert_eq!(
            e.management_bases(),
            ["http://127.0.0.1:15701", "http://127.0.0.1:15702"]
        );
        assert_eq!(e.management_credentials.user, "admin");
        assert!(!format!("{e:?}").contains("secret") && !format!("{e:?}").contains("pw"));
        let moved = e.with_vhost("other");
        assert!(
            moved
                .amqp_endpoints()
                .all(|a| a.secret().ends_with("/other"))
        );
        assert_eq!(moved.amqp_urls_secret().matches(',').count(), 1);
    }

    #[test]
    fn urls_of_one_list_naming_different_vhosts_or_none_are_refused() {
        let err = BrokerEndpoints::resolve(Some("amqp://u:hunter2@a/x,amqp://u:hunter2@b/y"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("different vhosts"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = BrokerEndpoints::resolve(Some(" , "), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("URL list is empty"), "{err}");
    }
}
