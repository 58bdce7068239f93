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

/// Parses `500ms`, `2s`, `1m`, `1h` into milliseconds.
pub fn parse_duration(raw: &str) -> Result<u64, String> {
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration"))?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{raw:?} is not a duration")),
    };
    Ok(n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_like_compose() {
        assert_eq!(
            parse_port("8080").unwrap().to_string(),
            "127.0.0.1::8080/tcp"
        );
        assert_eq!(parse_port("[::1]:80:8080").unwrap().host_ip, "::1");
        assert!(parse_port("a:b").is_err());
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert!(parse_duration("5 s").is_err());
    }
}
