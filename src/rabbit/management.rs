//! The management HTTP API, through `rabbitmq_http_client` (maintained by the RabbitMQ team)
//! where its calls fit, and through the same `reqwest` client where they do not (each such
//! place says why). Every failure becomes a [`GodError`] that says what to do.

use super::settings::{ChannelEntry, DeprecatedFeature, QueueSettings};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;

use rabbitmq_http_client::api::{Client, ClientBuilder, HttpClientError};
use rabbitmq_http_client::error::Error as ClientError;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{GodError, Result};
use crate::model::{ApplyTo, ExchangeKind};
use crate::rabbit::endpoints::{BrokerEndpoints, NodeList};

mod topology;
/// Times a GET answered with HTTP 500 is sent (see [`ManagementApi::deliver_get`]).
const GET_ATTEMPTS: u32 = 3;

type HttpClient = Client<String, String, String>;

/// A management API session for one vhost, on the first node of the list that answers; a
/// request that cannot reach its node is sent to the next (every request god sends is
/// idempotent), and the node that answered is used from then on.
pub struct ManagementApi {
    bases: Vec<String>,
    clients: Vec<HttpClient>,
    current: AtomicUsize,
    http: reqwest::Client,
    endpoints: BrokerEndpoints,
}

/// The parts of a vhost's definitions export god reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DefinitionsExport {
    /// Exchanges (built-in ones excluded by the broker).
    #[serde(default)]
    pub exchanges: Vec<ExportedExchange>,
    /// Queues (exclusive ones excluded by the broker).
    #[serde(default)]
    pub queues: Vec<ExportedQueue>,
    /// Bindings (the default exchange's excluded by the broker).
    #[serde(default)]
    pub bindings: Vec<ExportedBinding>,
    /// Policies (operator policies are read apart).
    #[serde(default)]
    pub policies: Vec<ExportedPolicy>,
}

/// An exchange as exported.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportedExchange {
    /// The exchange's name (empty for the default exchange).
    pub name: String,
    /// How it routes.
    #[serde(rename = "type")]
    pub kind: ExchangeKind,
    /// Whether it survives a broker restart.
    pub durable: bool,
    /// Whether the broker deletes it with its last binding.
    pub auto_delete: bool,
    /// Whether only other exchanges may route to it.
    #[serde(default)]
    pub internal: bool,
    /// Its optional arguments, as the broker stores them.
    #[serde(default)]
    pub arguments: crate::model::Arguments,
}

/// A queue as exported.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportedQueue {
    /// The queue's name.
    pub name: String,
    /// Whether it survives a broker restart.
    pub durable: bool,
    /// Whether the broker deletes it with its last consumer.
    pub auto_delete: bool,
    /// Its optional arguments, as the broker stores them (4.x adds `x-queue-type`).
    #[serde(default)]
    pub arguments: crate::model::Arguments,
}

/// A binding as exported.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportedBinding {
    /// Source exchange.
    pub source: String,
    /// The queue or exchange bound.
    pub destination: String,
    /// "queue" or "exchange".
    pub destination_type: String,
    /// The binding key it is bound with.
    pub routing_key: String,
    /// Its optional arguments (a headers exchange matches on them).
    #[serde(default)]
    pub arguments: crate::model::Arguments,
}

/// A policy as exported.
#[derive(Debug, Clone, Deserialize)]
pub struct ExportedPolicy {
    /// The policy's name.
    pub name: String,
    /// The regular expression over object names it applies to.
    pub pattern: String,
    /// Which objects it applies to.
    #[serde(rename = "apply-to")]
    pub apply_to: ApplyTo,
    /// Among the policies matching one object, the highest priority wins.
    pub priority: i64,
    /// The settings it applies.
    #[serde(default)]
    pub definition: crate::model::Arguments,
}

/// One entry of the vhost limits answer.
#[derive(Debug, Clone, Deserialize)]
struct VhostLimitsEntry {
    #[serde(default)]
    value: std::collections::BTreeMap<String, i64>,
}

