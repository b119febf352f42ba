//! Token rules both store backends share: what an invalidation does to one doc and which docs
//! an owner invalidation selects.

use super::InvalidationCounts;
use crate::model::TokenDoc;

/// Invalidate one doc's tokens according to `access`/`refresh` flags, counting.
pub(super) fn invalidate_doc(
    doc: &mut TokenDoc,
    access: bool,
    refresh: bool,
    counts: &mut InvalidationCounts,
) {
    if access {
        if doc.access_invalidated {
            counts.previously_invalidated += 1;
        } else {
            doc.access_invalidated = true;
            counts.invalidated += 1;
            counts.access_hashes.push(doc.access_hash);
        }
    }
    if refresh && doc.refresh_hash.is_some() {
        if doc.refresh_invalidated {
            counts.previously_invalidated += 1;
        } else {
            doc.refresh_invalidated = true;
            counts.invalidated += 1;
        }
    }
}

/// Whether `doc` is selected by an owner invalidation. A selector naming neither a realm nor a
/// user selects nothing (an empty filter must never mean "every token").
pub(super) fn owner_matches(doc: &TokenDoc, realm: Option<&str>, username: Option<&str>) -> bool {
    (realm.is_some() || username.is_some())
        && realm.is_none_or(|r| doc.user.realm.name == r)
        && username.is_none_or(|u| doc.user.username == u)
}

/// Whether `doc` is selected by an OIDC session invalidation (see
/// [`Invalidation::OidcSession`](super::Invalidation::OidcSession)). Neither `sub` nor `sid`
/// selects nothing.
pub(super) fn session_matches(
    doc: &TokenDoc,
    realm: &str,
    sub: Option<&str>,
    sid: Option<&str>,
) -> bool {
    let Some(session) = &doc.oidc_session else {
        return false;
    };
    (sub.is_some() || sid.is_some())
        && doc.user.realm.name == realm
        && sub.is_none_or(|s| session.sub == s)
        && sid.is_none_or(|s| session.sid.as_deref() == Some(s))
}
