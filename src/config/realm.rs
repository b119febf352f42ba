//! OIDC realms: Elasticsearch's settings and checks, on canonical keys `realms.<name>.<key>`.

use super::ctx::{shown, Ctx};
use super::{
    ClaimRule, ClaimSettings, ClientAuthMethod, DiscoverySettings, JwksSource, OpSettings,
    ProxyScheme, ProxySettings, RealmConfig, RealmHttpSettings, RealmSslSettings, ResponseType,
    RpSettings, SignatureAlgorithm, VerificationMode,
};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Cipher suites (IANA names) that rustls with aws-lc-rs implements.
const CIPHER_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// Default of `op.jwkset_reload_interval`: how often a JWKS URL is fetched again.
const JWKSET_RELOAD_INTERVAL: Duration = Duration::from_secs(3600);
/// Default of `op.jwkset_min_refetch_interval`: the least time between two fetches of a URL.
const JWKSET_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// All realms, sorted by `order`, with `order` checked unique.
pub(super) fn realms(ctx: &mut Ctx) -> Vec<RealmConfig> {
    let names: BTreeSet<String> = ctx
        .leaves
        .values()
        .filter(|l| l.segs.len() >= 2 && l.segs[0] == "realms")
        .map(|l| l.segs[1].clone())
        .collect();
    let mut out = Vec::new();
    let mut orders: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for name in names {
        let base = format!("realms.{name}");
        match realm(ctx, &name, &base, &mut orders) {
            Some(r) => out.push(r),
            // Safety net: a realm is never dropped silently.
            None if !ctx.has_error_under(&base) => {
                ctx.error(&base, "the realm could not be validated (internal error)")
            }
            None => {}
        }
    }
    for (order, names) in &orders {
        if names.len() > 1 {
            for (i, n) in names.iter().enumerate() {
                let others: Vec<&str> = names
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, s)| s.as_str())
                    .collect();
                ctx.error(
                    &format!("realms.{n}.order"),
                    format!(
                        "order [{order}] is also used by realm [{}]; each realm needs a unique order",
                        others.join(", ")
                    ),
                );
            }
        }
    }
    out.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
    out
}

/// One realm: each section checked in turn (every error is recorded, in the order of the
/// sections), then assembled if all of them are valid.
fn realm(
    ctx: &mut Ctx,
    name: &str,
    base: &str,
    orders: &mut BTreeMap<i64, Vec<String>>,
) -> Option<RealmConfig> {
    let k = |key: &str| format!("{base}.{key}");
    let name_ok = check_realm_name(ctx, name, base);
    let order = realm_order(ctx, name, &k("order"), orders);
    let enabled = ctx.bool(&k("enabled"), true);
    let rp = realm_rp(ctx, base);
    let op = realm_op(ctx, base, rp.response_type);
    let claims = realm_claims(ctx, base);
    let populate_user_metadata = ctx.bool(&k("populate_user_metadata"), true);
    let allowed_clock_skew = allowed_clock_skew(ctx, &k("allowed_clock_skew"));
    let http = realm_http(ctx, base);
    let ssl = realm_ssl(ctx, base);

    if !name_ok {
        return None;
    }
    Some(RealmConfig {
        name: name.to_string(),
        order: order?,
        enabled: enabled?,
        rp: rp.settings?,
        op: op?,
        claims: claims?,
        populate_user_metadata: populate_user_metadata?,
        allowed_clock_skew: allowed_clock_skew?,
        http: http?,
        ssl: ssl?,
    })
}

/// The realm name: not empty, no spaces or control characters.
fn check_realm_name(ctx: &mut Ctx, name: &str, base: &str) -> bool {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        ctx.error(
            base,
            "realm names cannot be empty or contain spaces or control characters",
        );
        return false;
    }
    true
}

/// `order` (required), recorded in `orders` for the uniqueness check across realms.
fn realm_order(
    ctx: &mut Ctx,
    name: &str,
    key: &str,
    orders: &mut BTreeMap<i64, Vec<String>>,
) -> Option<i64> {
    let order = ctx.int(key);
    if ctx.value(key).is_none() {
        ctx.required(key);
    }
    if let Some(o) = order {
        orders.entry(o).or_default().push(name.to_string());
    }
    order
}

/// The `rp.*` section, and its response type on its own (the `op.*` checks depend on it even
/// when another `rp.*` setting is invalid).
struct RpSection {
    settings: Option<RpSettings>,
    response_type: Option<ResponseType>,
}

