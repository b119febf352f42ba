//! Who is calling: HTTP Basic against the configured users, or a bearer access token from the
//! token service; and whether they hold the privilege an action needs.

mod basic;
pub mod caller;
pub mod limits;
pub mod service_tokens;

pub use basic::{hash_password, verify as basic_verify, BasicVerifier};

use crate::config::{Privilege, Settings};
use crate::model::{ClientRef, RealmRef, UserRecord};
use serde_json::Value;
use std::collections::BTreeSet;

/// The realm Elasticsearch reports for users of its `users` file; ours are config users.
pub const FILE_REALM: &str = "default_file";
pub const FILE_REALM_TYPE: &str = "file";

/// A caller without a privilege that grants `action` (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    pub action: Action,
    pub username: String,
    pub roles: Vec<String>,
}

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let granting: Vec<&str> = self
            .action
            .granted_by()
            .iter()
            .map(|p| p.as_str())
            .collect();
        write!(
            f,
            "action [{}] is unauthorized for user [{}] with effective roles [{}], this action is granted by the cluster privileges [{}]",
            self.action.name(),
            self.username,
            self.roles.join(","),
            granting.join(",")
        )
    }
}

/// An API action, with Elasticsearch's action name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    OidcPrepare,
    OidcAuthenticate,
    OidcLogout,
    TokenCreate,
    TokenRefresh,
    TokenInvalidate,
    RoleMappingPut,
    RoleMappingGet,
    RoleMappingDelete,
    /// `GET /_security/_authenticate`: any authenticated caller.
    Authenticate,
    /// `GET /_security/oidc/_status`: configuration generation, reload errors, JWKS state.
    ReloadStatus,
    ProfileActivate,
    ProfileGet,
    /// `GET /_oauth/connections[/{name}]`.
    ConnectionGet,
    /// `PUT /_oauth/connections/{name}`; authorizing a shared connection; another user's grant.
    ConnectionManage,
    /// `DELETE /_oauth/connections/{name}`.
    ConnectionDelete,
    /// `_authorize`, `_callback`, `_token`, `_grant` for a user.
    ConnectionUse,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::OidcPrepare => "cluster:admin/xpack/security/oidc/prepare",
            Action::OidcAuthenticate => "cluster:admin/xpack/security/oidc/authenticate",
            Action::OidcLogout => "cluster:admin/xpack/security/oidc/logout",
            Action::TokenCreate => "cluster:admin/xpack/security/token/create",
            Action::TokenRefresh => "cluster:admin/xpack/security/token/refresh",
            Action::TokenInvalidate => "cluster:admin/xpack/security/token/invalidate",
            Action::RoleMappingPut => "cluster:admin/xpack/security/role_mapping/put",
            Action::RoleMappingGet => "cluster:admin/xpack/security/role_mapping/get",
            Action::RoleMappingDelete => "cluster:admin/xpack/security/role_mapping/delete",
            Action::Authenticate => "cluster:admin/xpack/security/user/authenticate",
            Action::ReloadStatus => "cluster:monitor/oidc_realm/status",
            Action::ProfileActivate => "cluster:admin/xpack/security/profile/activate",
            Action::ProfileGet => "cluster:admin/xpack/security/profile/get",
            Action::ConnectionGet => "cluster:admin/oidc_realm/connections/get",
            Action::ConnectionManage => "cluster:admin/oidc_realm/connections/put",
            Action::ConnectionDelete => "cluster:admin/oidc_realm/connections/delete",
            Action::ConnectionUse => "cluster:admin/oidc_realm/connections/use",
        }
    }

    /// The privileges that grant this action, least to most powerful (empty: any caller).
    pub fn granted_by(self) -> &'static [Privilege] {
        use Privilege::*;
        match self {
            Action::OidcPrepare | Action::OidcAuthenticate | Action::OidcLogout => {
                &[ManageOidc, ManageSecurity, All]
            }
            Action::TokenCreate | Action::TokenRefresh | Action::TokenInvalidate => {
                &[ManageToken, ManageSecurity, All]
            }
            Action::RoleMappingPut | Action::RoleMappingGet | Action::RoleMappingDelete => {
                &[ManageSecurity, All]
            }
            Action::Authenticate => &[],
            Action::ReloadStatus => &[ManageOidc, ManageSecurity, All],
            Action::ProfileActivate | Action::ProfileGet => {
                &[ManageUserProfile, ManageSecurity, All]
            }
            Action::ConnectionGet => &[ReadConnections, ManageConnections, ManageSecurity, All],
            Action::ConnectionManage | Action::ConnectionDelete => {
                &[ManageConnections, ManageSecurity, All]
            }
            Action::ConnectionUse => &[UseConnections, All],
        }
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthenticationType {
    Realm,
    /// An access token from the token service.
    Token,
    /// A service account token (Elasticsearch also reports these as `token`).
    ServiceAccount,
}

impl AuthenticationType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthenticationType::Realm => "realm",
            AuthenticationType::Token | AuthenticationType::ServiceAccount => "token",
        }
    }
}

/// The user of an authentication: built for a configured user, or shared with the bearer
/// token's cached record (so a bearer check copies nothing).
#[derive(Debug, Clone)]
pub enum CallerUser {
    Owned(Box<UserRecord>),
    Token(std::sync::Arc<UserRecord>),
}

