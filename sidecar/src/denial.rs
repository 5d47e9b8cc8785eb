//! Why a request is refused: one variant per reason, each with a stable `reason()` (metrics,
//! logs, `explain`) and a public `code()` with its HTTP status (response body, documented in
//! `docs/error-codes.md`).
//!
//! The public codes are deliberately coarser than the reasons: a client learns that its token
//! is invalid, expired, or not allowed here, not which check failed. No variant carries token
//! content beyond what `explain` prints to the operator who ran it.

use http::StatusCode;

/// A refused request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token in the Authorization header")]
    MissingToken,
    /// More than one `Authorization` header, or a malformed one.
    #[error("the Authorization header is malformed or repeated")]
    MalformedAuthorization,
    /// The token exceeds the size limit.
    #[error("the token is {0} bytes long, over the limit")]
    TokenTooLarge(usize),
    /// Not three base64url segments of the allowed alphabet.
    #[error("the token is not a compact JWS (three base64url segments)")]
    MalformedToken,
    /// A segment is not canonical base64url.
    #[error("a token segment is not strict base64url")]
    BadEncoding,
    /// A segment is not a JSON object, or has duplicate members.
    #[error("the token header or payload is not a JSON object: {0}")]
    BadJson(&'static str),
    /// `alg` is `none` in any spelling.
    #[error("alg none is never accepted")]
    AlgNone,
    /// `alg` is not an asymmetric algorithm we support (HS*, unknown).
    #[error("unsupported alg")]
    UnsupportedAlg,
    /// `alg` is supported but not allowed by the KeyManager.
    #[error("alg {0} is not allowed by the key manager")]
    AlgNotAllowed(&'static str),
    /// The header has `crit` or `b64`.
    #[error("the header has critical extensions (crit/b64), which are not supported")]
    CriticalHeader,
    /// The header says the token is nested or encrypted.
    #[error("nested or encrypted tokens (cty JWT, enc, zip) are not accepted")]
    NestedToken,
    /// `typ` differs from the KeyManager's required type.
    #[error("typ does not match the required type")]
    TypeMismatch,
    /// A header member has the wrong JSON type (e.g. a numeric `kid`).
    #[error("header member {0} has the wrong type or size")]
    BadHeader(&'static str),
    /// `iss` missing or not a string.
    #[error("iss is missing or not a string")]
    MissingIssuer,
    /// No KeyManager of this API has this issuer.
    #[error("the issuer is not trusted for this API")]
    UnknownIssuer,
    /// A KeyManager with this issuer exists but this workload does not allow it.
    #[error("the key manager {0} is not allowed for this workload")]
    KeyManagerNotAllowed(String),
    /// Several allowed KeyManagers share the issuer.
    #[error("several key managers share this issuer")]
    AmbiguousIssuer,
    /// No `kid` and more than one candidate key.
    #[error("the token has no kid and the key manager has several keys")]
    MissingKid,
    /// The `kid` names no key, even after a JWKS refresh.
    #[error("no key with this kid")]
    UnknownKid,
    /// The `kid` names several keys (duplicate `kid` in the key set).
    #[error("several keys share this kid")]
    AmbiguousKid,
    /// The key cannot be used with the token's `alg`.
    #[error("the key does not allow alg {0}")]
    KeyAlgMismatch(&'static str),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// `exp` missing.
    #[error("exp is missing")]
    MissingExp,
    /// A registered claim has the wrong type.
    #[error("claim {0} has the wrong type")]
    BadClaimType(String),
    /// `exp` reached.
    #[error("the token has expired")]
    Expired,
    /// `nbf` in the future.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `iat` in the future.
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    /// `aud` does not contain a configured audience.
    #[error("the audience does not match")]
    AudienceMismatch,
    /// The consumer-key claim is missing.
    #[error("claim {0} (the client id) is missing")]
    MissingClientId(String),
    /// The consumer-key claim is not a usable string.
    #[error("claim {0} (the client id) is not a plain string")]
    BadClientId(String),
    /// The client is not subscribed to this API.
    #[error("client is not subscribed to this API")]
    NotSubscribed,
    /// The subscription's key type differs from this workload's.
    #[error("a {found} key cannot call this {expected} API")]
    KeyTypeMismatch {
        /// The binding's key type.
        found: &'static str,
        /// The workload's key type.
        expected: &'static str,
    },
    /// The subscription is Blocked or ProductionOnlyBlocked (for a production key).
    #[error("the subscription is {0}")]
    SubscriptionBlocked(&'static str),
    /// A route rule needs scopes the token lacks.
    #[error("the route needs scope(s) {0}")]
    InsufficientScope(String),
    /// The request path is ambiguous (encoded slash, backslash, climbs above the root…).
    #[error("the request path is ambiguous: {0}")]
    InvalidPath(&'static str),
    /// No valid config has been loaded yet.
    #[error("no valid config has been loaded yet")]
    ConfigUnavailable,
}

/// The public code of a denial: the `code` member of the response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// No token: `401`, `WWW-Authenticate: Bearer realm=…` without an error.
    MissingToken,
    /// Malformed request: `400 invalid_request`.
    InvalidRequest,
    /// Bad token: `401 invalid_token`.
    InvalidToken,
    /// Expired or not yet valid token: `401 invalid_token`.
    TokenExpired,
    /// Not subscribed: `403`.
    NotSubscribed,
    /// Subscription blocked: `403`.
    SubscriptionBlocked,
    /// Wrong key type: `403`.
    KeyTypeNotAllowed,
    /// Scope missing: `403 insufficient_scope`.
    InsufficientScope,
    /// Not ready: `503`.
    ConfigUnavailable,
}

impl Code {
    /// The code as written in the response body.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MissingToken => "missing_token",
            Code::InvalidRequest => "invalid_request",
            Code::InvalidToken => "invalid_token",
            Code::TokenExpired => "token_expired",
            Code::NotSubscribed => "not_subscribed",
            Code::SubscriptionBlocked => "subscription_blocked",
            Code::KeyTypeNotAllowed => "key_type_not_allowed",
            Code::InsufficientScope => "insufficient_scope",
            Code::ConfigUnavailable => "config_unavailable",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidRequest => StatusCode::BAD_REQUEST,
            Code::MissingToken | Code::InvalidToken | Code::TokenExpired => {
                StatusCode::UNAUTHORIZED
            }
            Code::NotSubscribed
            | Code::SubscriptionBlocked
            | Code::KeyTypeNotAllowed
            | Code::InsufficientScope => StatusCode::FORBIDDEN,
            Code::ConfigUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 `error` attribute of `WWW-Authenticate`, if any.
    pub fn bearer_error(self) -> Option<&'static str> {
        match self {
            Code::MissingToken | Code::ConfigUnavailable => None,
            Code::InvalidRequest => Some("invalid_request"),
            Code::InvalidToken | Code::TokenExpired => Some("invalid_token"),
            Code::InsufficientScope => Some("insufficient_scope"),
            Code::NotSubscribed | Code::SubscriptionBlocked | Code::KeyTypeNotAllowed => None,
        }
    }

    /// A short, generic human message for the response body.
    pub fn message(self) -> &'static str {
        match self {
            Code::MissingToken => "an OAuth 2.0 bearer access token is required",
            Code::InvalidRequest => "the request is malformed",
            Code::InvalidToken => "the access token is invalid",
            Code::TokenExpired => "the access token has expired or is not valid yet",
            Code::NotSubscribed => "the application is not subscribed to this API",
            Code::SubscriptionBlocked => "the application's subscription to this API is blocked",
            Code::KeyTypeNotAllowed => "this API does not accept keys of this type",
            Code::InsufficientScope => "the access token lacks a scope this route requires",
            Code::ConfigUnavailable => "the API is not ready",
        }
    }
}

impl Denial {
    /// A stable, bounded name for metrics labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::MissingToken => "missing_token",
            Denial::MalformedAuthorization => "malformed_authorization",
            Denial::TokenTooLarge(_) => "token_too_large",
            Denial::MalformedToken => "malformed_token",
            Denial::BadEncoding => "bad_encoding",
            Denial::BadJson(_) => "bad_json",
            Denial::AlgNone => "alg_none",
            Denial::UnsupportedAlg => "unsupported_alg",
            Denial::AlgNotAllowed(_) => "alg_not_allowed",
            Denial::CriticalHeader => "critical_header",
            Denial::NestedToken => "nested_token",
            Denial::TypeMismatch => "type_mismatch",
            Denial::BadHeader(_) => "bad_header",
            Denial::MissingIssuer => "missing_issuer",
            Denial::UnknownIssuer => "unknown_issuer",
            Denial::KeyManagerNotAllowed(_) => "key_manager_not_allowed",
            Denial::AmbiguousIssuer => "ambiguous_issuer",
            Denial::MissingKid => "missing_kid",
            Denial::UnknownKid => "unknown_kid",
            Denial::AmbiguousKid => "ambiguous_kid",
            Denial::KeyAlgMismatch(_) => "key_alg_mismatch",
            Denial::BadSignature => "bad_signature",
            Denial::MissingExp => "missing_exp",
            Denial::BadClaimType(_) => "bad_claim_type",
            Denial::Expired => "expired",
            Denial::NotYetValid => "not_yet_valid",
            Denial::IssuedInFuture => "issued_in_future",
            Denial::AudienceMismatch => "audience_mismatch",
            Denial::MissingClientId(_) => "missing_client_id",
            Denial::BadClientId(_) => "bad_client_id",
            Denial::NotSubscribed => "not_subscribed",
            Denial::KeyTypeMismatch { .. } => "key_type_mismatch",
            Denial::SubscriptionBlocked(_) => "subscription_blocked",
            Denial::InsufficientScope(_) => "insufficient_scope",
            Denial::InvalidPath(_) => "invalid_path",
            Denial::ConfigUnavailable => "config_unavailable",
        }
    }

    /// Every reason, for documentation tests and metric pre-registration.
    pub const REASONS: [&'static str; 36] = [
        "missing_token",
        "malformed_authorization",
        "token_too_large",
        "malformed_token",
        "bad_encoding",
        "bad_json",
        "alg_none",
        "unsupported_alg",
        "alg_not_allowed",
        "critical_header",
        "nested_token",
        "type_mismatch",
        "bad_header",
        "missing_issuer",
        "unknown_issuer",
        "key_manager_not_allowed",
        "ambiguous_issuer",
        "missing_kid",
        "unknown_kid",
        "ambiguous_kid",
        "key_alg_mismatch",
        "bad_signature",
        "missing_exp",
        "bad_claim_type",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "audience_mismatch",
        "missing_client_id",
        "bad_client_id",
        "not_subscribed",
        "key_type_mismatch",
        "subscription_blocked",
        "insufficient_scope",
        "invalid_path",
        "config_unavailable",
    ];

    /// The public code and status.
    pub fn code(&self) -> Code {
        match self {
            Denial::MissingToken => Code::MissingToken,
            Denial::MalformedAuthorization | Denial::InvalidPath(_) => Code::InvalidRequest,
            Denial::Expired | Denial::NotYetValid => Code::TokenExpired,
            Denial::NotSubscribed => Code::NotSubscribed,
            Denial::SubscriptionBlocked(_) => Code::SubscriptionBlocked,
            Denial::KeyTypeMismatch { .. } => Code::KeyTypeNotAllowed,
            Denial::InsufficientScope(_) => Code::InsufficientScope,
            Denial::ConfigUnavailable => Code::ConfigUnavailable,
            _ => Code::InvalidToken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_denial() -> Vec<Denial> {
        vec![
            Denial::MissingToken,
            Denial::MalformedAuthorization,
            Denial::TokenTooLarge(1),
            Denial::MalformedToken,
            Denial::BadEncoding,
            Denial::BadJson("x"),
            Denial::AlgNone,
            Denial::UnsupportedAlg,
            Denial::AlgNotAllowed("RS256"),
            Denial::CriticalHeader,
            Denial::NestedToken,
            Denial::TypeMismatch,
            Denial::BadHeader("kid"),
            Denial::MissingIssuer,
            Denial::UnknownIssuer,
            Denial::KeyManagerNotAllowed("a".into()),
            Denial::AmbiguousIssuer,
            Denial::MissingKid,
            Denial::UnknownKid,
            Denial::AmbiguousKid,
            Denial::KeyAlgMismatch("ES256"),
            Denial::BadSignature,
            Denial::MissingExp,
            Denial::BadClaimType("exp".into()),
            Denial::Expired,
            Denial::NotYetValid,
            Denial::IssuedInFuture,
            Denial::AudienceMismatch,
            Denial::MissingClientId("client_id".into()),
            Denial::BadClientId("client_id".into()),
            Denial::NotSubscribed,
            Denial::KeyTypeMismatch {
                found: "SANDBOX",
                expected: "PRODUCTION",
            },
            Denial::SubscriptionBlocked("Blocked"),
            Denial::InsufficientScope("a".into()),
            Denial::InvalidPath("x"),
            Denial::ConfigUnavailable,
        ]
    }

    #[test]
    fn reasons_are_listed_once_each() {
        let reasons: Vec<&str> = every_denial().iter().map(Denial::reason).collect();
        assert_eq!(reasons, Denial::REASONS.to_vec());
    }

    #[test]
    fn token_problems_are_401_and_authorization_problems_403() {
        for denial in every_denial() {
            let status = denial.code().status();
            match denial {
                Denial::NotSubscribed
                | Denial::KeyTypeMismatch { .. }
                | Denial::SubscriptionBlocked(_)
                | Denial::InsufficientScope(_) => assert_eq!(status, 403, "{denial:?}"),
                Denial::MalformedAuthorization | Denial::InvalidPath(_) => {
                    assert_eq!(status, 400, "{denial:?}")
                }
                Denial::ConfigUnavailable => assert_eq!(status, 503),
                _ => assert_eq!(status, 401, "{denial:?}"),
            }
        }
    }

    #[test]
    fn only_a_missing_token_gets_a_bearer_challenge_without_error() {
        assert_eq!(Code::MissingToken.bearer_error(), None);
        assert_eq!(Code::InvalidToken.bearer_error(), Some("invalid_token"));
        assert_eq!(Code::TokenExpired.bearer_error(), Some("invalid_token"));
        assert_eq!(
            Code::InsufficientScope.bearer_error(),
            Some("insufficient_scope")
        );
    }
}