fn realm_rp(ctx: &mut Ctx, base: &str) -> RpSection {
    let k = |key: &str| format!("{base}.{key}");
    let client_id = ctx.req_string(&k("rp.client_id"));
    let client_secret = ctx.secret(&k("rp.client_secret"));
    if ctx.value(&k("rp.client_secret")).is_none() {
        ctx.required(&k("rp.client_secret"));
    }
    let redirect_uri_text = ctx.req_string(&k("rp.redirect_uri"));
    let redirect_uri = redirect_uri_text
        .clone()
        .and_then(|s| ctx.parse_url(&k("rp.redirect_uri"), &s));
    let response_type = response_type(ctx, &k("rp.response_type"));
    let requested_scopes = requested_scopes(ctx, &k("rp.requested_scopes"));
    let signature_algorithms = signature_algorithms(ctx, &k("rp.signature_algorithm"));
    let post_logout_redirect_uri = match ctx.string(&k("rp.post_logout_redirect_uri")) {
        None => Some(None),
        Some(s) => ctx
            .parse_url(&k("rp.post_logout_redirect_uri"), &s)
            .map(Some),
    };
    let client_auth_method = client_auth_method(ctx, &k("rp.client_auth_method"));
    let private_key_jwt = client_auth_method == Some(ClientAuthMethod::PrivateKeyJwt);
    let client_auth_jwt_signature_algorithm = if private_key_jwt {
        private_key_jwt_algorithm(ctx, &k("rp.client_auth_jwt_signature_algorithm"))
    } else {
        client_auth_jwt_signature_algorithm(ctx, &k("rp.client_auth_jwt_signature_algorithm"))
    };
    let client_auth_keys = client_auth_keys(
        ctx,
        base,
        client_auth_method,
        client_auth_jwt_signature_algorithm.flatten(),
    );
    // With private_key_jwt the algorithm is the key's (checked with the key).
    let client_auth_jwt_signature_algorithm = match (
        client_auth_jwt_signature_algorithm,
        client_auth_keys.as_ref().and_then(|keys| keys.first()),
    ) {
        (Some(_), Some(key)) => Some(key.alg),
        (Some(a), None) => a.or(Some(SignatureAlgorithm::HS384)),
        (None, _) => None,
    };
    let pkce = ctx.bool(&k("rp.pkce"), true);
    let backchannel_logout = ctx.bool(&k("rp.backchannel_logout"), false);
    if let Some(secret) = &client_secret {
        check_hmac_key_length(
            ctx,
            &k("rp.client_secret"),
            secret.expose_secret().len(),
            signature_algorithms.as_deref().unwrap_or_default(),
            (client_auth_method == Some(ClientAuthMethod::ClientSecretJwt))
                .then_some(client_auth_jwt_signature_algorithm)
                .flatten(),
        );
    }
    let settings = (|| {
        Some(RpSettings {
            client_id: client_id?,
            client_secret: client_secret?,
            redirect_uri: redirect_uri?,
            redirect_uri_exact: redirect_uri_text?,
            response_type: response_type?,
            requested_scopes: requested_scopes?,
            signature_algorithms: signature_algorithms?,
            post_logout_redirect_uri: post_logout_redirect_uri?,
            client_auth_method: client_auth_method?,
            client_auth_jwt_signature_algorithm: client_auth_jwt_signature_algorithm?,
            client_auth_keys: client_auth_keys?,
            backchannel_logout: backchannel_logout?,
            pkce: pkce?,
        })
    })();
    RpSection {
        settings,
        response_type,
    }
}

/// `rp.response_type` (required).
fn response_type(ctx: &mut Ctx, key: &str) -> Option<ResponseType> {
    ctx.req_string(key).and_then(|s| match s.trim() {
        "code" => Some(ResponseType::Code),
        "id_token" => Some(ResponseType::IdToken),
        "id_token token" => Some(ResponseType::IdTokenToken),
        other => {
            ctx.error(
                key,
                format!(
                    "Invalid value [{}] for [{}]. Allowed values are [code, id_token, id_token token]",
                    shown(other),
                    key
                ),
            );
            None
        }
    })
}

/// `rp.client_auth_method` (default `client_secret_basic`).
fn client_auth_method(ctx: &mut Ctx, key: &str) -> Option<ClientAuthMethod> {
    match ctx.string(key).as_deref() {
        None | Some("client_secret_basic") => Some(ClientAuthMethod::ClientSecretBasic),
        Some("client_secret_post") => Some(ClientAuthMethod::ClientSecretPost),
        Some("client_secret_jwt") => Some(ClientAuthMethod::ClientSecretJwt),
        Some("private_key_jwt") => Some(ClientAuthMethod::PrivateKeyJwt),
        Some(other) => {
            ctx.error(
                key,
                format!(
                    "Invalid value [{}] for [{key}]. Allowed values are [client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt]",
                    shown(other)
                ),
            );
            None
        }
    }
}