/// Depth, consumers and growth of one queue, from the queue list (the statistics lag by up
/// to 5 s).
#[derive(Debug, Clone, Deserialize)]
pub struct QueueListEntry {
    /// The queue's name.
    pub name: String,
    /// Messages (absent while the queue's stats are not emitted yet).
    #[serde(default)]
    pub messages: Option<u64>,
    /// Consumers attached (absent while the queue's stats are not emitted yet).
    #[serde(default)]
    pub consumers: Option<u64>,
    /// Messages delivered to a consumer and not acknowledged yet.
    #[serde(default)]
    pub messages_unacknowledged: Option<u64>,
    /// How the depth changes.
    #[serde(default)]
    pub messages_details: Option<Rate>,
    /// The connection owning an exclusive queue.
    #[serde(default)]
    pub owner_pid_details: Option<OwnerField>,
    /// Its arguments, as declared.
    #[serde(default)]
    pub arguments: serde_json::Map<String, Value>,
}

/// A queue's name and whether it is exclusive (the queue list without statistics).
#[derive(Debug, Clone, Deserialize)]
struct ExclusiveEntry {
    name: String,
    #[serde(default)]
    exclusive: bool,
}

/// Where a queue lives in the cluster: its node (classic), or its members and which of them
/// are online (quorum, stream).
#[derive(Debug, Clone, Deserialize)]
pub struct QueuePlacement {
    /// The queue's name.
    pub name: String,
    /// `classic`, `quorum` or `stream`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The node of a classic queue; the leader's node of a quorum queue.
    #[serde(default)]
    pub node: Option<String>,
    /// `running`, `down`, … (absent until the broker's next statistics round).
    #[serde(default)]
    pub state: Option<String>,
    /// The leader of a quorum queue or stream.
    #[serde(default)]
    pub leader: Option<String>,
    /// The nodes holding a replica.
    #[serde(default)]
    pub members: Vec<String>,
    /// The members that are online.
    #[serde(default)]
    pub online: Vec<String>,
}

impl QueuePlacement {
    /// Whether it is replicated (a quorum queue or a stream: it has members).
    pub fn is_replicated(&self) -> bool {
        !self.members.is_empty()
    }

    /// Its members on running nodes: those not `down` when the down nodes are known, else the
    /// members the broker lists as online.
    pub fn members_online(&self, down: Option<&BTreeSet<String>>) -> usize {
        match down {
            Some(down) => self.members.iter().filter(|m| !down.contains(*m)).count(),
            None => self.online.len(),
        }
    }

    /// Whether fewer than a majority of its members are online: then it has no leader.
    pub fn short_of_majority(&self, down: Option<&BTreeSet<String>>) -> bool {
        self.members_online(down) <= self.members.len() / 2
    }
}

/// The broker's overview, as far as god reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Overview {
    /// RabbitMQ's version.
    #[serde(default)]
    pub rabbitmq_version: String,
    /// Erlang's version.
    #[serde(default)]
    pub erlang_version: String,
}

/// A node of the broker's cluster.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeEntry {
    /// The node's name (`rabbit@host`).
    pub name: String,
    /// Whether it runs.
    #[serde(default)]
    pub running: bool,
    /// The nodes it cannot reach (a network partition).
    #[serde(default)]
    pub partitions: Vec<String>,
}

/// A rate of change, per second.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Rate {
    /// Per second (negative when falling).
    #[serde(default)]
    pub rate: f64,
}

/// A consumer, from the broker's consumer list (lags by a few seconds).
#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerEntry {
    /// The consumer tag, unique on its channel.
    pub consumer_tag: String,
    /// The queue it consumes from.
    pub queue: NamedRef,
    /// Its prefetch limit (0: none).
    #[serde(default)]
    pub prefetch_count: u64,
    /// The channel it consumes on, which names its connection.
    #[serde(default)]
    pub channel_details: ChannelDetails,
}

