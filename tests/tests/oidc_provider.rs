//! The test OpenID provider (tests/src/oidc.rs) against its contract: discovery, RFC 9068
//! JWT access tokens from client_credentials that verify against the published JWKS, key
//! rotation with and without the old key, client errors, runtime clients, and a restart
//! on the same port with the same keys.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use outband_tests::oidc::{
    DEFAULT_AUDIENCE, DEFAULT_TOKEN_TTL_SECS, OidcClient, OidcOptions, OidcProvider,
    decode_unverified,
};
use serde_json::Value;

const ORDERS: &str = "orders-app";
const ORDERS_SECRET: &str = "orders-secret";
const EC_APP: &str = "ec-app";
const EC_SECRET: &str = "ec-secret";

fn options() -> OidcOptions {
    OidcOptions {
        clients: vec![
            OidcClient::new(ORDERS, ORDERS_SECRET, &["orders:read", "orders:write"]),
            OidcClient::new(EC_APP, EC_SECRET, &["orders:read"]).with_token_ttl(60),
        ],
        ec_key: true,
        es256_clients: vec![EC_APP.to_string()],
        ..OidcOptions::default()
    }
}

/// Verifies `token`'s signature, `iss`, `aud` and `exp` against the provider's JWKS.
async fn verify(provider: &OidcProvider, token: &str, audience: &str) -> anyhow::Result<Value> {
    let jwks: JwkSet = serde_json::from_value(provider.jwks().await?)?;
    let header = jsonwebtoken::decode_header(token)?;
    let kid = header
        .kid
        .ok_or_else(|| anyhow::anyhow!("token without kid"))?;
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| anyhow::anyhow!("kid {kid} not in the JWKS"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[provider.issuer()]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)?;
    Ok(data.claims)
}

fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("JWKS has keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("every key has a kid").to_string())
        .collect()
}

fn kid_of(token: &str) -> String {
    let (header, _) = decode_unverified(token).expect("token decodes");
    header["kid"].as_str().expect("kid").to_string()
}

#[tokio::test]
async fn discovery_and_jwt_access_tokens() -> anyhow::Result<()> {
    let provider = OidcProvider::start(options()).await?;
    let issuer = provider.issuer().to_string();
    assert_eq!(issuer, format!("http://127.0.0.1:{}", provider.port()));

    let discovery = provider.discovery().await?;
    assert_eq!(discovery["issuer"], issuer);
    assert_eq!(discovery["token_endpoint"], provider.token_endpoint());
    assert_eq!(discovery["jwks_uri"], provider.jwks_url());
    let grants = discovery["grant_types_supported"]
        .as_array()
        .expect("grants");
    assert!(
        grants.iter().any(|g| g == "client_credentials"),
        "{grants:?}"
    );

    let jwks = provider.jwks().await?;
    for key in jwks["keys"].as_array().expect("keys") {
        assert!(key.get("d").is_none(), "private key material published");
        assert_eq!(key["use"], "sig");
    }
    assert_eq!(jwks_kids(&jwks).len(), 2, "one RSA and one EC key");

    // RS256 token with the default resource.
    let token = provider
        .client_credentials_token(ORDERS, ORDERS_SECRET, Some("orders:read"))
        .await?;
    let (header, claims) = decode_unverified(&token)?;
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], provider.keys().await?.rs256_kid.as_str());
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["aud"], DEFAULT_AUDIENCE);
    assert_eq!(claims["client_id"], ORDERS);
    assert_eq!(claims["sub"], ORDERS);
    assert_eq!(claims["scope"], "orders:read");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let iat = claims["iat"].as_u64().expect("iat");
    assert_eq!(claims["exp"].as_u64(), Some(iat + DEFAULT_TOKEN_TTL_SECS));
    let verified = verify(&provider, &token, DEFAULT_AUDIENCE).await?;
    assert_eq!(verified["client_id"], ORDERS);

    // Both scopes, an explicit resource indicator becomes the audience.
    let api = "https://orders.example/api";
    let token = provider
        .client_credentials_token_for(
            ORDERS,
            ORDERS_SECRET,
            Some("orders:read orders:write"),
            Some(api),
        )
        .await?;
    let claims = verify(&provider, &token, api).await?;
    assert_eq!(claims["aud"], api);
    assert_eq!(claims["scope"], "orders:read orders:write");

    // No scope requested: still a JWT for the default audience, without a scope claim.
    let token = provider
        .client_credentials_token(ORDERS, ORDERS_SECRET, None)
        .await?;
    let claims = verify(&provider, &token, DEFAULT_AUDIENCE).await?;
    assert!(claims.get("scope").is_none(), "{claims}");

    // ES256 client with its own lifetime.
    let token = provider
        .client_credentials_token(EC_APP, EC_SECRET, Some("orders:read"))
        .await?;
    let (header, claims) = decode_unverified(&token)?;
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(
        claims["exp"].as_u64(),
        Some(claims["iat"].as_u64().expect("iat") + 60)
    );
    assert_eq!(jsonwebtoken::decode_header(&token)?.alg, Algorithm::ES256);
    verify(&provider, &token, DEFAULT_AUDIENCE).await?;
    Ok(())
}

