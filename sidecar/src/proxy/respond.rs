//! Responses the sidecar makes itself: refusals (RFC 6750 challenge plus a small JSON body
//! with a stable code) and upstream failures. Nothing from the token is echoed.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::denial::{Code, Denial};

/// The refusal response for `denial`.
pub fn denial(denial: &Denial, realm: &str) -> Response<Full<Bytes>> {
    let code = denial.code();
    let mut response = json(code.status(), code.as_str(), code.message());
    let headers = response.headers_mut();
    if let Some(challenge) = challenge(denial, realm)
        && let Ok(value) = HeaderValue::from_str(&challenge)
    {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    if code == Code::ConfigUnavailable {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// The `WWW-Authenticate` value (RFC 6750 §3), if the refusal has one.
pub fn challenge(denial: &Denial, realm: &str) -> Option<String> {
    let code = denial.code();
    let realm = quote(realm);
    match (code, code.bearer_error()) {
        (Code::MissingToken, _) => Some(format!("Bearer realm={realm}")),
        (Code::InsufficientScope, Some(error)) => {
            let scope = match denial {
                Denial::InsufficientScope(scopes) => format!(", scope={}", quote(scopes)),
                _ => String::new(),
            };
            Some(format!("Bearer realm={realm}, error=\"{error}\"{scope}"))
        }
        (_, Some(error)) => Some(format!(
            "Bearer realm={realm}, error=\"{error}\", error_description={}",
            quote(code.message())
        )),
        (_, None) => None,
    }
}

fn quote(value: &str) -> String {
    let escaped: String = value
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// 502: the app could not be reached.
pub fn bad_gateway() -> Response<Full<Bytes>> {
    json(
        StatusCode::BAD_GATEWAY,
        "upstream_unavailable",
        "the API's application could not be reached",
    )
}

/// 504: the app did not answer in time.
pub fn gateway_timeout() -> Response<Full<Bytes>> {
    json(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        "the API's application did not answer in time",
    )
}

fn json(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(response: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_missing_token_gets_a_challenge_without_error() {
        let response = denial(&Denial::MissingToken, "shop/orders");
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"shop/orders\""
        );
        assert_eq!(body(response).await["code"], "missing_token");
    }

    #[tokio::test]
    async fn an_invalid_token_gets_invalid_token() {
        let response = denial(&Denial::BadSignature, "shop/orders");
        assert_eq!(response.status(), 401);
        let challenge = response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with("Bearer realm=\"shop/orders\", error=\"invalid_token\""),
            "{challenge}"
        );
        assert_eq!(body(response).await["code"], "invalid_token");
    }

    #[tokio::test]
    async fn insufficient_scope_names_the_scopes() {
        let response = denial(&Denial::InsufficientScope("orders:write admin".into()), "r");
        assert_eq!(response.status(), 403);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"r\", error=\"insufficient_scope\", scope=\"orders:write admin\""
        );
    }

    #[tokio::test]
    async fn not_subscribed_is_a_plain_403() {
        let response = denial(&Denial::NotSubscribed, "r");
        assert_eq!(response.status(), 403);
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let json = body(response).await;
        assert_eq!(json["code"], "not_subscribed");
        assert_eq!(json.as_object().unwrap().len(), 2);
    }

    #[test]
    fn realms_are_quoted_safely() {
        assert_eq!(
            challenge(&Denial::MissingToken, "a\"b\\c\nd").unwrap(),
            "Bearer realm=\"a\\\"b\\\\cd\""
        );
    }
}
