//! The identity headers the sidecar sets for the app, and the stripping of every inbound
//! header in the `x-outband-` namespace, so a client can never supply its own identity.
//! (HTTP header names are case-insensitive; hyper stores them in lower case, so one prefix
//! test covers every spelling.)

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::denial::Denial;
use crate::policy::Grant;

/// The prefix of every header the sidecar owns.
pub const PREFIX: &str = "x-outband-";
/// The client id (consumer key).
pub const CLIENT_ID: HeaderName = HeaderName::from_static("x-outband-client-id");
/// The application of the subscription.
pub const APPLICATION: HeaderName = HeaderName::from_static("x-outband-application");
/// `PRODUCTION` or `SANDBOX`.
pub const KEY_TYPE: HeaderName = HeaderName::from_static("x-outband-key-type");
/// The token's `sub`, when present.
pub const SUBJECT: HeaderName = HeaderName::from_static("x-outband-subject");
/// The granted scopes, space-separated, when any.
pub const SCOPES: HeaderName = HeaderName::from_static("x-outband-scopes");
/// The subscription's tier, when set.
pub const TIER: HeaderName = HeaderName::from_static("x-outband-tier");
/// The KeyManager that issued the token.
pub const KEY_MANAGER: HeaderName = HeaderName::from_static("x-outband-key-manager");

/// Removes every `x-outband-*` header.
pub fn strip_inbound(headers: &mut HeaderMap) {
    let owned: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(PREFIX))
        .cloned()
        .collect();
    for name in owned {
        headers.remove(&name);
    }
}

/// Header values derived from a token's claims, built once per verified token.
#[derive(Clone, Debug)]
pub struct ClaimHeaders {
    client_id: HeaderValue,
    subject: Option<HeaderValue>,
    scopes: Option<HeaderValue>,
}

impl ClaimHeaders {
    /// Builds the values from verified claims.
    pub fn new(claims: &crate::token::claims::Claims) -> Result<ClaimHeaders, Denial> {
        let client_id = HeaderValue::from_bytes(claims.client_id.as_bytes())
            .map_err(|_| Denial::BadClientId("client id".into()))?;
        let subject = claims
            .subject
            .as_deref()
            .map(|sub| HeaderValue::from_bytes(sub.as_bytes()))
            .transpose()
            .map_err(|_| Denial::BadClaimType("sub".into()))?;
        let scopes = (!claims.scopes.is_empty())
            .then(|| HeaderValue::from_str(&claims.scopes.join(" ")))
            .transpose()
            .map_err(|_| Denial::BadClaimType("scope".into()))?;
        Ok(ClaimHeaders {
            client_id,
            subject,
            scopes,
        })
    }
}

/// The identity of an allowed caller, as headers for the app.
#[derive(Clone, Debug)]
pub struct Identity {
    claims: ClaimHeaders,
    application: HeaderValue,
    key_type: HeaderValue,
    tier: Option<HeaderValue>,
    key_manager: HeaderValue,
}

impl Identity {
    /// The identity of a granted call.
    pub fn new(grant: &Grant<'_>, claims: ClaimHeaders) -> Identity {
        Identity {
            claims,
            application: grant.subscription.application_header.clone(),
            key_type: HeaderValue::from_static(grant.subscription.key_type.as_str()),
            tier: grant.subscription.tier_header.clone(),
            key_manager: grant.key_manager.name_header.clone(),
        }
    }

    /// Sets the identity headers (after [`strip_inbound`]).
    pub fn apply(self, headers: &mut HeaderMap) {
        headers.insert(CLIENT_ID, self.claims.client_id);
        headers.insert(APPLICATION, self.application);
        headers.insert(KEY_TYPE, self.key_type);
        headers.insert(KEY_MANAGER, self.key_manager);
        if let Some(subject) = self.claims.subject {
            headers.insert(SUBJECT, subject);
        }
        if let Some(scopes) = self.claims.scopes {
            headers.insert(SCOPES, scopes);
        }
        if let Some(tier) = self.tier {
            headers.insert(TIER, tier);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_every_spelling_of_owned_headers() {
        let mut headers = HeaderMap::new();
        for name in [
            "X-Outband-Client-Id",
            "x-outband-application",
            "X-OUTBAND-TIER",
            "x-outband-anything-else",
            "x-outband-scopes",
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("spoofed"),
            );
        }
        headers.insert("x-outbandish", HeaderValue::from_static("kept"));
        headers.insert("accept", HeaderValue::from_static("kept"));
        strip_inbound(&mut headers);
        assert_eq!(headers.len(), 2);
        assert!(
            headers
                .keys()
                .all(|name| !name.as_str().starts_with(PREFIX))
        );
    }
}
