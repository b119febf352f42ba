//! The login service: `prepare`, `authenticate` and `logout` of the OpenID Connect realm API,
//! over the running configuration. It selects the realm, assembles the login context (token
//! service, pending logins and their limits, lifetimes, role mappings), runs the realm's
//! protocol steps, and records the metrics and audit events of each outcome.

use super::role_mappings::RoleMappings;
use crate::audit::{Audit, AuditEvent, Capped, Method, Who};
use crate::auth::Authentication;
use crate::claims::MappedUser;
use crate::clock::Clock;
use crate::config::Settings;
use crate::metrics::{Limit, Metrics, TokenEvent};
use crate::realm::flow::{Flows, TOO_MANY_PENDING_RETRY_AFTER};
use crate::realm::{
    self, AuthenticateParams, LoginContext, LoginError, LoginOutcome, LogoutError, PrepareError,
    PrepareParams, PrepareResponse, Realm, Realms,
};
use crate::roles::UserModel;
use crate::store::FlowLimits;
use crate::tokens::{Lifetimes, TokenService};
use std::sync::Arc;

/// How `prepare` names its realm: Elasticsearch's `realm` or `iss`.
#[derive(Debug, Clone, Copy)]
pub enum RealmBy<'a> {
    Name(&'a str),
    Issuer(&'a str),
}

/// No realm, or more than one, answers to what `prepare` asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RealmLookupError {
    #[error("Cannot find OpenID Connect realm with name [{0}]")]
    NoSuchName(String),
    #[error("Cannot find OpenID Connect realm with issuer [{0}]")]
    NoSuchIssuer(String),
    #[error("Found multiple OpenID Connect realm with issuer [{0}]")]
    SeveralIssuers(String),
}

/// Why `prepare` failed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareFailed {
    #[error(transparent)]
    Lookup(#[from] RealmLookupError),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
}

/// The login use cases over one configuration snapshot.
pub struct Login<'a> {
    pub realms: &'a Realms,
    pub settings: &'a Settings,
    pub tokens: &'a TokenService,
    pub flows: &'a Flows,
    pub clock: &'a dyn Clock,
    pub role_mappings: &'a RoleMappings,
    pub metrics: &'a Metrics,
    pub audit: &'a Audit,
}