/// `rp.client_auth_jwt_signature_algorithm` with `private_key_jwt`: `Some(None)` when unset
/// (the key's default), `Some(Some(alg))` for an asymmetric algorithm (checked against the
/// key later), `None` when invalid.
fn private_key_jwt_algorithm(ctx: &mut Ctx, key: &str) -> Option<Option<SignatureAlgorithm>> {
    match ctx.string(key) {
        None => Some(None),
        Some(s) => match SignatureAlgorithm::parse(s.trim()) {
            Some(a) if !a.is_hmac() && a != SignatureAlgorithm::EdDSA => Some(Some(a)),
            _ => {
                ctx.error(
                    key,
                    format!(
                        "Invalid value [{}] for [{key}] with private_key_jwt. Allowed values are [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384]",
                        shown(&s)
                    ),
                );
                None
            }
        },
    }
}

/// `rp.client_auth_key` (required with `private_key_jwt`; signs) and `rp.client_auth_key_2`
/// (optional; published at `/oidc/{realm}/jwks` only, for rotation), each with its
/// `…_id` (`kid`, default the RFC 7638 thumbprint). Empty unless `private_key_jwt`.
fn client_auth_keys(
    ctx: &mut Ctx,
    base: &str,
    method: Option<ClientAuthMethod>,
    alg: Option<SignatureAlgorithm>,
) -> Option<Vec<super::ClientAuthKey>> {
    let k = |key: &str| format!("{base}.{key}");
    let names = [
        ("rp.client_auth_key", "rp.client_auth_key_id"),
        ("rp.client_auth_key_2", "rp.client_auth_key_2_id"),
    ];
    if method != Some(ClientAuthMethod::PrivateKeyJwt) {
        let mut ok = true;
        for key in names.iter().flat_map(|(a, b)| [a, b]) {
            if ctx.value(&k(key)).is_some() {
                ctx.error(
                    &k(key),
                    format!(
                        "Setting [{}] cannot be set unless [{}] is private_key_jwt",
                        k(key),
                        k("rp.client_auth_method")
                    ),
                );
                ok = false;
            }
        }
        return ok.then(Vec::new);
    }
    let mut keys = Vec::new();
    let mut ok = true;
    for (i, (pem_key, id_key)) in names.iter().enumerate() {
        let pem_key = k(pem_key);
        let id_key = k(id_key);
        let kid = ctx.string(&id_key);
        if kid
            .as_ref()
            .is_some_and(|s| s.len() > super::client_keys::MAX_CLIENT_KEY_ID_LEN)
        {
            ctx.error(
                &id_key,
                format!(
                    "[{id_key}] is longer than {} bytes",
                    super::client_keys::MAX_CLIENT_KEY_ID_LEN
                ),
            );
            ok = false;
        }
        let Some(pem) = ctx.secret(&pem_key) else {
            if i == 0 {
                if ctx.value(&pem_key).is_none() {
                    ctx.missing(
                        &pem_key,
                        format!(
                            "Setting [{pem_key}] is required when [{}] is private_key_jwt: the realm's private key (PEM, e.g. ${{file:client-key.pem}})",
                            k("rp.client_auth_method")
                        ),
                    );
                }
                ok = false;
            } else if kid.is_some() {
                ctx.error(
                    &id_key,
                    format!("Setting [{id_key}] cannot be set unless [{pem_key}] is also set"),
                );
                ok = false;
            }
            continue;
        };
        // The configured algorithm applies to the signing (first) key only.
        match super::client_keys::parse_client_key(pem, kid, if i == 0 { alg } else { None }) {
            Ok(key) => keys.push(key),
            Err(why) => {
                ctx.error(&pem_key, format!("[{pem_key}] {why}"));
                ok = false;
            }
        }
    }
    if let [a, b] = &keys[..] {
        if a.kid == b.kid {
            ctx.error(
                &k("rp.client_auth_key_2_id"),
                "the two client keys have the same kid; give them different rp.client_auth_key_id / rp.client_auth_key_2_id",
            );
            ok = false;
        }
    }
    ok.then_some(keys)
}

/// `rp.client_auth_jwt_signature_algorithm` (default HS384; HMAC algorithms only).
fn client_auth_jwt_signature_algorithm(
    ctx: &mut Ctx,
    key: &str,
) -> Option<Option<SignatureAlgorithm>> {
    client_secret_jwt_algorithm(ctx, key).map(Some)
}