#[tokio::test]
async fn client_errors_are_refused() -> anyhow::Result<()> {
    let provider = OidcProvider::start(options()).await?;

    let err = provider
        .client_credentials_token(ORDERS, "wrong-secret", Some("orders:read"))
        .await
        .expect_err("a wrong secret gets no token");
    assert!(format!("{err:#}").contains("invalid_client"), "{err:#}");

    let err = provider
        .client_credentials_token("nobody", "x", None)
        .await
        .expect_err("an unknown client gets no token");
    assert!(format!("{err:#}").contains("invalid_client"), "{err:#}");

    // A scope another client has, but this one may not request.
    let response = provider
        .token_request(
            EC_APP,
            EC_SECRET,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "orders:write"),
            ],
        )
        .await?;
    assert_eq!(response.status, 400);
    assert_eq!(response.body["error"], "invalid_scope");

    // A client added at runtime works at once, and is gone once removed.
    let late = OidcClient::new("late-app", "late-secret", &["reports:read"]);
    provider.add_client(&late).await?;
    let token = provider
        .client_credentials_token("late-app", "late-secret", Some("reports:read"))
        .await?;
    assert_eq!(decode_unverified(&token)?.1["client_id"], "late-app");
    provider.remove_client("late-app").await?;
    assert!(
        provider
            .client_credentials_token("late-app", "late-secret", None)
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn key_rotation_keeps_or_drops_the_old_key() -> anyhow::Result<()> {
    let provider = OidcProvider::start(options()).await?;
    let before = provider.keys().await?;
    let old_token = provider
        .client_credentials_token(ORDERS, ORDERS_SECRET, Some("orders:read"))
        .await?;
    assert_eq!(kid_of(&old_token), before.rs256_kid);

    // Rotation keeping the old keys: new kids sign, old tokens still verify.
    provider.rotate_keys(true).await?;
    let rotated = provider.keys().await?;
    assert_ne!(rotated.rs256_kid, before.rs256_kid);
    assert_ne!(rotated.es256_kid, before.es256_kid);
    let new_token = provider
        .client_credentials_token(ORDERS, ORDERS_SECRET, Some("orders:read"))
        .await?;
    assert_eq!(kid_of(&new_token), rotated.rs256_kid);
    let ec_token = provider
        .client_credentials_token(EC_APP, EC_SECRET, None)
        .await?;
    assert_eq!(Some(kid_of(&ec_token)), rotated.es256_kid);
    let kids = jwks_kids(&provider.jwks().await?);
    assert_eq!(kids.len(), 4, "{kids:?}");
    assert!(kids.contains(&before.rs256_kid) && kids.contains(&rotated.rs256_kid));
    verify(&provider, &old_token, DEFAULT_AUDIENCE).await?;
    verify(&provider, &new_token, DEFAULT_AUDIENCE).await?;

    // Rotation dropping old keys: only the newest keys remain, old tokens no longer verify.
    provider.rotate_keys(false).await?;
    let latest = provider.keys().await?;
    let kids = jwks_kids(&provider.jwks().await?);
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(kids.contains(&latest.rs256_kid));
    assert!(!kids.contains(&before.rs256_kid) && !kids.contains(&rotated.rs256_kid));
    let err = verify(&provider, &new_token, DEFAULT_AUDIENCE)
        .await
        .expect_err("the dropped kid is gone");
    assert!(err.to_string().contains("not in the JWKS"), "{err:#}");
    let token = provider
        .client_credentials_token(ORDERS, ORDERS_SECRET, Some("orders:read"))
        .await?;
    assert_eq!(kid_of(&token), latest.rs256_kid);
    verify(&provider, &token, DEFAULT_AUDIENCE).await?;

    // Rotation with a retention: the old key leaves the JWKS by itself.
    provider.rotate_keys_retaining(1).await?;
    let rotated_at = std::time::Instant::now();
    assert_eq!(jwks_kids(&provider.jwks().await?).len(), 4);
    let published = &provider;
    let kids = outband_tests::control_plane::wait_for(
        std::time::Duration::from_secs(30),
        "the retained keys to leave the JWKS",
        || async move {
            let kids = jwks_kids(&published.jwks().await?);
            Ok((kids.len() == 2).then_some(kids))
        },
    )
    .await?;
    assert!(
        rotated_at.elapsed() >= std::time::Duration::from_secs(1),
        "kept for the retention"
    );
    assert!(!kids.contains(&latest.rs256_kid));
    Ok(())
}

#[tokio::test]
async fn restart_on_the_same_port_with_the_same_keys() -> anyhow::Result<()> {
    let mut provider = OidcProvider::start(OidcOptions::default()).await?;
    let issuer = provider.issuer().to_string();
    let keys = provider.keys().await?;
    provider
        .add_client(&OidcClient::new("late-app", "late-secret", &[]))
        .await?;

    provider.stop().await;
    assert!(!provider.is_running());
    assert!(
        provider
            .client_credentials_token("test-client", "test-secret", None)
            .await
            .is_err(),
        "a stopped provider answers nothing"
    );

    provider.restart().await?;
    assert!(provider.is_running());
    assert_eq!(provider.issuer(), issuer);
    assert_eq!(provider.keys().await?, keys);
    let token = provider
        .client_credentials_token("test-client", "test-secret", Some("api:read"))
        .await?;
    assert_eq!(kid_of(&token), keys.rs256_kid);
    provider
        .client_credentials_token("late-app", "late-secret", None)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_panicking_test_leaves_no_provider_behind() -> anyhow::Result<()> {
    let task = tokio::spawn(async {
        let provider = OidcProvider::start(OidcOptions::default())
            .await
            .expect("provider starts");
        std::panic::panic_any(provider.port());
    });
    let port = *task
        .await
        .expect_err("the task panics")
        .into_panic()
        .downcast::<u16>()
        .expect("the panic carries the port");
    // Dropping the provider while unwinding killed node: the port soon refuses connections.
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("the provider on port {port} outlived the panic")
}
