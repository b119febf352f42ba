//! The token-grant service: `POST /_security/oauth2/token` (password, client_credentials and
//! refresh_token grants) and `DELETE /_security/oauth2/token`, over the token service, with
//! their metrics and audit events. Handlers validate the request and the caller's privilege;
//! this decides what is issued, refreshed or invalidated.

use crate::audit::{Audit, AuditEvent, Capped, Method, Who};
use crate::auth::caller::{Authenticator, PasswordRefused};
use crate::auth::{Authentication, AuthenticationType};
use crate::config::{RefreshReuse, Settings};
use crate::metrics::{Limit, Metrics, TokenEvent};
use crate::model::UserRecord;
use crate::store::{Invalidation, InvalidationCounts};
use crate::tokens::format::TokenKind;
use crate::tokens::{IssuedPair, Lifetimes, RefreshError, TokenError, TokenService};
use std::net::IpAddr;

/// Tokens issued by a grant, and whom they stand for.
#[derive(Debug)]
pub struct Granted {
    pub pair: IssuedPair,
    pub user: UserRecord,
    pub kind: AuthenticationType,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
}

/// Why a grant failed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The password grant's user or password was refused.
    #[error("the password of [{username}] was refused")]
    Password {
        username: String,
        refused: PasswordRefused,
    },
    /// The refresh token was refused (`caller` is who asked, for the log).
    #[error("refresh refused ({}) for caller [{caller}]", refused.code())]
    Refresh {
        refused: RefreshError,
        caller: String,
    },
    #[error(transparent)]
    Token(TokenError),
}

impl From<TokenError> for GrantError {
    fn from(e: TokenError) -> Self {
        GrantError::Token(e)
    }
}

/// What `DELETE /_security/oauth2/token` invalidates.
#[derive(Debug, Clone, Copy)]
pub enum InvalidateTarget<'a> {
    AccessToken(&'a str),
    RefreshToken(&'a str),
    /// Every token of a realm, of a user name, or of both.
    Owner {
        realm: Option<&'a str>,
        username: Option<&'a str>,
    },
}

impl InvalidateTarget<'_> {
    /// One token named (an unknown one is 404), rather than an owner (an empty match is 200).
    pub fn is_single(&self) -> bool {
        !matches!(self, InvalidateTarget::Owner { .. })
    }
}

/// The grant use cases over one configuration snapshot.
pub struct Grants<'a> {
    pub settings: &'a Settings,
    pub tokens: &'a TokenService,
    pub callers: &'a Authenticator,
    pub metrics: &'a Metrics,
    pub audit: &'a Audit,
}