fn client_secret_jwt_algorithm(ctx: &mut Ctx, key: &str) -> Option<SignatureAlgorithm> {
    match ctx.string(key) {
        None => Some(SignatureAlgorithm::HS384),
        Some(s) => match SignatureAlgorithm::parse(s.trim()) {
            Some(a) if a.is_hmac() => Some(a),
            _ => {
                ctx.error(
                    key,
                    format!(
                        "Invalid value [{}] for [{key}]. Allowed values are [HS256, HS384, HS512]",
                        shown(&s)
                    ),
                );
                None
            }
        },
    }
}

/// The `op.*` section. `response_type`: the realm's `rp.response_type`, when valid (the token
/// endpoint is required for the code flow).
fn realm_op(ctx: &mut Ctx, base: &str, response_type: Option<ResponseType>) -> Option<OpSettings> {
    let k = |key: &str| format!("{base}.{key}");
    let issuer = ctx.req_string(&k("op.issuer"));
    let discovery = realm_discovery(ctx, base, issuer.as_deref());
    // With discovery, the endpoints left out are taken from the provider metadata; until
    // then they hold the discovery URL (see `DiscoverySettings::discovered`).
    let placeholder = discovery
        .as_ref()
        .and_then(|d| d.as_ref())
        .map(|d| d.url.clone());
    let discovering = discovery.as_ref().is_none_or(|d| d.is_some());
    let authorization_endpoint = match ctx.value(&k("op.authorization_endpoint")) {
        // Invalid discovery settings are reported already.
        None if discovering => placeholder.clone(),
        _ => ctx
            .req_string(&k("op.authorization_endpoint"))
            .and_then(|s| ctx.secure_url(&k("op.authorization_endpoint"), &s)),
    };
    let token_endpoint = match ctx.string(&k("op.token_endpoint")) {
        Some(s) => ctx.secure_url(&k("op.token_endpoint"), &s).map(Some),
        None if discovering => Some(None),
        None => {
            if response_type == Some(ResponseType::Code) {
                let key = k("op.token_endpoint");
                ctx.error(
                    &key,
                    format!(
                        "The configuration setting [{key}] is required when [{}] is set to \"code\"",
                        k("rp.response_type")
                    ),
                );
                None
            } else {
                Some(None)
            }
        }
    };
    let userinfo_endpoint = optional_secure_url(ctx, &k("op.userinfo_endpoint"));
    let endsession_endpoint = optional_secure_url(ctx, &k("op.endsession_endpoint"));
    let jwkset = match ctx.value(&k("op.jwkset_path")) {
        None if discovering => placeholder.map(JwksSource::Url),
        _ => jwkset_source(ctx, &k("op.jwkset_path")),
    };
    let (jwkset_reload_interval, jwkset_min_refetch_interval) = jwkset_intervals(ctx, base);
    let discovery = discovery?;
    Some(OpSettings {
        issuer: issuer?,
        authorization_endpoint: authorization_endpoint?,
        token_endpoint: token_endpoint?,
        userinfo_endpoint: userinfo_endpoint?,
        endsession_endpoint: endsession_endpoint?,
        jwkset: jwkset?,
        jwkset_reload_interval: jwkset_reload_interval?,
        jwkset_min_refetch_interval: jwkset_min_refetch_interval?,
        discovery,
    })
}

/// `op.discovery` (default false) and `op.discovery_url` (default
/// `<op.issuer>/.well-known/openid-configuration`; https, loopback http with a warning).
/// `Some(None)`: discovery off; `None`: invalid.
fn realm_discovery(
    ctx: &mut Ctx,
    base: &str,
    issuer: Option<&str>,
) -> Option<Option<DiscoverySettings>> {
    let k = |key: &str| format!("{base}.{key}");
    let on = ctx.bool(&k("op.discovery"), false)?;
    let url_key = k("op.discovery_url");
    let explicit = ctx.string(&url_key);
    if !on {
        if explicit.is_some() {
            ctx.error(
                &url_key,
                format!(
                    "Setting [{url_key}] cannot be set unless [{}] is true",
                    k("op.discovery")
                ),
            );
            return None;
        }
        return Some(None);
    }
    let url = match explicit {
        Some(u) => ctx.secure_url(&url_key, &u)?,
        None => {
            let issuer = issuer?;
            let text = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            ctx.secure_url(&k("op.issuer"), &text)?
        }
    };
    let written = [
        ("authorization_endpoint", "op.authorization_endpoint"),
        ("token_endpoint", "op.token_endpoint"),
        ("userinfo_endpoint", "op.userinfo_endpoint"),
        ("endsession_endpoint", "op.endsession_endpoint"),
        ("jwkset_path", "op.jwkset_path"),
    ]
    .into_iter()
    .filter(|(_, key)| ctx.value(&k(key)).is_some())
    .map(|(name, _)| name)
    .collect();
    Some(Some(DiscoverySettings {
        url,
        written,
        discovered: None,
    }))
}

