//! Where a monitor's `call_back_url` may point: an `http://` or `https://` URL with a host, and,
//! with `--callback-allowed-hosts`, one of those hosts, so a monitor cannot make Keel post to an
//! internal address. One rule, checked when a monitor is written (the API refuses it) and again at
//! every delivery (the dispatcher refuses to send), so a monitor written before the list was set,
//! or while it was longer, cannot deliver outside it.

/// Why a callback URL may not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not an `http://` or `https://` URL with a host.
    NotHttp,
    /// Its host is not in the allowed list.
    HostNotAllowed(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotHttp => write!(f, "call_back_url must be an http:// or https:// URL"),
            Refusal::HostNotAllowed(host) => {
                write!(f, "call_back_url host {host} is not in the allowed hosts (--callback-allowed-hosts)")
            }
        }
    }
}

/// Checks `url` against the rule; `allowed` is the server's `--callback-allowed-hosts` (`None`
/// allows any host). Hosts compare without regard to case.
pub fn check(url: &str, allowed: Option<&[String]>) -> Result<(), Refusal> {
    let parsed = reqwest::Url::parse(url).map_err(|_| Refusal::NotHttp)?;
    let host = match (parsed.scheme(), parsed.host_str()) {
        ("http" | "https", Some(host)) => host,
        _ => return Err(Refusal::NotHttp),
    };
    match allowed {
        Some(allowed) if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) => {
            Err(Refusal::HostNotAllowed(host.to_string()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_to_allowed_hosts_pass() {
        let allowed = ["hooks.example.com".to_string(), "127.0.0.1".to_string()];
        assert_eq!(check("https://HOOKS.example.com/x", Some(&allowed)), Ok(()));
        assert_eq!(check("http://127.0.0.1:9000/hook", Some(&allowed)), Ok(()));
        assert_eq!(
            check("http://169.254.169.254/", Some(&allowed)),
            Err(Refusal::HostNotAllowed("169.254.169.254".into()))
        );
        assert_eq!(check("http://anything.internal/", None), Ok(()));
        for bad in ["ftp://hooks.example.com/", "not a url", "file:///etc/passwd", "http://"] {
            assert_eq!(check(bad, None), Err(Refusal::NotHttp), "{bad}");
        }
    }
}