impl Login<'_> {
    /// The realm `prepare` asked for.
    pub fn realm(&self, by: RealmBy<'_>) -> Result<Arc<Realm>, RealmLookupError> {
        match by {
            RealmBy::Name(name) => self
                .realms
                .get(name)
                .cloned()
                .ok_or_else(|| RealmLookupError::NoSuchName(name.to_string())),
            RealmBy::Issuer(iss) => match realm::realm_for_issuer(self.realms, iss) {
                Ok(r) => Ok(r.clone()),
                Err(0) => Err(RealmLookupError::NoSuchIssuer(iss.to_string())),
                Err(_) => Err(RealmLookupError::SeveralIssuers(iss.to_string())),
            },
        }
    }

    fn lifetimes(&self) -> Lifetimes {
        Lifetimes::of(&self.settings.token)
    }

    /// The bounds on pending logins (`limits.pending_logins_per_caller`,
    /// `limits.pending_logins`).
    fn flow_limits(&self) -> FlowLimits {
        FlowLimits {
            per_caller: self.settings.limits.pending_logins_per_caller,
            total: self.settings.limits.pending_logins,
        }
    }

    fn context<'c>(
        &'c self,
        caller: &Authentication,
        roles: &'c (dyn Fn(&MappedUser, &str) -> Vec<String> + Sync),
    ) -> LoginContext<'c> {
        LoginContext {
            tokens: self.tokens,
            clock: self.clock,
            lifetimes: self.lifetimes(),
            flows: self.flows,
            flow_limits: self.flow_limits(),
            caller: caller.client_ref(),
            roles,
        }
    }

    /// `POST /_security/oidc/prepare`: a pending login for `caller` and the OP's URL.
    pub async fn prepare(
        &self,
        caller: &Authentication,
        by: RealmBy<'_>,
        params: PrepareParams,
    ) -> Result<PrepareResponse, PrepareFailed> {
        let realm = self.realm(by)?;
        let no_roles = |_: &MappedUser, _: &str| Vec::new();
        let ctx = self.context(caller, &no_roles);
        let resp = realm::prepare(&realm, params, &ctx)
            .await
            .inspect_err(|e| {
                if matches!(e, PrepareError::TooManyPending(_)) {
                    self.metrics.rate_limited(Limit::PendingLogins);
                    self.audit.emit(
                        Some(Who::of(&caller.user)),
                        AuditEvent::RateLimited {
                            limit: Limit::PendingLogins.as_str(),
                            retry_after_secs: TOO_MANY_PENDING_RETRY_AFTER.as_secs(),
                        },
                    );
                }
            })?;
        self.metrics.prepared(realm.name());
        Ok(resp)
    }

    /// `POST /_security/oidc/authenticate`: complete `caller`'s pending login and issue the
    /// user's tokens, with roles from the role mappings.
    pub async fn authenticate(
        &self,
        caller: &Authentication,
        params: AuthenticateParams,
    ) -> Result<LoginOutcome, LoginError> {
        let roles = |user: &MappedUser, realm: &str| {
            self.role_mappings.roles_for(&UserModel {
                username: user.principal.clone(),
                dn: user.dn.clone(),
                groups: user.groups.clone(),
                metadata: user.metadata.clone(),
                realm_name: realm.to_string(),
            })
        };
        let ctx = self.context(caller, &roles);
        // The realm label of a failure: the requested realm when it is configured (a label
        // never takes an unchecked request value), else empty.
        let requested_realm = params
            .realm
            .as_deref()
            .and_then(|r| self.realms.get(r))
            .map(|r| r.name().to_string());
        match realm::authenticate(self.realms, params, &ctx).await {
            Ok(outcome) => {
                self.metrics.login_succeeded(&outcome.user.realm.name);
                self.metrics.token(TokenEvent::Issued);
                let user = &outcome.user;
                self.audit.emit(
                    Some(Who::of(&caller.user)),
                    AuditEvent::AuthenticationSuccess {
                        method: Method::Oidc,
                        realm: Capped::new(&user.realm.name),
                        principal: Capped::new(&user.username),
                        roles: user.roles.iter().map(Capped::from).collect(),
                    },
                );
                Ok(outcome)
            }
            Err(e) => {
                let realm = requested_realm.as_deref().unwrap_or("");
                self.metrics.login_failed(realm, e.code());
                // A failure to mint the tokens of a successful login is a server error,
                // not a refused authentication.
                if !matches!(e, LoginError::Token(_)) {
                    tracing::warn!(target: "audit", event = "oidc_login_failed", code = e.code(), cause = ?e.to_string(), "login failed");
                    self.audit.emit(
                        Some(Who::of(&caller.user)),
                        AuditEvent::AuthenticationFailed {
                            method: Method::Oidc,
                            reason_code: e.code(),
                            realm: requested_realm.as_deref().map(Capped::new),
                            principal: None,
                        },
                    );
                }
                Err(e)
            }
        }
    }

    /// `POST /_security/oidc/logout` by `caller`: invalidate the tokens and answer the OP's
    /// end-session URL, when the realm has one.
    pub async fn logout(
        &self,
        caller: &Authentication,
        access_token: &str,
        refresh_token: Option<&str>,
    ) -> Result<Option<String>, LogoutError> {
        let out = realm::logout(self.realms, access_token, refresh_token, self.tokens).await?;
        self.metrics.logout();
        self.audit.emit(
            Some(Who::of(&caller.user)),
            AuditEvent::TokensInvalidated {
                target: "oidc_logout",
                realm: Some(Capped::new(&out.user.realm.name)),
                username: Some(Capped::new(&out.user.username)),
                invalidated: out.counts.invalidated,
                previously_invalidated: out.counts.previously_invalidated,
            },
        );
        Ok(out.redirect)
    }

    /// Access token lifetime in seconds (the `expires_in` of token answers).
    pub fn expires_in(&self) -> u64 {
        self.lifetimes().access.as_secs()
    }
}