/// `op.jwkset_path` (required): an https URL, or an existing file.
fn jwkset_source(ctx: &mut Ctx, key: &str) -> Option<JwksSource> {
    ctx.req_string(key).and_then(|s| {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            ctx.secure_url(key, t).map(JwksSource::Url)
        } else if lower.contains("://") {
            ctx.error(
                key,
                format!(
                    "Invalid value [{}] for [{key}]: an https URL or a file path is expected",
                    shown(t)
                ),
            );
            None
        } else {
            ctx.existing_file(key, t).map(JwksSource::File)
        }
    })
}

/// `op.jwkset_reload_interval` and `op.jwkset_min_refetch_interval`, each at least 1s.
fn jwkset_intervals(ctx: &mut Ctx, base: &str) -> (Option<Duration>, Option<Duration>) {
    let k = |key: &str| format!("{base}.{key}");
    let jwkset_reload_interval = ctx.time(&k("op.jwkset_reload_interval"), JWKSET_RELOAD_INTERVAL);
    let jwkset_min_refetch_interval = ctx.time(
        &k("op.jwkset_min_refetch_interval"),
        JWKSET_MIN_REFETCH_INTERVAL,
    );
    for (key, d) in [
        ("op.jwkset_reload_interval", jwkset_reload_interval),
        (
            "op.jwkset_min_refetch_interval",
            jwkset_min_refetch_interval,
        ),
    ] {
        if d.is_some_and(|d| d < Duration::from_secs(1)) {
            ctx.error(&k(key), format!("[{}] must be at least 1s", k(key)));
        }
    }
    (jwkset_reload_interval, jwkset_min_refetch_interval)
}

/// `claims.*` and `claim_patterns.*`: `claims.principal` is required, a pattern needs its
/// claim. `None` if any of them is invalid.
fn realm_claims(ctx: &mut Ctx, base: &str) -> Option<ClaimSettings> {
    let k = |key: &str| format!("{base}.{key}");
    let mut claims_ok = true;
    let mut rules: BTreeMap<&str, Option<ClaimRule>> = BTreeMap::new();
    for c in ["principal", "groups", "name", "mail", "dn"] {
        let claim_key = k(&format!("claims.{c}"));
        let pattern_key = k(&format!("claim_patterns.{c}"));
        let claim = if c == "principal" {
            let v = ctx.string(&claim_key);
            if v.is_none() {
                ctx.missing(&claim_key, format!("Setting [{claim_key}] is required"));
            }
            v
        } else {
            ctx.string(&claim_key)
        };
        // A value starting with `/` names a nested member (JSON Pointer, RFC 6901).
        let claim_given = claim.is_some();
        let claim = match claim {
            Some(v) => match super::claim_pointer(&v) {
                Ok(_) => Some(v),
                Err(why) => {
                    ctx.error(
                        &claim_key,
                        format!(
                            "[{claim_key}] starts with '/', so it is a nested claim path (JSON Pointer, e.g. /realm_access/roles), but it {why}"
                        ),
                    );
                    claims_ok = false;
                    None
                }
            },
            None => None,
        };
        let pattern = ctx.string(&pattern_key);
        let pattern = match pattern {
            None => Some(None),
            Some(p) => {
                if !claim_given {
                    ctx.error(
                        &pattern_key,
                        format!(
                            "Setting [{pattern_key}] cannot be set unless [{claim_key}] is also set"
                        ),
                    );
                }
                compile_pattern(ctx, &pattern_key, &p).map(Some)
            }
        };
        match (claim, pattern) {
            (Some(claim), Some(pattern)) => {
                rules.insert(c, Some(ClaimRule { claim, pattern }));
            }
            (None, Some(_)) if c != "principal" => {
                rules.insert(c, None);
            }
            _ => claims_ok = false,
        }
    }
    if !claims_ok {
        return None;
    }
    let mut take = |c: &str| rules.remove(c).flatten();
    Some(ClaimSettings {
        principal: take("principal")?,
        groups: take("groups"),
        name: take("name"),
        mail: take("mail"),
        dn: take("dn"),
    })
}

/// `allowed_clock_skew` (default 60s), at most 5m.
fn allowed_clock_skew(ctx: &mut Ctx, key: &str) -> Option<Duration> {
    // Bounded: a skew of hours or days would switch the exp/iat/nbf checks off in effect.
    const MAX_SKEW: Duration = Duration::from_secs(300);
    ctx.time(key, Duration::from_secs(60)).and_then(|d| {
        if d > MAX_SKEW {
            ctx.error(
                key,
                "must be at most 5m: a larger tolerance would accept expired ID tokens; fix the clocks (NTP) instead",
            );
            None
        } else {
            Some(d)
        }
    })
}

