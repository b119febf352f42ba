//! A plain OAuth 2.0 form POST over the same transport (rustls, timeouts, no redirects, size
//! cap, loopback-or-https URLs), for calls that are not a realm's: the token and revocation
//! endpoints of connections (`crate::connections`). The caller builds the form and reads
//! the answer; client authentication is given as a ready `Authorization` header value or in
//! the form.

use super::error::{Endpoint, OpError};
use super::tls::tls_config;
use super::transport::{check_redirect, check_url, http_client, read_capped, transport_error};
use super::{ClientBuildError, OpClient};
use crate::config::{RealmHttpSettings, RealmSslSettings, VerificationMode};
use crate::secret::Secret;
use std::time::Duration;
use url::Url;

impl OpClient {
    /// A client with the default `http.*` settings of a realm (5 s connect, 5 s socket
    /// timeout) and the system's trusted roots.
    pub fn with_defaults(name: &str) -> Result<OpClient, ClientBuildError> {
        let ssl = RealmSslSettings {
            certificate_authorities: Vec::new(),
            verification_mode: VerificationMode::Full,
            client_certificate: None,
            supported_protocols: Vec::new(),
            cipher_suites: Vec::new(),
        };
        let http = RealmHttpSettings {
            connect_timeout: Duration::from_secs(5),
            connection_read_timeout: Duration::from_secs(5),
            socket_timeout: Duration::from_secs(5),
            max_connections: 200,
            max_endpoint_connections: 200,
            connection_pool_ttl: Some(Duration::from_secs(180)),
            tcp_keep_alive: true,
            proxy: None,
        };
        let tls = tls_config(&ssl, &format!("{name}.")).map_err(ClientBuildError::Tls)?;
        let http = http_client(&http, tls)
            .map_err(|e| ClientBuildError::Http(crate::text::error_chain_text(&e)))?;
        Ok(OpClient { http })
    }

    /// POST `form` (already `application/x-www-form-urlencoded`) to `url`, with
    /// `authorization` as the `Authorization` header if given. Returns the status and the
    /// body (capped). Errors name the token endpoint; they never contain the form.
    pub async fn post_form(
        &self,
        url: &Url,
        form: Secret<String>,
        authorization: Option<Secret<String>>,
    ) -> Result<(u16, Vec<u8>), OpError> {
        check_url(url, Endpoint::Token)?;
        let mut request = self
            .http
            .post(url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(a) = &authorization {
            request = request.header(reqwest::header::AUTHORIZATION, a.expose_secret().as_str());
        }
        let response = request
            .body(form.expose_secret().clone())
            .send()
            .await
            .map_err(|e| transport_error(Endpoint::Token, &e))?;
        let status = response.status().as_u16();
        check_redirect(status, Endpoint::Token)?;
        let body = read_capped(response, Endpoint::Token).await?;
        Ok((status, body))
    }

    /// GET `url` asking for JSON (a metadata document). Returns the status and the body
    /// (capped). Errors name the token endpoint.
    pub async fn get_json(&self, url: &Url) -> Result<(u16, Vec<u8>), OpError> {
        check_url(url, Endpoint::Token)?;
        let response = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(Endpoint::Token, &e))?;
        let status = response.status().as_u16();
        check_redirect(status, Endpoint::Token)?;
        let body = read_capped(response, Endpoint::Token).await?;
        Ok((status, body))
    }
}
