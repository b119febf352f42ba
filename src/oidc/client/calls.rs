//! The outbound calls of an [`OpClient`]: the code exchange at the token endpoint, UserInfo,
//! and JWK set fetches.

use super::auth::authenticate_request;
use super::error::{Endpoint, OpError};
use super::response::{
    oauth_error_body, parse_token_response, parse_userinfo_body, parse_www_authenticate,
    userinfo_content_type,
};
use super::transport::{check_redirect, check_url, read_capped, read_capped_to, transport_error};
use super::{OpClient, TokenEndpointResponse};
use crate::config::RealmConfig;
use serde_json::{Map, Value};
use url::Url;

impl OpClient {
    /// Exchange an authorization code at `op.token_endpoint` (OIDC Core §3.1.3.1), with the
    /// realm's `rp.client_auth_method`. `now_secs` is used for a `client_secret_jwt` assertion.
    pub async fn exchange_code(
        &self,
        realm: &RealmConfig,
        code: &str,
        pkce_verifier: Option<&str>,
        now_secs: i64,
    ) -> Result<TokenEndpointResponse, OpError> {
        let endpoint = realm
            .op
            .token_endpoint
            .as_ref()
            .ok_or(OpError::NoTokenEndpoint)?;
        check_url(endpoint, Endpoint::Token)?;

        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &realm.rp.redirect_uri_exact);
        if let Some(v) = pkce_verifier {
            form.append_pair("code_verifier", v);
        }
        let request = authenticate_request(
            self.http.post(endpoint.clone()),
            &mut form,
            realm,
            endpoint,
            now_secs,
        )?;
        let body = form.finish();
        let response = request
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(Endpoint::Token, &e))?;
        let status = response.status().as_u16();
        check_redirect(status, Endpoint::Token)?;
        let bytes = read_capped(response, Endpoint::Token).await?;
        parse_token_response(status, &bytes)
    }

    /// Call the UserInfo endpoint with the OP's access token; returns its JSON object.
    pub async fn userinfo(
        &self,
        endpoint: &Url,
        access_token: &str,
    ) -> Result<Map<String, Value>, OpError> {
        check_url(endpoint, Endpoint::UserInfo)?;
        let response = self
            .http
            .get(endpoint.clone())
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(Endpoint::UserInfo, &e))?;
        let status = response.status().as_u16();
        check_redirect(status, Endpoint::UserInfo)?;
        if status != 200 {
            let (mut error, mut description) = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(parse_www_authenticate)
                .unwrap_or_default();
            if error.is_none() {
                // Some OPs put the OAuth error in a JSON body instead (best effort).
                if let Ok(bytes) = read_capped(response, Endpoint::UserInfo).await {
                    if let Some((e, d)) = oauth_error_body(&bytes) {
                        error = Some(e);
                        description = d;
                    }
                }
            }
            return Err(OpError::UserInfoStatus {
                status,
                error,
                description,
            });
        }
        userinfo_content_type(response.headers())?;
        let bytes = read_capped(response, Endpoint::UserInfo).await?;
        parse_userinfo_body(&bytes)
    }

    /// Fetch a JWK set document: 200 required, body capped at
    /// [`MAX_RESPONSE_BYTES`](super::MAX_RESPONSE_BYTES).
    pub async fn get_jwks(&self, url: &Url) -> Result<Vec<u8>, OpError> {
        check_url(url, Endpoint::Jwks)?;
        let response = self
            .http
            .get(url.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| transport_error(Endpoint::Jwks, &e))?;
        let status = response.status().as_u16();
        check_redirect(status, Endpoint::Jwks)?;
        if status != 200 {
            return Err(OpError::JwksStatus(status));
        }
        read_capped(response, Endpoint::Jwks).await
    }

    /// Fetch a provider metadata document (`op.discovery`): 200 required, body capped at
    /// `max` bytes.
    pub async fn get_discovery(&self, url: &Url, max: usize) -> Result<Vec<u8>, OpError> {
        check_url(url, Endpoint::Discovery)?;
        let response = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(Endpoint::Discovery, &e))?;
        let status = response.status().as_u16();
        check_redirect(status, Endpoint::Discovery)?;
        if status != 200 {
            return Err(OpError::DiscoveryStatus(status));
        }
        read_capped_to(response, Endpoint::Discovery, max).await
    }
}
