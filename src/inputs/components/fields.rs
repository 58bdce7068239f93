//! Field parsers of components.toml, in Docker Compose's notation: ports and durations.

use crate::model::containers::PortSpec;

/// Parses `[host_ip:][host_port:]container_port[/protocol]`; the host side defaults to 127.0.0.1.
pub fn parse_port(raw: &str) -> Result<PortSpec, String> {
    let (addr, protocol) = match raw.rsplit_once('/') {
        Some((a, p)) => (a, p.to_string()),
        None => (raw, "tcp".to_string()),
    };
    let (host_ip, rest) = match addr.strip_prefix('[') {
        Some(v6) => {
            let (ip, rest) = v6.split_once("]:").ok_or("unclosed [ in an IPv6 address")?;
            (ip.to_string(), rest)
        }
        None if addr.matches(':').count() == 2 => {
            let (ip, rest) = addr.split_once(':').expect("two colons");
            (ip.to_string(), rest)
        }
        None => ("127.0.0.1".to_string(), addr),
    };
    let number = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("{s:?} is not a port number"))
    };
    let (host_port, container_port) = match rest.split_once(':') {
        Some((h, c)) => (Some(number(h)?), number(c)?),
        None => (None, number(rest)?),
    };
    Ok(PortSpec {
        host_ip,
        host_port,
        container_port,
        protocol,
    })
}

/// Parses a memory size as Compose writes it: bytes, or a number with `b`, `k`, `m`, `g`
/// (binary units, `kb`/`mb`/`gb` too): `512m` is 536,870,912 bytes.
pub fn parse_memory(raw: &serde_json::Value) -> Result<i64, String> {
    let text = match raw {
        serde_json::Value::Number(n) => {
            return n
                .as_i64()
                .filter(|b| *b > 0)
                .ok_or_else(|| format!("{n} is not a number of bytes"));
        }
        serde_json::Value::String(s) => s.trim().to_ascii_lowercase(),
        other => return Err(format!("{other} is not a memory size")),
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a memory size"))?;
    let factor: f64 = match unit.trim().trim_end_matches('b') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("{text:?} is not a memory size")),
    };
    Ok((n * factor) as i64)
}

/// Parses a CPU limit (`0.5`, `"1.5"`) into billionths of a CPU, as the engine takes it.
pub fn parse_cpus(raw: &serde_json::Value) -> Result<i64, String> {
    let cpus = match raw {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|c: &f64| *c > 0.0)
    .ok_or_else(|| format!("{raw} is not a number of CPUs"))?;
    Ok((cpus * 1e9).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_and_cpus_read_as_compose_writes_them() {
        use serde_json::json;
        assert_eq!(parse_memory(&json!("512m")), Ok(536_870_912));
        assert_eq!(parse_memory(&json!("1g")), Ok(1_073_741_824));
        assert_eq!(parse_memory(&json!("64MB")), Ok(67_108_864));
        assert_eq!(parse_memory(&json!(1000)), Ok(1000));
        assert!(parse_memory(&json!("lots")).is_err());
        assert_eq!(parse_cpus(&json!(0.5)), Ok(500_000_000));
        assert_eq!(parse_cpus(&json!("1.5")), Ok(1_500_000_000));
        assert!(parse_cpus(&json!(0)).is_err());
    }

    #[test]
    fn ports_parse_like_compose() {
        assert_eq!(
            parse_port("8080").unwrap().to_string(),
            "127.0.0.1::8080/tcp"
        );
        assert_eq!(parse_port("[::1]:80:8080").unwrap().host_ip, "::1");
        assert!(parse_port("a:b").is_err());
    }
}