/// An object named by reference.
#[derive(Debug, Clone, Deserialize)]
pub struct NamedRef {
    /// The name the broker gives it.
    pub name: String,
}

/// A consumer's channel.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChannelDetails {
    /// The broker-side name of its connection (addresses).
    #[serde(default)]
    pub connection_name: String,
}

/// A resource alarm: publishers are blocked while it lasts.
#[derive(Debug, Clone, Deserialize)]
pub struct Alarm {
    /// The node that raised it.
    #[serde(default)]
    pub node: String,
    /// `memory` or `disk`.
    #[serde(default)]
    pub resource: String,
}

/// The alarms health check's answer when it fails.
#[derive(Debug, Clone, Deserialize)]
struct AlarmsAnswer {
    #[serde(default)]
    alarms: Vec<Alarm>,
}

/// Who owns an exclusive queue (an empty list until the broker's next statistics round).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OwnerField {
    /// Known owner.
    Known(OwnerDetails),
    /// Not known yet.
    Unknown(Vec<Value>),
}

/// The connection owning an exclusive queue.
#[derive(Debug, Clone, Deserialize)]
pub struct OwnerDetails {
    /// The connection's broker-side name (its addresses).
    #[serde(default)]
    pub name: Option<String>,
}

impl ManagementApi {
    /// Prepares a session (nothing is sent yet).
    pub fn new(endpoints: &BrokerEndpoints) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| GodError::Other(format!("cannot set up the HTTP client: {e}")))?;
        let bases = endpoints.management_bases();
        let creds = &endpoints.management_credentials;
        let clients = bases
            .iter()
            .map(|base| {
                ClientBuilder::new()
                    .with_endpoint(format!("{base}/api"))
                    .with_basic_auth_credentials(creds.user.clone(), creds.password().to_string())
                    .with_client(http.clone())
                    .build()
                    .map_err(|e| GodError::Usage(format!("invalid management URL: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            bases,
            clients,
            current: AtomicUsize::new(0),
            http,
            endpoints: endpoints.clone(),
        })
    }

    /// The management URL in use: the node that answered last.
    pub fn endpoint(&self) -> &str {
        &self.bases[self.current.load(Ordering::Relaxed)]
    }

    /// Runs `attempt` on the node in use, then on each other node in turn while the node cannot
    /// be reached; the first node that answers becomes the one in use (and god says so).
    async fn failover<T>(&self, attempt: impl AsyncFn(usize) -> Result<T>) -> Result<T> {
        let nodes = NodeList {
            shown: &self.bases,
            service: "the management API",
            variable: "RABBITMQ_MANAGEMENT_URL",
        };
        let start = self.current.load(Ordering::Relaxed);
        let (node, answer) = nodes.first_answering(start, attempt).await;
        self.current.store(node, Ordering::Relaxed);
        answer
    }

    /// Calls the HTTP client crate on each node in turn, like [`Self::failover`].
    async fn with_client<T>(
        &self,
        operation: &str,
        call: impl AsyncFn(&HttpClient) -> std::result::Result<T, HttpClientError>,
    ) -> Result<T> {
        self.failover(async |node| {
            call(&self.clients[node])
                .await
                .map_err(|e| self.client_error(node, e, operation))
        })
        .await
    }

    /// `/api/` path of a collection of this vhost: `queues/%2F`.
    fn in_vhost(&self, collection: &str) -> String {
        format!("{collection}/{}", encode(&self.endpoints.vhost))
    }

    /// `/api/` path of one object of this vhost: `queues/%2F/NAME`.
    fn object_in_vhost(&self, collection: &str, name: &str) -> String {
        format!("{}/{}", self.in_vhost(collection), encode(name))
    }

    /// The vhost this session works on.
    pub fn vhost(&self) -> &str {
        &self.endpoints.vhost
    }

    /// Checks that the API answers, accepts the credentials, and that the vhost exists.
    /// Called with reqwest: the crate's `get_vhost` cannot read RabbitMQ 3.10's answer (3.10
    /// sends `tags` as a string where the crate expects a list).
    pub async fn check_vhost(&self) -> Result<()> {
        self.get(&self.in_vhost("vhosts"), "the vhost lookup")
            .await
            .map(|_| ())
    }

    /// The vhost's definitions (one request). The crate's typed export drops exchanges'
    /// `internal` flag, which god's record exchange relies on, so its JSON text is parsed here.
    pub async fn definitions(&self) -> Result<DefinitionsExport> {
        let operation = "the definitions export";
        let text = self
            .with_client(operation, async |client| {
                client
                    .export_vhost_definitions_as_string(&self.endpoints.vhost)
                    .await
            })
            .await?;
        serde_json::from_str(&text).map_err(|e| self.unexpected(operation, e))
    }

    /// Depth and consumers of every queue (one request). Called with reqwest: the crate's
    /// `list_queues_in` cannot ask for `columns`, and full queue objects are about ten times
    /// larger, which dominates `god plan` on large vhosts.
    pub async fn queue_list(&self) -> Result<Vec<QueueListEntry>> {
        let path = format!(
            "{}?columns=name,messages,consumers,messages_unacknowledged,messages_details.rate",
            self.in_vhost("queues")
        );
        self.get_json(&path, "the queue list").await
    }

    /// The vhost's exclusive queues (one request, without statistics: a tenth of the cost of
    /// the full list).
    pub async fn exclusive_queues(&self) -> Result<Vec<String>> {
        let path = format!(
            "{}?disable_stats=true&columns=name,exclusive",
            self.in_vhost("queues")
        );
        let entries: Vec<ExclusiveEntry> = self.get_json(&path, "the queue list").await?;
        Ok(entries
            .into_iter()
            .filter(|q| q.exclusive)
            .map(|q| q.name)
            .collect())
    }

    /// Where each queue of the vhost lives (one request).
    pub async fn queue_placement(&self) -> Result<Vec<QueuePlacement>> {
        let path = format!(
            "{}?columns=name,type,node,state,leader,members,online",
            self.in_vhost("queues")
        );
        let operation = "the queue placement";
        // The broker may send a key twice (`online`, from its statistics and live): read
        // through a JSON value, where the last one wins, as it does in RabbitMQ's own UI.
        let entries: Vec<Value> = self.get_json(&path, operation).await?;
        entries
            .into_iter()
            .map(|entry| serde_json::from_value(entry).map_err(|e| self.unexpected(operation, e)))
            .collect()
    }

    /// The vhost's consumers (one request).
    pub async fn consumers(&self) -> Result<Vec<ConsumerEntry>> {
        self.get_json(&self.in_vhost("consumers"), "the consumer list")
            .await
    }

    /// A queue's bindings, or None when the queue does not exist.
    pub async fn queue_bindings(&self, queue: &str) -> Result<Option<Vec<ExportedBinding>>> {
        let path = format!("{}/bindings", self.object_in_vhost("queues", queue));
        self.get_json_if_exists(&path, "a queue's bindings").await
    }

    /// A queue's bindings from exchanges (not the default exchange's implicit one); none when
    /// the queue does not exist.
    pub async fn exchange_bindings_of(&self, queue: &str) -> Result<Vec<ExportedBinding>> {
        Ok(self
            .queue_bindings(queue)
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|b| !b.source.is_empty())
            .collect())
    }

    /// What the 4.x checks of `god doctor` read of the vhost's queues: durability,
    /// exclusivity, type, arguments and the policy in effect (one request, without
    /// statistics).
    pub async fn queue_settings(&self) -> Result<Vec<QueueSettings>> {
        let path = format!(
            "{}?disable_stats=true&columns=name,durable,exclusive,type,arguments,policy",
            self.in_vhost("queues")
        );
        self.get_json(&path, "the queue settings").await
    }

    /// The vhost's channels (their prefetch settings).
    pub async fn channels(&self) -> Result<Vec<ChannelEntry>> {
        let path = format!("vhosts/{}/channels", encode(&self.endpoints.vhost));
        self.get_json(&path, "the channel list").await
    }

    /// The deprecated features the broker sees in use (RabbitMQ 3.13 and later; none before).
    pub async fn deprecated_features_used(&self) -> Result<Vec<DeprecatedFeature>> {
        let used = self
            .get_json_if_exists("deprecated-features/used", "the deprecated features in use")
            .await?;
        Ok(used.unwrap_or_default())
    }

    /// The vhost's (user) policies.
    pub async fn policies(&self) -> Result<Vec<ExportedPolicy>> {
        self.get_json(&self.in_vhost("policies"), "the policy list")
            .await
    }

    /// The broker's overview (its version).
    pub async fn overview(&self) -> Result<Overview> {
        self.get_json("overview", "the overview").await
    }

    /// The cluster's nodes.
    pub async fn nodes(&self) -> Result<Vec<NodeEntry>> {
        self.get_json("nodes", "the node list").await
    }

    /// One queue's entry, or None when it does not exist.
    pub async fn queue(&self, name: &str) -> Result<Option<QueueListEntry>> {
        let path = self.object_in_vhost("queues", name);
        self.get_json_if_exists(&path, "a queue lookup").await
    }

    /// The client-given name of a connection, from its broker-side name.
    pub async fn connection_name(&self, connection: &str) -> Option<String> {
        let path = format!("connections/{}", encode(connection));
        let details: Value = self.get_json(&path, "a connection lookup").await.ok()?;
        details["client_properties"]["connection_name"]
            .as_str()
            .map(str::to_string)
    }

    /// A management API resource, read as `T`. `path` is relative to `/api/`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        operation: &str,
    ) -> Result<T> {
        self.get(path, operation)
            .await?
            .json()
            .await
            .map_err(|e| self.unexpected(operation, e))
    }

    /// A resource as JSON, with None when it does not exist (404).
    async fn get_json_if_exists<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        operation: &str,
    ) -> Result<Option<T>> {
        let response = self.deliver_get(path).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.check_status(response, operation).await?;
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| self.unexpected(operation, e))
    }

    /// The resource alarms in effect, from the broker's own health check (current, unlike the
    /// node statistics): empty when it passes (200), the alarms when it fails (503).
    pub async fn alarms(&self) -> Result<Vec<Alarm>> {
        let operation = "the alarms health check";
        let response = self.deliver(Method::GET, "health/checks/alarms").await?;
        if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            self.check_status(response, operation).await?;
            return Ok(Vec::new());
        }
        let answer: AlarmsAnswer = response
            .json()
            .await
            .map_err(|e| self.unexpected(operation, e))?;
        Ok(answer.alarms)
    }

    /// Imports a partial definitions document into the vhost (one request).
    pub async fn import(&self, document: Value) -> Result<()> {
        self.with_client("the definitions import", async |client| {
            client
                .import_vhost_definitions(&self.endpoints.vhost, document.clone())
                .await
        })
        .await
    }

    /// Deletes a queue; with `if_empty`, the broker refuses when it holds messages (returns
    /// `Ok(false)`). Called with reqwest: the crate's `delete_queue` has no `if-empty`.
    pub async fn delete_queue(&self, name: &str, if_empty: bool) -> Result<bool> {
        let mut path = self.object_in_vhost("queues", name);
        if if_empty {
            path.push_str("?if-empty=true");
        }
        self.guarded_delete(&path, "a queue deletion").await
    }

    /// Deletes an exchange and every binding to or from it (a replace that was allowed).
    pub async fn delete_exchange_forcibly(&self, name: &str) -> Result<()> {
        self.with_client("an exchange deletion", async |client| {
            client
                .delete_exchange(&self.endpoints.vhost, name, true)
                .await
        })
        .await
    }

    /// Deletes an exchange unless other objects are still bound to it (returns `Ok(false)`).
    /// Called with reqwest: the crate's `delete_exchange` has no `if-unused`.
    pub async fn delete_exchange(&self, name: &str) -> Result<bool> {
        let path = format!("{}?if-unused=true", self.object_in_vhost("exchanges", name));
        self.guarded_delete(&path, "an exchange deletion").await
    }

    /// Deletes a policy (a missing one is fine).
    pub async fn delete_policy(&self, name: &str) -> Result<()> {
        self.with_client("a policy deletion", async |client| {
            client
                .delete_policy(&self.endpoints.vhost, name, true)
                .await
        })
        .await
    }

    /// The vhost's operator policies (one request).
    pub async fn operator_policies(&self) -> Result<Vec<ExportedPolicy>> {
        self.get_json(
            &self.in_vhost("operator-policies"),
            "the operator policy list",
        )
        .await
    }

    /// Declares or changes an operator policy of the vhost.
    pub async fn put_operator_policy(&self, policy: &crate::model::PolicySpec) -> Result<()> {
        let body = serde_json::json!({
            "pattern": policy.pattern,
            "apply-to": policy.apply_to,
            "priority": policy.priority,
            "definition": policy.definition,
        });
        self.send_json(
            Method::PUT,
            &self.object_in_vhost("operator-policies", &policy.name),
            &body,
            "an operator policy declaration",
        )
        .await
    }

    /// Deletes an operator policy (a missing one is fine).
    pub async fn delete_operator_policy(&self, name: &str) -> Result<()> {
        self.guarded_delete(
            &self.object_in_vhost("operator-policies", name),
            "an operator policy deletion",
        )
        .await
        .map(|_| ())
    }

    /// The vhost's limits by name (`max-queues`, `max-connections`).
    pub async fn vhost_limits(&self) -> Result<std::collections::BTreeMap<String, i64>> {
        let entries: Vec<VhostLimitsEntry> = self
            .get_json(&self.in_vhost("vhost-limits"), "the vhost limits")
            .await?;
        Ok(entries.into_iter().flat_map(|e| e.value).collect())
    }

    /// Sets one limit of the vhost.
    pub async fn put_vhost_limit(&self, name: &str, value: i64) -> Result<()> {
        let body = serde_json::json!({ "value": value });
        self.send_json(
            Method::PUT,
            &self.object_in_vhost("vhost-limits", name),
            &body,
            "a vhost limit change",
        )
        .await
    }

    /// Clears one limit of the vhost (a missing one is fine).
    pub async fn delete_vhost_limit(&self, name: &str) -> Result<()> {
        self.guarded_delete(
            &self.object_in_vhost("vhost-limits", name),
            "a vhost limit removal",
        )
        .await
        .map(|_| ())
    }

    /// Sends a JSON body and checks the answer's status.
    async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        operation: &str,
    ) -> Result<()> {
        let response = self.deliver_with(method, path, Some(body)).await?;
        self.check_status(response, operation).await.map(|_| ())
    }

    async fn guarded_delete(&self, path: &str, operation: &str) -> Result<bool> {
        let response = self.deliver(Method::DELETE, path).await?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(true),
            400 => Ok(false),
            _ => self.check_status(response, operation).await.map(|_| true),
        }
    }

    /// A GET on the first node that answers, asked again when the broker answers HTTP 500:
    /// RabbitMQ 3.10's management cache can crash while it lists queues (a `badarg` in
    /// `adjust_hibernated_memory_use` on a quorum queue, seen once in this suite's migration
    /// test) and is restarted at once. Every GET is safe to repeat.
    async fn deliver_get(&self, path: &str) -> Result<reqwest::Response> {
        let mut attempt = 1;
        loop {
            let response = self.deliver(Method::GET, path).await?;
            if response.status() != reqwest::StatusCode::INTERNAL_SERVER_ERROR
                || attempt == GET_ATTEMPTS
            {
                return Ok(response);
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            attempt += 1;
        }
    }

    /// A GET (see [`Self::deliver_get`]) whose status is checked.
    async fn get(&self, path: &str, operation: &str) -> Result<reqwest::Response> {
        let response = self.deliver_get(path).await?;
        self.check_status(response, operation).await
    }

    /// Sends an authenticated request to `/api/PATH` on the first node that answers; the
    /// status is left to the caller.
    async fn deliver(&self, method: Method, path: &str) -> Result<reqwest::Response> {
        self.deliver_with(method, path, None).await
    }

    /// Like [`Self::deliver`], with an optional JSON body.
    async fn deliver_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response> {
        let creds = &self.endpoints.management_credentials;
        self.failover(async |node| {
            let request = self
                .http
                .request(method.clone(), format!("{}/api/{path}", self.bases[node]))
                .basic_auth(&creds.user, Some(creds.password()));
            match body {
                Some(body) => request.json(body),
                None => request,
            }
            .send()
            .await
            .map_err(|e| self.transport_error(node, e))
        })
        .await
    }

    async fn check_status(
        &self,
        response: reqwest::Response,
        operation: &str,
    ) -> Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(self.status_error(status.as_u16(), &body, operation))
    }

    fn status_error(&self, status: u16, body: &str, operation: &str) -> GodError {
        let endpoint = self.endpoint().to_string();
        let user = self.endpoints.management_credentials.user.clone();
        match status {
            401 => GodError::BadCredentials {
                endpoint,
                user,
                detail: "HTTP 401 from the management API".to_string(),
            },
            403 => GodError::Forbidden {
                endpoint,
                user,
                operation: operation.to_string(),
            },
            404 if operation == "the vhost lookup" => GodError::VhostMissing {
                vhost: self.endpoints.vhost.clone(),
                endpoint,
                user,
            },
            _ => GodError::Broker {
                endpoint,
                operation: operation.to_string(),
                detail: format!("HTTP {status}: {}", reason_of(body)),
            },
        }
    }

    fn client_error(&self, node: usize, error: HttpClientError, operation: &str) -> GodError {
        match error {
            ClientError::ClientErrorResponse {
                status_code, body, ..
            }
            | ClientError::ServerErrorResponse {
                status_code, body, ..
            } => self.status_error(
                status_code.as_u16(),
                body.as_deref().unwrap_or_default(),
                operation,
            ),
            ClientError::NotFound => self.status_error(404, "not found", operation),
            ClientError::RequestError { error, .. } => self.transport_error(node, error),
            other => GodError::Broker {
                endpoint: self.bases[node].clone(),
                operation: operation.to_string(),
                detail: other.to_string(),
            },
        }
    }

    fn transport_error(&self, node: usize, error: reqwest::Error) -> GodError {
        let reason = if error.is_connect() {
            "connection refused or host unreachable".to_string()
        } else if error.is_timeout() {
            "timed out".to_string()
        } else if error.is_decode() || error.is_body() {
            return self.unexpected("a request", error);
        } else {
            // reqwest's messages carry the URL, which never holds credentials here.
            error.to_string()
        };
        GodError::Unreachable {
            endpoint: self.bases[node].clone(),
            reason,
            variable: "RABBITMQ_MANAGEMENT_URL",
        }
    }

    fn unexpected(&self, operation: &str, error: impl std::fmt::Display) -> GodError {
        GodError::Broker {
            endpoint: self.endpoint().to_string(),
            operation: operation.to_string(),
            detail: format!("an answer god cannot read ({error})"),
        }
    }
}

/// The `reason` of a management API error body, or the body itself.
fn reason_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// Percent-encodes one path segment (a vhost `/` becomes `%2F`).
pub fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}
