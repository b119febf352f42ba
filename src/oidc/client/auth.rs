//! Client authentication at the token endpoint (OIDC Core §9): `client_secret_basic`,
//! `client_secret_post`, `client_secret_jwt` and `private_key_jwt`.

use super::error::OpError;
use crate::config::{ClientAuthMethod, RealmConfig, SignatureAlgorithm};
use base64::Engine as _;
use url::Url;

/// Lifetime of a `client_secret_jwt` assertion.
const CLIENT_ASSERTION_LIFETIME_SECS: i64 = 60;

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `Authorization: Basic` per RFC 6749 §2.3.1: id and secret are form-urlencoded first.
/// The header value is marked sensitive (kept out of HTTP debug logs).
fn basic_authorization(
    client_id: &str,
    secret: &str,
) -> Result<reqwest::header::HeaderValue, OpError> {
    let mut raw = zeroize::Zeroizing::new(String::new());
    raw.extend(url::form_urlencoded::byte_serialize(client_id.as_bytes()));
    raw.push(':');
    raw.extend(url::form_urlencoded::byte_serialize(secret.as_bytes()));
    let mut value = reqwest::header::HeaderValue::try_from(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
    ))
    .map_err(|_| OpError::ClientAuth("the Basic header is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// A `client_secret_jwt` assertion (RFC 7523 §3, OIDC Core §9): HMAC with the client secret.
pub(super) fn client_assertion(
    client_id: &str,
    secret: &str,
    token_endpoint: &Url,
    alg: SignatureAlgorithm,
    now_secs: i64,
) -> Result<String, OpError> {
    let jwt_alg = match alg {
        SignatureAlgorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        SignatureAlgorithm::HS384 => jsonwebtoken::Algorithm::HS384,
        SignatureAlgorithm::HS512 => jsonwebtoken::Algorithm::HS512,
        other => {
            return Err(OpError::ClientAuth(format!(
                "client_secret_jwt: rp.client_auth_jwt_signature_algorithm [{}] is not an HMAC algorithm",
                other.as_str()
            )))
        }
    };
    let mut jti = [0u8; 32];
    crate::crypto::fill_random(&mut jti);
    let claims = AssertionClaims {
        iss: client_id,
        sub: client_id,
        aud: token_endpoint.as_str(),
        iat: now_secs,
        exp: now_secs + CLIENT_ASSERTION_LIFETIME_SECS,
        jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
    };
    let mut header = jsonwebtoken::Header::new(jwt_alg);
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| OpError::ClientAuth(format!("client_secret_jwt: signing failed: {:?}", e.kind())))
}

/// A `private_key_jwt` assertion (RFC 7523 §3, OIDC Core §9): signed with the realm's first
/// `rp.client_auth_key` under its `kid`; `aud` the token endpoint, a random `jti`, `exp` one
/// minute after `iat`.
pub(super) fn private_key_assertion(
    client_id: &str,
    key: &crate::config::ClientAuthKey,
    token_endpoint: &Url,
    now_secs: i64,
) -> Result<String, OpError> {
    let fail = |what: &str| OpError::ClientAuth(format!("private_key_jwt: {what}"));
    let jwt_alg = super::super::jwks::jwt_algorithm(key.alg)
        .filter(|a| {
            !matches!(
                a,
                jsonwebtoken::Algorithm::HS256
                    | jsonwebtoken::Algorithm::HS384
                    | jsonwebtoken::Algorithm::HS512
            )
        })
        .ok_or_else(|| fail("the key's algorithm cannot sign assertions"))?;
    let pem = key.pem.expose_secret().as_bytes();
    let encoding = match key.public_jwk["kty"].as_str() {
        Some("RSA") => jsonwebtoken::EncodingKey::from_rsa_pem(pem),
        _ => jsonwebtoken::EncodingKey::from_ec_pem(pem),
    }
    .map_err(|e| fail(&format!("the key cannot sign: {:?}", e.kind())))?;
    let mut jti = [0u8; 32];
    crate::crypto::fill_random(&mut jti);
    let claims = AssertionClaims {
        iss: client_id,
        sub: client_id,
        aud: token_endpoint.as_str(),
        iat: now_secs,
        exp: now_secs + CLIENT_ASSERTION_LIFETIME_SECS,
        jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
    };
    let mut header = jsonwebtoken::Header::new(jwt_alg);
    header.typ = Some("JWT".into());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &encoding)
        .map_err(|e| fail(&format!("signing failed: {:?}", e.kind())))
}

/// Add the realm's `rp.client_auth_method` to a token request: a Basic `Authorization` header,
/// or `client_id`/`client_secret`, or a `client_secret_jwt` assertion in the form.
pub(super) fn authenticate_request(
    mut request: reqwest::RequestBuilder,
    form: &mut url::form_urlencoded::Serializer<'_, String>,
    realm: &RealmConfig,
    token_endpoint: &Url,
    now_secs: i64,
) -> Result<reqwest::RequestBuilder, OpError> {
    let client_id = realm.rp.client_id.as_str();
    let secret = realm.rp.client_secret.expose_secret().as_str();
    match realm.rp.client_auth_method {
        ClientAuthMethod::ClientSecretBasic => {
            request = request.header(
                reqwest::header::AUTHORIZATION,
                basic_authorization(client_id, secret)?,
            );
        }
        ClientAuthMethod::ClientSecretPost => {
            form.append_pair("client_id", client_id)
                .append_pair("client_secret", secret);
        }
        ClientAuthMethod::ClientSecretJwt => {
            let assertion = client_assertion(
                client_id,
                secret,
                token_endpoint,
                realm.rp.client_auth_jwt_signature_algorithm,
                now_secs,
            )?;
            form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE)
                .append_pair("client_assertion", &assertion);
        }
        ClientAuthMethod::PrivateKeyJwt => {
            let key = realm.rp.client_auth_keys.first().ok_or_else(|| {
                OpError::ClientAuth("private_key_jwt: no rp.client_auth_key".into())
            })?;
            let assertion = private_key_assertion(client_id, key, token_endpoint, now_secs)?;
            form.append_pair("client_id", client_id)
                .append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE)
                .append_pair("client_assertion", &assertion);
        }
    }
    Ok(request)
}