/// RFC 7518 §3.2: a key used with HS256/384/512 must be at least as long as the hash output
/// (32/48/64 bytes); Elasticsearch refuses shorter ones. The client secret is that key for
/// HMAC-signed ID tokens (`id_token_algs`) and for `client_secret_jwt` assertions
/// (`assertion_alg`). `secret_len` is in bytes (the key is the secret's UTF-8 bytes); the
/// message names the uses and the length needed, never the secret or its length.
fn check_hmac_key_length(
    ctx: &mut Ctx,
    key: &str,
    secret_len: usize,
    id_token_algs: &[SignatureAlgorithm],
    assertion_alg: Option<SignatureAlgorithm>,
) {
    let too_short =
        |a: &SignatureAlgorithm| a.min_hmac_key_len().is_some_and(|need| secret_len < need);
    let id_short: Vec<&str> = id_token_algs
        .iter()
        .filter(|a| too_short(a))
        .map(|a| a.as_str())
        .collect();
    let mut uses = Vec::new();
    if !id_short.is_empty() {
        uses.push(format!(
            "{} ID tokens (rp.signature_algorithm)",
            id_short.join(" and ")
        ));
    }
    if let Some(a) = assertion_alg.filter(too_short) {
        uses.push(format!(
            "{} client_secret_jwt assertions (rp.client_auth_jwt_signature_algorithm)",
            a.as_str()
        ));
    }
    let need = id_token_algs
        .iter()
        .chain(assertion_alg.as_ref())
        .filter(|a| too_short(a))
        .filter_map(|a| a.min_hmac_key_len())
        .max();
    let Some(need) = need else {
        return;
    };
    ctx.error(
        key,
        format!(
            "too short: {} need an HMAC key of at least {need} bytes, as long as the hash output (RFC 7518 §3.2; Elasticsearch refuses shorter keys); use a random secret of {need} bytes or more (e.g. from `openssl rand -base64 {need}`) and register it with the OpenID Provider",
            uses.join(" and ")
        ),
    );
}

fn optional_secure_url(ctx: &mut Ctx, key: &str) -> Option<Option<url::Url>> {
    match ctx.string(key) {
        None => Some(None),
        Some(s) => ctx.secure_url(key, &s).map(Some),
    }
}

fn requested_scopes(ctx: &mut Ctx, key: &str) -> Option<Vec<String>> {
    let list = match ctx.list(key) {
        None if ctx.value(key).is_some() => return None,
        None => Vec::new(),
        Some(l) => l,
    };
    let mut out = vec!["openid".to_string()];
    let mut ok = true;
    for s in list {
        if s.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\')
        {
            ctx.error(
                key,
                format!(
                    "invalid scope [{}]: scopes cannot contain spaces, quotes or backslashes; give a list or a comma-separated string",
                    shown(&s)
                ),
            );
            ok = false;
        } else if !out.contains(&s) {
            out.push(s);
        }
    }
    ok.then_some(out)
}

