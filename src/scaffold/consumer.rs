//! The consumer `god new service --consumer` writes: a FastStream app or an aio-pika script
//! that runs unchanged against the topology god applies. It declares its queue with exactly
//! the arguments the registry gives it (so RabbitMQ accepts it on the queue god created),
//! reads the broker from `RABBITMQ_URL` (falling back to the upstream's `RABBIT_URL`), uses the
//! registry's exchange, keys and prefetch, and rejects what it fails on into the dead-letter
//! queue.

use serde_json::Value;

use crate::model::Arguments;
use crate::model::queue_type::QUEUE_TYPE_ARG;

/// The client a consumer is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// FastStream, the platform's recommended way: `faststream run consumer:app`.
    FastStream,
    /// aio-pika, as Candystore and the gateway use it: `python consumer.py`.
    AioPika,
}

impl Client {
    /// The client's name on the command line.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "faststream" => Some(Client::FastStream),
            "aio-pika" => Some(Client::AioPika),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Client::FastStream => "faststream",
            Client::AioPika => "aio-pika",
        }
    }

    /// How the consumer is started, in its directory.
    pub fn run(self) -> &'static str {
        match self {
            Client::FastStream => "faststream run consumer:app",
            Client::AioPika => "python consumer.py",
        }
    }

    fn template(self) -> &'static str {
        match self {
            Client::FastStream => include_str!("templates/faststream.py"),
            Client::AioPika => include_str!("templates/aio_pika.py"),
        }
    }

    /// What `pip install -r requirements.txt` installs: the versions god's own tests run.
    fn requirements(self) -> &'static str {
        match self {
            Client::FastStream => "faststream[rabbit,cli]==0.7.8\n",
            Client::AioPika => "aio-pika==10.2.1\n",
        }
    }
}

/// What a consumer is written from: the registry's facts about the service's queue.
#[derive(Debug, Clone)]
pub struct ConsumerFacts {
    /// The service id.
    pub service: String,
    /// The bus exchange.
    pub exchange: String,
    /// The service's queue.
    pub queue: String,
    /// The routing keys god binds it with.
    pub keys: Vec<String>,
    /// The arguments the queue is declared with (the registry's, and its type).
    pub arguments: Arguments,
    /// The prefetch its consumers use.
    pub prefetch: u32,
    /// Where rejected events go, when anywhere.
    pub dead_letter_queue: Option<String>,
}

/// The files of a consumer: `consumer.py`, `requirements.txt` and `README.md`, by name.
pub fn files(client: Client, facts: &ConsumerFacts) -> Vec<(&'static str, String)> {
    let fill = |template: &str| fill(template, client, facts);
    vec![
        ("consumer.py", fill(client.template())),
        ("requirements.txt", client.requirements().to_string()),
        ("README.md", fill(include_str!("templates/README.md"))),
    ]
}

/// A template with its `{placeholders}` filled in.
fn fill(template: &str, client: Client, facts: &ConsumerFacts) -> String {
    let mut arguments = facts.arguments.clone();
    let queue_type = match client {
        // FastStream declares the type itself, from `queue_type`.
        Client::FastStream => arguments
            .remove(QUEUE_TYPE_ARG)
            .and_then(|t| t.as_str().map(str::to_uppercase))
            .unwrap_or_else(|| "CLASSIC".to_string()),
        Client::AioPika => String::new(),
    };
    let keys: Vec<String> = facts.keys.iter().map(|k| format!("`{k}`")).collect();
    let dead_letters = match &facts.dead_letter_queue {
        Some(queue) => format!("queue {queue}"),
        None => "no queue (the registry turns dead-lettering off: it is dropped)".to_string(),
    };
    let declared = match facts.arguments.is_empty() {
        true => "no arguments".to_string(),
        false => python(&Value::Object(
            facts.arguments.clone().into_iter().collect(),
        )),
    };
    let key_list = Value::Array(facts.keys.iter().cloned().map(Value::from).collect());
    let values = [
        ("{service}", facts.service.clone()),
        ("{queue}", facts.queue.clone()),
        ("{exchange}", facts.exchange.clone()),
        ("{keys}", keys.join(", ")),
        (
            "{first_key}",
            facts.keys.first().cloned().unwrap_or_default(),
        ),
        ("{key_list}", python(&key_list)),
        ("{declared}", declared),
        ("{dead_letters}", dead_letters),
        ("{prefetch}", facts.prefetch.to_string()),
        ("{queue_type}", queue_type),
        (
            "{arguments}",
            python(&Value::Object(arguments.into_iter().collect())),
        ),
        ("{client}", client.name().to_string()),
        ("{run}", client.run().to_string()),
    ];
    values
        .iter()
        .fold(template.to_string(), |text, (placeholder, value)| {
            text.replace(placeholder, value)
        })
}

/// A JSON value as a Python literal (a JSON string is a valid Python string).
fn python(value: &Value) -> String {
    match value {
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(_) | Value::String(_) => value.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(python).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), python(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(arguments: Value) -> ConsumerFacts {
        ConsumerFacts {
            service: "orders".into(),
            exchange: "bloodbank.events.v1".into(),
            queue: "services.shop.orders".into(),
            keys: vec!["shop.order.created".into(), "shop.order.paid".into()],
            arguments: serde_json::from_value(arguments).unwrap(),
            prefetch: 10,
            dead_letter_queue: Some("services.shop.orders_dlq".into()),
        }
    }

    #[test]
    fn every_placeholder_is_filled_for_both_clients() {
        for client in [Client::FastStream, Client::AioPika] {
            for (name, text) in files(client, &facts(json!({"x-queue-type": "quorum"}))) {
                assert!(
                    ![
                        "{service}",
                        "{queue}",
                        "{arguments}",
                        "{run}",
                        "{keys}",
                        "{prefetch}"
                    ]
                    .iter()
                    .any(|p| text.contains(p)),
                    "{name} of {client:?}:\n{text}"
                );
            }
        }
    }

    #[test]
    fn the_queue_is_declared_with_exactly_the_registry_arguments() {
        let files = files(
            Client::FastStream,
            &facts(json!({"x-queue-type": "quorum", "x-single-active-consumer": true})),
        );
        let consumer = &files[0].1;
        assert!(
            consumer.contains("queue_type=QueueType.QUORUM"),
            "{consumer}"
        );
        assert!(
            consumer.contains(r#"arguments={"x-single-active-consumer": True}"#),
            "FastStream adds the type itself: {consumer}"
        );
        let files = super::files(Client::AioPika, &facts(json!({})));
        let consumer = &files[0].1;
        assert!(consumer.contains("ARGUMENTS = {}"), "{consumer}");
        assert!(
            consumer.contains(r#"ROUTING_KEYS = ["shop.order.created", "shop.order.paid"]"#),
            "{consumer}"
        );
    }
}
