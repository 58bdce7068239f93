//! What a plan reads of a vhost ([`ManagementApi::topology`]): the definitions export's
//! objects, read as four lists at once.

use serde::Deserialize;

use super::{
    DefinitionsExport, ExportedBinding, ExportedExchange, ExportedPolicy, ExportedQueue,
    ManagementApi,
};
use crate::error::Result;

/// A queue as the queue list gives it: what the export gives, and whether it is exclusive.
#[derive(Debug, Clone, Deserialize)]
struct ListedQueue {
    #[serde(flatten)]
    queue: ExportedQueue,
    #[serde(default)]
    exclusive: bool,
}

impl ManagementApi {
    /// What a plan reads of the vhost, in the shape of a definitions export but read in four
    /// requests at once, each with only the columns a plan needs and without statistics:
    /// exchanges (the built-in `amq.*` and the default one left out, as the export does),
    /// queues (exclusive ones left out), bindings (the default exchange's left out), policies.
    pub async fn topology(&self) -> Result<DefinitionsExport> {
        let exchanges = format!(
            "{}?disable_stats=true&columns=name,type,durable,auto_delete,internal,arguments",
            self.in_vhost("exchanges")
        );
        let queues = format!(
            "{}?disable_stats=true&columns=name,durable,auto_delete,exclusive,arguments",
            self.in_vhost("queues")
        );
        let bindings = format!(
            "{}?columns=source,destination,destination_type,routing_key,arguments",
            self.in_vhost("bindings")
        );
        let policies = self.in_vhost("policies");
        let (exchanges, queues, bindings, policies) = tokio::join!(
            self.get_json::<Vec<ExportedExchange>>(&exchanges, "the exchange list"),
            self.get_json::<Vec<ListedQueue>>(&queues, "the queue list"),
            self.get_json::<Vec<ExportedBinding>>(&bindings, "the binding list"),
            self.get_json::<Vec<ExportedPolicy>>(&policies, "the policy list"),
        );
        Ok(DefinitionsExport {
            exchanges: exchanges?
                .into_iter()
                .filter(|e| !e.name.is_empty() && !e.name.starts_with("amq."))
                .collect(),
            queues: queues?
                .into_iter()
                .filter(|q| !q.exclusive)
                .map(|q| q.queue)
                .collect(),
            bindings: bindings?
                .into_iter()
                .filter(|b| !b.source.is_empty())
                .collect(),
            policies: policies?,
        })
    }
}