fn signature_algorithms(ctx: &mut Ctx, key: &str) -> Option<Vec<SignatureAlgorithm>> {
    let list = match ctx.list(key) {
        None if ctx.value(key).is_some() => return None,
        None => return Some(vec![SignatureAlgorithm::RS256]),
        Some(l) => l,
    };
    if list.is_empty() {
        ctx.error(key, "at least one signature algorithm is required");
        return None;
    }
    let allowed: Vec<&str> = SignatureAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
    let mut out = Vec::new();
    let mut ok = true;
    for s in list {
        match SignatureAlgorithm::parse(&s) {
            Some(a) => {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            None if s.eq_ignore_ascii_case("none") => {
                ctx.error(
                    key,
                    "Invalid value [none]: unsigned ID tokens are never accepted; use one of the signature algorithms your provider signs with",
                );
                ok = false;
            }
            None => {
                ctx.error(
                    key,
                    format!(
                        "Invalid value [{}] for [{key}]. Allowed values are [{}] (exact case)",
                        shown(&s),
                        allowed.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn compile_pattern(ctx: &mut Ctx, key: &str, p: &str) -> Option<Regex> {
    let re = match Regex::new(p) {
        Ok(r) => r,
        Err(e) => {
            ctx.error(
                key,
                format!("not a valid regular expression (Rust `regex` syntax: no look-around or back-references): {e}"),
            );
            return None;
        }
    };
    if re.captures_len() < 2 {
        ctx.error(
            key,
            format!(
                "pattern [{}] has no capture group; the claim value is taken from group 1, e.g. ^([^@]+)@example\\.com$",
                shown(p)
            ),
        );
        return None;
    }
    let starts = p.starts_with('^') || p.starts_with("\\A");
    let ends = (p.ends_with('$') && !p.ends_with("\\$")) || p.ends_with("\\z");
    if starts && ends && has_top_level_alternation(p) {
        ctx.warn(
            key,
            format!(
                "pattern [{}] has a top-level `|`: ^ binds only to the first branch and $ only to the last, so the pattern is not anchored; write ^(?:a|b)$",
                shown(p)
            ),
        );
    } else if !(starts && ends) {
        ctx.warn(
            key,
            format!(
                "pattern [{}] is not anchored with ^ and $: it matches anywhere in the claim, so e.g. admin@staff.example.com.attacker.net would pass a pattern meant for staff.example.com",
                shown(p)
            ),
        );
    }
    Some(re)
}

/// Whether a regex has `|` outside any group or character class.
fn has_top_level_alternation(p: &str) -> bool {
    let mut depth = 0usize;
    let mut in_class = false;
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth = depth.saturating_sub(1),
            '|' if !in_class && depth == 0 => return true,
            _ => {}
        }
    }
    false
}

fn realm_http(ctx: &mut Ctx, base: &str) -> Option<RealmHttpSettings> {
    let k = |key: &str| format!("{base}.http.{key}");
    let five = Duration::from_secs(5);
    let connect_timeout = ctx.time(&k("connect_timeout"), five);
    let connection_read_timeout = ctx.time(&k("connection_read_timeout"), five);
    let socket_timeout = ctx.time(&k("socket_timeout"), five);
    let max_connections = ctx.int_in(&k("max_connections"), 200, 1, i64::from(u32::MAX));
    let max_endpoint_connections =
        ctx.int_in(&k("max_endpoint_connections"), 200, 1, i64::from(u32::MAX));
    // Accepted so that an Elasticsearch realm block loads unchanged, but the HTTP client has
    // no equivalent: say so instead of ignoring them silently.
    for (key, what) in [
        ("connection_read_timeout", "a connection-pool lease timeout in Elasticsearch; oidc-realm's client never waits for a pooled connection"),
        ("max_connections", "a total connection cap in Elasticsearch; oidc-realm's client has no total cap (http.max_endpoint_connections bounds the idle connections per host)"),
    ] {
        if ctx.value(&k(key)).is_some() {
            ctx.warn(&k(key), format!("has no effect: {what}"));
        }
    }
    let connection_pool_ttl =
        ctx.time_or_minus_one(&k("connection_pool_ttl"), Some(Duration::from_secs(180)));
    let tcp_keep_alive = ctx.bool(&k("tcp.keep_alive"), true);

    let host_key = k("proxy.host");
    let host = ctx.string(&host_key);
    let port = ctx.int_in(&k("proxy.port"), 80, 1, 65535);
    let scheme = match ctx.string(&k("proxy.scheme")) {
        None => Some(ProxyScheme::Http),
        Some(s) => match s.trim() {
            "http" => Some(ProxyScheme::Http),
            "https" => Some(ProxyScheme::Https),
            other => {
                let key = k("proxy.scheme");
                ctx.error(
                    &key,
                    format!(
                        "Invalid value [{}] for [{key}]. Only `http` or `https` are allowed.",
                        shown(other)
                    ),
                );
                None
            }
        },
    };
    let proxy = match host {
        None => {
            let mut fine = true;
            for other in ["proxy.port", "proxy.scheme"] {
                if ctx.value(&k(other)).is_some() {
                    ctx.error(
                        &k(other),
                        format!(
                            "Setting [{}] cannot be set unless [{host_key}] is also set",
                            k(other)
                        ),
                    );
                    fine = false;
                }
            }
            fine.then_some(None)
        }
        Some(h) => {
            let h = h.trim().to_string();
            let valid = !h.contains("://")
                && !h.contains('/')
                && url::Host::parse(&h).is_ok()
                && (h.starts_with('[') || !h.contains(':'));
            if !valid {
                ctx.error(
                    &host_key,
                    format!(
                        "Invalid value [{}] for [{host_key}]: give a host name or IP only; the port and scheme go in http.proxy.port and http.proxy.scheme",
                        shown(&h)
                    ),
                );
                None
            } else {
                match (port, scheme) {
                    (Some(p), Some(s)) => Some(Some(ProxySettings {
                        host: h,
                        port: u16::try_from(p).ok()?,
                        scheme: s,
                    })),
                    _ => None,
                }
            }
        }
    };
    Some(RealmHttpSettings {
        connect_timeout: connect_timeout?,
        connection_read_timeout: connection_read_timeout?,
        socket_timeout: socket_timeout?,
        max_connections: u32::try_from(max_connections?).ok()?,
        max_endpoint_connections: u32::try_from(max_endpoint_connections?).ok()?,
        connection_pool_ttl: connection_pool_ttl?,
        tcp_keep_alive: tcp_keep_alive?,
        proxy: proxy?,
    })
}

fn realm_ssl(ctx: &mut Ctx, base: &str) -> Option<RealmSslSettings> {
    let k = |key: &str| format!("{base}.ssl.{key}");
    let mut ok = true;

    let mut certificate_authorities = Vec::new();
    if let Some(list) = ctx.list(&k("certificate_authorities")) {
        for f in list {
            match ctx.pem_certificates(&k("certificate_authorities"), &f) {
                Some(p) => certificate_authorities.push(p),
                None => ok = false,
            }
        }
    } else if ctx.value(&k("certificate_authorities")).is_some() {
        ok = false;
    }

    let verification_mode = match ctx.string(&k("verification_mode")).as_deref() {
        None | Some("full") => Some(VerificationMode::Full),
        Some("certificate") => {
            ctx.warn(
                &k("verification_mode"),
                "verification_mode certificate checks the provider's certificate chain but not its host name; prefer full",
            );
            Some(VerificationMode::Certificate)
        }
        Some("none") => {
            ctx.error(
                &k("verification_mode"),
                "verification_mode none is not supported: it would not check the provider's TLS certificate at all, so anyone on the network path could impersonate it; trust the provider's CA with ssl.certificate_authorities instead",
            );
            None
        }
        Some(other) => {
            let key = k("verification_mode");
            ctx.error(
                &key,
                format!(
                    "Invalid value [{}] for [{key}]. Allowed values are [full, certificate, none]",
                    shown(other)
                ),
            );
            None
        }
    };

    let cert = ctx.string(&k("certificate"));
    let key = ctx.string(&k("key"));
    let client_certificate = match (cert, key) {
        (None, None) => Some(None),
        (Some(c), Some(kf)) => {
            let c = ctx.pem_certificates(&k("certificate"), &c);
            let kf = ctx.pem_private_key(&k("key"), &kf);
            match (c, kf) {
                (Some(c), Some(kf)) => Some(Some((c, kf))),
                _ => None,
            }
        }
        (Some(_), None) => {
            ctx.error(
                &k("key"),
                format!(
                    "[{}] is set, so [{}] (the client certificate's PEM private key) is required",
                    k("certificate"),
                    k("key")
                ),
            );
            None
        }
        (None, Some(_)) => {
            ctx.error(
                &k("certificate"),
                format!(
                    "[{}] is set, so [{}] (the client certificate PEM) is required",
                    k("key"),
                    k("certificate")
                ),
            );
            None
        }
    };

    let supported_protocols = match ctx.list(&k("supported_protocols")) {
        None if ctx.value(&k("supported_protocols")).is_some() => None,
        None => Some(Vec::new()),
        Some(list) => {
            let mut good = true;
            for p in &list {
                if !matches!(p.as_str(), "TLSv1.2" | "TLSv1.3") {
                    ctx.error(
                        &k("supported_protocols"),
                        format!(
                            "unsupported protocol [{}]; oidc-realm (rustls) supports [TLSv1.2, TLSv1.3]",
                            shown(p)
                        ),
                    );
                    good = false;
                }
            }
            good.then_some(list)
        }
    };
    let cipher_suites = match ctx.list(&k("cipher_suites")) {
        None if ctx.value(&k("cipher_suites")).is_some() => None,
        None => Some(Vec::new()),
        Some(list) => {
            let mut good = true;
            for c in &list {
                if !CIPHER_SUITES.contains(&c.as_str()) {
                    ctx.error(
                        &k("cipher_suites"),
                        format!(
                            "unsupported cipher suite [{}]; oidc-realm (rustls) supports [{}]",
                            shown(c),
                            CIPHER_SUITES.join(", ")
                        ),
                    );
                    good = false;
                }
            }
            good.then_some(list)
        }
    };
    if !ok {
        return None;
    }
    Some(RealmSslSettings {
        certificate_authorities,
        verification_mode: verification_mode?,
        client_certificate: client_certificate?,
        supported_protocols: supported_protocols?,
        cipher_suites: cipher_suites?,
    })
}

#[cfg(test)]
mod tests {
    use super::has_top_level_alternation as alt;

    #[test]
    fn top_level_alternation() {
        assert!(alt("^(a)@x|(b)@y$"));
        assert!(!alt("^(?:(a)@x|(b)@y)$"));
        assert!(!alt("^([a|b])$"));
        assert!(!alt("^(a)\\|b$"));
    }
}
