//! Saved plans (`god plan --out FILE`, `god apply FILE`): the plan together with a digest of
//! every observed object it was made from, so that apply can refuse, naming what moved, when
//! the broker changed in between.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Plan, ResourceKind, binding_id, object_id};
use crate::model::ObservedState;
use crate::model::containers::ObservedContainers;

/// What `god plan --out` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    /// Always "god-plan".
    pub kind: String,
    /// The management API the plan was made against (no credentials).
    pub management_url: String,
    /// Digest of the whole observed state.
    pub fingerprint: String,
    /// Digest of each observed object, by identifier.
    pub observed: BTreeMap<String, String>,
    /// The plan itself.
    pub plan: Plan,
}

impl SavedPlan {
    /// Wraps a plan with the digests of the state it was made from.
    pub fn new(
        plan: Plan,
        broker: Option<&ObservedState>,
        containers: Option<&ObservedContainers>,
        management_url: &str,
    ) -> Self {
        let digests = all_digests(broker, containers);
        Self {
            kind: "god-plan".to_string(),
            management_url: management_url.to_string(),
            fingerprint: fingerprint(&digests),
            observed: digests,
            plan,
        }
    }

    /// The saved plan as the JSON text `god plan --out` writes.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a saved plan serialises") + "\n"
    }

    /// Reads a saved plan from its JSON text, refusing text that is not one (the reason).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let saved: SavedPlan = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if saved.kind != "god-plan" {
            return Err(format!("its kind is {:?}, not \"god-plan\"", saved.kind));
        }
        Ok(saved)
    }

    /// The engine names of the containers, networks and volumes the plan was made from or
    /// changes, by kind (`container`, `network`, `volume`): what to observe again before
    /// applying it.
    pub fn engine_names(&self, kind: ResourceKind) -> std::collections::BTreeSet<String> {
        let own = format!("{}/", kind.id_prefix());
        let recorded = self.observed.keys().filter_map(|id| {
            id.strip_prefix(&own).or_else(|| match kind {
                ResourceKind::Container => id.strip_prefix(FOREIGN_CONTAINER_PREFIX),
                _ => None,
            })
        });
        let changed = self
            .plan
            .changes
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.name());
        recorded.chain(changed).map(str::to_string).collect()
    }

    /// The objects that differ between the state the plan was made from and now, one line
    /// each (`queue/x changed`), or nothing when nothing moved.
    pub fn moved_since(
        &self,
        broker: Option<&ObservedState>,
        containers: Option<&ObservedContainers>,
    ) -> Vec<String> {
        let current = all_digests(broker, containers);
        let mut moved = Vec::new();
        for (id, digest) in &self.observed {
            match current.get(id) {
                None => moved.push(format!("  {id} was deleted")),
                Some(d) if d != digest => moved.push(format!("  {id} changed")),
                Some(_) => {}
            }
        }
        for id in current.keys().filter(|id| !self.observed.contains_key(*id)) {
            moved.push(format!("  {id} appeared"));
        }
        moved
    }
}

fn all_digests(
    broker: Option<&ObservedState>,
    containers: Option<&ObservedContainers>,
) -> BTreeMap<String, String> {
    let mut out = broker.map(object_digests).unwrap_or_default();
    if let Some(c) = containers {
        out.extend(container_digests(c));
    }
    out
}

/// How the digest of a foreign container that blocks a name starts.
const FOREIGN_CONTAINER_PREFIX: &str = "foreign-container/";

/// A digest per container: its configuration hash and whether it runs; foreign containers
/// that block a name count too.
pub fn container_digests(observed: &ObservedContainers) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in observed.managed.values() {
        let state = format!(
            "{}/{}",
            c.config_hash.as_deref().unwrap_or("none"),
            if c.running { "running" } else { "stopped" }
        );
        out.insert(object_id(ResourceKind::Container, &c.name), state);
    }
    for (name, id) in &observed.foreign_names {
        out.insert(format!("{FOREIGN_CONTAINER_PREFIX}{name}"), id.clone());
    }
    for (name, n) in &observed.networks {
        let owner = n.project.as_deref().unwrap_or("not god's");
        out.insert(
            object_id(ResourceKind::Network, name),
            format!("{owner}/{}", n.containers.join(",")),
        );
    }
    for (name, v) in &observed.volumes {
        // Not its size: a database's volume grows between plan and apply without anything moving.
        let owner = v.project.as_deref().unwrap_or("not god's");
        out.insert(
            object_id(ResourceKind::Volume, name),
            format!("{owner}/{}", v.containers.join(",")),
        );
    }
    out
}

/// A digest per observed object, depths and consumer counts excluded (they move all the time
/// and do not change what the plan does: deletions re-check emptiness when they run).
pub fn object_digests(observed: &ObservedState) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let t = &observed.topology;
    for e in t.exchanges.values() {
        out.insert(object_id(ResourceKind::Exchange, &e.name), digest(e));
    }
    for q in t.queues.values() {
        out.insert(object_id(ResourceKind::Queue, &q.name), digest(q));
    }
    for b in &t.bindings {
        out.insert(binding_id(b), digest(b));
    }
    for p in t.policies.values() {
        out.insert(object_id(ResourceKind::Policy, &p.name), digest(p));
    }
    for (name, origin) in &observed.managed_queues {
        out.insert(format!("managed/queue/{name}"), origin.as_str().to_string());
    }
    for (name, origin) in &observed.managed_exchanges {
        out.insert(
            format!("managed/exchange/{name}"),
            origin.as_str().to_string(),
        );
    }
    out
}

fn digest<T: Serialize>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).expect("objects serialise");
    hex::encode(&Sha256::digest(&bytes)[..8])
}

/// One digest over all object digests.
pub fn fingerprint(digests: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (id, d) in digests {
        hasher.update(id.as_bytes());
        hasher.update([0]);
        hasher.update(d.as_bytes());
        hasher.update([0]);
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}
