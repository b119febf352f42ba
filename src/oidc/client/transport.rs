//! The HTTP plumbing under every call: the reqwest client (timeouts, pool, proxy, no
//! redirects), which URLs may be called, capped body reads, and transport errors for logs.

use super::error::{Endpoint, OpError};
use super::MAX_RESPONSE_BYTES;
use crate::config::{ProxyScheme, RealmHttpSettings};
use std::time::Duration;
use url::Url;

/// Upper bound of the overall per-request timeout (connect + socket timeouts, capped here).
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub(super) fn check_redirect(status: u16, endpoint: Endpoint) -> Result<(), OpError> {
    if (300..400).contains(&status) {
        return Err(OpError::Redirect { endpoint, status });
    }
    Ok(())
}

pub(super) async fn read_capped(
    response: reqwest::Response,
    endpoint: Endpoint,
) -> Result<Vec<u8>, OpError> {
    read_capped_to(response, endpoint, MAX_RESPONSE_BYTES).await
}

/// [`read_capped`] with a smaller cap than [`MAX_RESPONSE_BYTES`].
pub(super) async fn read_capped_to(
    mut response: reqwest::Response,
    endpoint: Endpoint,
    max: usize,
) -> Result<Vec<u8>, OpError> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(OpError::ResponseTooLarge { endpoint });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(endpoint, &e))?
    {
        if body.len() + chunk.len() > max {
            return Err(OpError::ResponseTooLarge { endpoint });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether a URL may be called: `https`, or `http` to a loopback host.
pub(super) fn check_url(url: &Url, endpoint: Endpoint) -> Result<(), OpError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(OpError::InsecureUrl { endpoint }),
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

pub(super) fn transport_error(endpoint: Endpoint, e: &reqwest::Error) -> OpError {
    if e.is_timeout() {
        return OpError::Timeout { endpoint };
    }
    // Sources only: the top-level message repeats the URL.
    let mut detail = crate::text::error_chain(e)
        .skip(1)
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    if detail.is_empty() {
        detail = if e.is_body() {
            "error reading the response body"
        } else if e.is_request() {
            "error sending the request"
        } else {
            "HTTP error"
        }
        .to_string();
    }
    let detail = clean_long(&detail);
    if e.is_connect() {
        OpError::Connect { endpoint, detail }
    } else {
        OpError::Transport { endpoint, detail }
    }
}

/// A transport error's detail as the log shows it: 500 characters, no control characters.
fn clean_long(s: &str) -> String {
    crate::text::Cap {
        max_chars: 500,
        control: Some(' '),
        ellipsis: true,
    }
    .apply(s)
}

pub(super) fn http_client(
    settings: &RealmHttpSettings,
    tls: rustls::ClientConfig,
) -> reqwest::Result<reqwest::Client> {
    let overall = (settings.connect_timeout + settings.socket_timeout).min(MAX_REQUEST_TIMEOUT);
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.socket_timeout)
        .timeout(overall)
        .pool_max_idle_per_host(settings.max_endpoint_connections as usize)
        .tcp_keepalive(settings.tcp_keep_alive.then_some(Duration::from_secs(60)))
        .user_agent(concat!("oidc-realm/", env!("CARGO_PKG_VERSION")))
        // Never pick up HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment.
        .no_proxy();
    if let Some(ttl) = settings.connection_pool_ttl {
        builder = builder.pool_idle_timeout(ttl);
    }
    if let Some(proxy) = &settings.proxy {
        let scheme = match proxy.scheme {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
        };
        let host = if proxy.host.contains(':') && !proxy.host.starts_with('[') {
            format!("[{}]", proxy.host)
        } else {
            proxy.host.clone()
        };
        builder = builder.proxy(reqwest::Proxy::all(format!(
            "{scheme}://{host}:{}",
            proxy.port
        ))?);
    }
    builder.build()
}