impl Grants<'_> {
    fn lifetimes(&self) -> Lifetimes {
        Lifetimes::of(&self.settings.token)
    }

    fn granted(&self, pair: IssuedPair, user: UserRecord, kind: AuthenticationType) -> Granted {
        Granted {
            pair,
            user,
            kind,
            expires_in: self.lifetimes().access.as_secs(),
        }
    }

    /// The password grant: a token pair for a configured user, created by `caller`.
    pub async fn password(
        &self,
        caller: &Authentication,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Granted, GrantError> {
        let user = self
            .callers
            .verify_password(self.settings, self.metrics, username, password, client)
            .await
            .map_err(|refused| {
                let event = match refused {
                    PasswordRefused::Wrong => Some(AuditEvent::AuthenticationFailed {
                        method: Method::PasswordGrant,
                        reason_code: refused.code(),
                        realm: None,
                        principal: Some(Capped::new(username)),
                    }),
                    PasswordRefused::Throttled(secs) => Some(AuditEvent::RateLimited {
                        limit: Limit::PasswordChecks.as_str(),
                        retry_after_secs: secs,
                    }),
                    // Overload: not a refused authentication (the metrics count it).
                    PasswordRefused::Busy => None,
                };
                if let Some(event) = event {
                    self.audit.emit(Some(Who::of(&caller.user)), event);
                }
                GrantError::Password {
                    username: username.to_string(),
                    refused,
                }
            })?;
        self.issue(
            caller,
            (*user.user).clone(),
            true,
            AuthenticationType::Realm,
        )
        .await
        .inspect(|g| self.succeeded(caller, Method::PasswordGrant, &g.user))
    }

    /// The client_credentials grant: an access token (no refresh token) for the caller itself.
    pub async fn client_credentials(&self, caller: &Authentication) -> Result<Granted, GrantError> {
        self.issue(caller, (*caller.user).clone(), false, caller.kind)
            .await
            .inspect(|g| self.succeeded(caller, Method::ClientCredentials, &g.user))
    }

    /// Audit tokens issued to `user` by a grant `caller` asked for.
    fn succeeded(&self, caller: &Authentication, method: Method, user: &UserRecord) {
        self.audit.emit(
            Some(Who::of(&caller.user)),
            AuditEvent::AuthenticationSuccess {
                method,
                realm: Capped::new(&user.realm.name),
                principal: Capped::new(&user.username),
                roles: user.roles.iter().map(Capped::from).collect(),
            },
        );
    }

    /// A new pair (with a refresh token when `refreshable`) for `user`, created by `caller`.
    async fn issue(
        &self,
        caller: &Authentication,
        user: UserRecord,
        refreshable: bool,
        kind: AuthenticationType,
    ) -> Result<Granted, GrantError> {
        let pair = self
            .tokens
            .issue(
                user.clone(),
                caller.client_ref(),
                self.lifetimes(),
                refreshable,
                None,
            )
            .await?;
        self.metrics.token(TokenEvent::Issued);
        Ok(self.granted(pair, user, kind))
    }

    /// The refresh_token grant: a new pair for a pair `caller` created (`token.refresh_reuse`
    /// decides a reuse after the same-pair window).
    pub async fn refresh(
        &self,
        caller: &Authentication,
        refresh_token: &str,
    ) -> Result<Granted, GrantError> {
        let client = caller.client_ref();
        let reuse = self.settings.token.refresh_reuse;
        let (pair, user) = self
            .tokens
            .refresh(refresh_token, &client, self.lifetimes(), reuse)
            .await
            .map_err(|e| match e {
                TokenError::Refresh(r) => {
                    let event = if r == RefreshError::ReusedAfterWindow {
                        self.metrics.token(TokenEvent::RefreshReuse);
                        AuditEvent::RefreshReuseDetected {
                            family_revoked: reuse == RefreshReuse::RevokeFamily,
                        }
                    } else {
                        AuditEvent::AuthenticationFailed {
                            method: Method::RefreshToken,
                            reason_code: r.code(),
                            realm: None,
                            principal: None,
                        }
                    };
                    self.audit.emit(Some(Who::of(&caller.user)), event);
                    GrantError::Refresh {
                        refused: r,
                        caller: client.username.clone(),
                    }
                }
                other => GrantError::Token(other),
            })?;
        self.metrics.token(TokenEvent::Refreshed);
        self.audit.emit(
            Some(Who::of(&caller.user)),
            AuditEvent::TokenRefreshed {
                realm: Capped::new(&user.realm.name),
                principal: Capped::new(&user.username),
            },
        );
        Ok(self.granted(pair, user, AuthenticationType::Realm))
    }

    /// Invalidate what `target` names, on behalf of `by`; counts of what changed.
    pub async fn invalidate(
        &self,
        by: &Authentication,
        target: InvalidateTarget<'_>,
    ) -> Result<InvalidationCounts, TokenError> {
        let counts = match target {
            InvalidateTarget::AccessToken(t) => {
                self.tokens.invalidate_token(TokenKind::Access, t).await?
            }
            InvalidateTarget::RefreshToken(r) => {
                self.tokens.invalidate_token(TokenKind::Refresh, r).await?
            }
            InvalidateTarget::Owner { realm, username } => Some(
                self.tokens
                    .invalidate(Invalidation::Owner {
                        realm: realm.map(str::to_string),
                        username: username.map(str::to_string),
                    })
                    .await?,
            ),
        }
        .unwrap_or_default();
        self.metrics.tokens_invalidated(counts.invalidated);
        let (realm, username) = match target {
            InvalidateTarget::Owner { realm, username } => (realm, username),
            _ => (None, None),
        };
        self.audit.emit(
            Some(Who::of(&by.user)),
            AuditEvent::TokensInvalidated {
                target: match target {
                    InvalidateTarget::AccessToken(_) => "access_token",
                    InvalidateTarget::RefreshToken(_) => "refresh_token",
                    InvalidateTarget::Owner { .. } => "owner",
                },
                realm: realm.map(Capped::new),
                username: username.map(Capped::new),
                invalidated: counts.invalidated,
                previously_invalidated: counts.previously_invalidated,
            },
        );
        tracing::info!(
            target: "audit",
            event = "tokens_invalidated",
            by = ?by.user.username,
            realm = realm.unwrap_or(""),
            username = username.unwrap_or(""),
            invalidated = counts.invalidated,
            previously_invalidated = counts.previously_invalidated,
            "token invalidation"
        );
        Ok(counts)
    }

    /// Back-Channel Logout: invalidate at once every access and refresh token of the logins
    /// of `realm` whose provider session matches `sub` and/or `sid`, through the token
    /// service (so the bearer cache drops them too). Audited as a `tokens_invalidated` event
    /// with target `oidc_session` and no caller (the provider calls without credentials).
    pub async fn invalidate_oidc_session(
        &self,
        realm: &str,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<InvalidationCounts, TokenError> {
        let counts = self
            .tokens
            .invalidate(Invalidation::OidcSession {
                realm: realm.to_string(),
                sub: sub.map(str::to_string),
                sid: sid.map(str::to_string),
            })
            .await?;
        self.metrics.tokens_invalidated(counts.invalidated);
        self.audit.emit(
            None,
            AuditEvent::TokensInvalidated {
                target: "oidc_session",
                realm: Some(Capped::new(realm)),
                username: None,
                invalidated: counts.invalidated,
                previously_invalidated: counts.previously_invalidated,
            },
        );
        tracing::info!(
            target: "audit",
            event = "tokens_invalidated",
            realm,
            invalidated = counts.invalidated,
            previously_invalidated = counts.previously_invalidated,
            "back-channel logout"
        );
        Ok(counts)
    }
}