impl std::ops::Deref for CallerUser {
    type Target = UserRecord;
    fn deref(&self) -> &UserRecord {
        match self {
            CallerUser::Owned(u) => u,
            CallerUser::Token(user) => user,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Authentication {
    pub user: CallerUser,
    pub kind: AuthenticationType,
    pub privileges: BTreeSet<Privilege>,
    /// For a service account: the name of the token used (`_authenticate` shows it).
    pub service_token: Option<String>,
}

impl Authentication {
    /// A configured user, authenticated with its password.
    pub fn for_file_user(settings: &Settings, username: &str) -> Option<Self> {
        let entry = settings.users.get(username)?;
        Some(Self {
            user: CallerUser::Owned(Box::new(UserRecord {
                username: username.to_string(),
                roles: entry.roles.clone(),
                full_name: entry.full_name.clone(),
                email: entry.email.clone(),
                metadata: Default::default(),
                realm: file_realm(),
            })),
            kind: AuthenticationType::Realm,
            privileges: entry.privileges.clone(),
            service_token: None,
        })
    }

    /// A service account, authenticated with one of its configured tokens.
    pub fn for_service_token(
        presented: &service_tokens::Presented,
        entry: &crate::config::ServiceTokenEntry,
    ) -> Self {
        let account = presented.account();
        let mut metadata = serde_json::Map::new();
        metadata.insert("_elastic_service_account".into(), Value::Bool(true));
        Self {
            user: CallerUser::Owned(Box::new(UserRecord {
                username: account.to_string(),
                roles: Vec::new(),
                full_name: Some(format!("Service account - {account}")),
                email: None,
                metadata,
                realm: RealmRef {
                    name: service_tokens::SERVICE_ACCOUNT_REALM.to_string(),
                    kind: service_tokens::SERVICE_ACCOUNT_REALM.to_string(),
                },
            })),
            kind: AuthenticationType::ServiceAccount,
            privileges: entry.privileges.clone(),
            service_token: Some(presented.token_name().to_string()),
        }
    }

    /// The privileges a token's user holds now: a configured user's current privileges; a
    /// user of an OIDC realm holds none (its roles grant access elsewhere, not to these APIs).
    pub fn privileges_of(settings: &Settings, user: &UserRecord) -> BTreeSet<Privilege> {
        if user.realm.kind == FILE_REALM_TYPE {
            if let Some(entry) = settings.users.get(&user.username) {
                return entry.privileges.clone();
            }
        }
        BTreeSet::new()
    }

    /// Refuse unless a privilege granting `action` is held.
    pub fn require(&self, action: Action) -> Result<(), Forbidden> {
        let granted = action.granted_by();
        if granted.is_empty() || granted.iter().any(|p| self.privileges.contains(p)) {
            return Ok(());
        }
        Err(Forbidden {
            action,
            username: self.user.username.clone(),
            roles: self.user.roles.clone(),
        })
    }

    /// This caller as the creating client of a token pair.
    pub fn client_ref(&self) -> ClientRef {
        ClientRef {
            username: self.user.username.clone(),
            realm: self.user.realm.name.clone(),
        }
    }
}

/// The realm object of configured users.
pub fn file_realm() -> RealmRef {
    RealmRef {
        name: FILE_REALM.to_string(),
        kind: FILE_REALM_TYPE.to_string(),
    }
}

/// Elasticsearch's authentication object, serialized straight from the user (no intermediate
/// JSON tree: this is on the bearer hot path).
#[derive(Debug, serde::Serialize)]
pub struct AuthenticationView<'a> {
    username: &'a str,
    roles: &'a [String],
    full_name: Option<&'a str>,
    email: Option<&'a str>,
    metadata: &'a serde_json::Map<String, Value>,
    enabled: bool,
    authentication_realm: &'a RealmRef,
    lookup_realm: &'a RealmRef,
    authentication_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<ServiceTokenView<'a>>,
}

/// `token` of a service account's authentication object.
#[derive(Debug, serde::Serialize)]
struct ServiceTokenView<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<'a> AuthenticationView<'a> {
    /// The authentication object of a caller (with its service token, if any).
    pub fn of(auth: &'a Authentication) -> Self {
        let mut v = Self::new(&auth.user, auth.kind);
        v.token = auth.service_token.as_deref().map(|name| ServiceTokenView {
            name,
            kind: service_tokens::TOKEN_SOURCE,
        });
        v
    }

    pub fn new(user: &'a UserRecord, kind: AuthenticationType) -> Self {
        Self {
            username: &user.username,
            roles: &user.roles,
            full_name: user.full_name.as_deref(),
            email: user.email.as_deref(),
            metadata: &user.metadata,
            enabled: true,
            authentication_realm: &user.realm,
            lookup_realm: &user.realm,
            authentication_type: kind.as_str(),
            token: None,
        }
    }
}

/// Elasticsearch's authentication object for a user.
pub fn user_json(user: &UserRecord, kind: AuthenticationType) -> Value {
    serde_json::to_value(AuthenticationView::new(user, kind)).unwrap_or(Value::Null)
}
