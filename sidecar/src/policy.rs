//! Step 7: may this caller call this API on this route? Subscription of the consumer key for
//! this KeyManager, the workload's key type, the subscription state, and the route's scopes.
//! Pure; run before the signature (cheap refusals) and again on every cache hit, so a
//! subscription blocked after a token was cached takes effect at once.

use outband_crds::SubscriptionState;

use crate::config::{CompiledConfig, CompiledKeyManager, Subscription};
use crate::denial::Denial;
use crate::routes::NormalizedPath;
use crate::settings::Settings;
use crate::token::claims::Claims;

/// The request's route, as route rules see it.
#[derive(Clone, Copy, Debug)]
pub struct Route<'a> {
    /// The method.
    pub method: &'a str,
    /// The normalised path.
    pub path: &'a NormalizedPath,
}

/// A permitted call: what the identity headers are made of.
#[derive(Debug)]
pub struct Grant<'a> {
    /// The token's KeyManager.
    pub key_manager: &'a CompiledKeyManager,
    /// The caller's subscription.
    pub subscription: &'a Subscription,
}

/// Decides whether the caller identified by `claims`, from the KeyManager at `key_manager`,
/// may make this call.
pub fn authorize<'a>(
    config: &'a CompiledConfig,
    settings: &Settings,
    key_manager: usize,
    claims: &Claims,
    route: Option<Route<'_>>,
) -> Result<Grant<'a>, Denial> {
    let km = &config.key_managers[key_manager];
    let subscription = config
        .subscription(&km.name, &claims.client_id)
        .ok_or(Denial::NotSubscribed)?;
    if subscription.key_type != settings.key_type {
        return Err(Denial::KeyTypeMismatch {
            found: subscription.key_type.as_str(),
            expected: settings.key_type.as_str(),
        });
    }
    if !subscription.state.allows(subscription.key_type) {
        return Err(Denial::SubscriptionBlocked(match subscription.state {
            SubscriptionState::Active => "Active",
            SubscriptionState::Blocked => "Blocked",
            SubscriptionState::ProductionOnlyBlocked => "ProductionOnlyBlocked",
        }));
    }
    if let Some(route) = route {
        let missing: Vec<&str> = settings
            .routes
            .required_scopes(route.method, route.path)
            .into_iter()
            .filter(|scope| !claims.scopes.iter().any(|granted| granted == scope))
            .collect();
        if !missing.is_empty() {
            return Err(Denial::InsufficientScope(missing.join(" ")));
        }
    }
    Ok(Grant {
        key_manager: km,
        subscription,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{RouteRules, normalize};
    use crate::test_support;
    use outband_crds::KeyType;

    fn claims(client: &str, scopes: &[&str]) -> Claims {
        Claims {
            client_id: client.into(),
            subject: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at: i64::MAX,
        }
    }

    fn decide(
        settings: &Settings,
        client: &str,
        scopes: &[&str],
        route: Option<(&str, &str)>,
    ) -> Result<(), Denial> {
        let config = CompiledConfig::compile(&test_support::config(), "g", settings).unwrap();
        let claims = claims(client, scopes);
        let path = route.map(|(_, p)| normalize(p, true).unwrap());
        let route = route.map(|(method, _)| Route {
            method,
            path: path.as_ref().unwrap(),
        });
        authorize(&config, settings, 0, &claims, route).map(|_| ())
    }

    #[test]
    fn subscription_table() {
        let production = Settings::new(test_support::API);
        let sandbox = Settings {
            key_type: KeyType::Sandbox,
            ..Settings::new(test_support::API)
        };
        let cases: Vec<(&Settings, &str, Result<(), Denial>)> = vec![
            (&production, "client-prod", Ok(())),
            (&production, "unknown-client", Err(Denial::NotSubscribed)),
            (
                &production,
                "client-sandbox",
                Err(Denial::KeyTypeMismatch {
                    found: "SANDBOX",
                    expected: "PRODUCTION",
                }),
            ),
            (
                &production,
                "client-blocked",
                Err(Denial::SubscriptionBlocked("Blocked")),
            ),
            (
                &production,
                "client-prod-only-blocked",
                Err(Denial::SubscriptionBlocked("ProductionOnlyBlocked")),
            ),
            (&sandbox, "client-sandbox", Ok(())),
            (&sandbox, "client-sandbox-pob", Ok(())),
            (
                &sandbox,
                "client-prod",
                Err(Denial::KeyTypeMismatch {
                    found: "PRODUCTION",
                    expected: "SANDBOX",
                }),
            ),
        ];
        for (settings, client, expected) in cases {
            assert_eq!(
                decide(settings, client, &[], None),
                expected,
                "{client} on {:?}",
                settings.key_type
            );
        }
    }

    #[test]
    fn client_ids_are_compared_exactly() {
        let settings = Settings::new(test_support::API);
        for client in [
            "CLIENT-PROD",
            "client-prod ",
            " client-prod",
            "client-prod\u{200b}",
        ] {
            assert_eq!(
                decide(&settings, client, &[], None),
                Err(Denial::NotSubscribed),
                "{client:?}"
            );
        }
    }

    #[test]
    fn route_scopes_are_enforced() {
        let settings = Settings {
            routes: RouteRules::parse("GET /orders/* orders:read; POST /orders orders:write")
                .unwrap(),
            ..Settings::new(test_support::API)
        };
        assert_eq!(
            decide(
                &settings,
                "client-prod",
                &["orders:read"],
                Some(("GET", "/orders/1"))
            ),
            Ok(())
        );
        assert_eq!(
            decide(
                &settings,
                "client-prod",
                &["orders:read"],
                Some(("POST", "/orders"))
            ),
            Err(Denial::InsufficientScope("orders:write".into()))
        );
        assert_eq!(
            decide(&settings, "client-prod", &[], Some(("GET", "//Orders/%31"))),
            Err(Denial::InsufficientScope("orders:read".into()))
        );
        assert_eq!(
            decide(&settings, "client-prod", &[], Some(("GET", "/health"))),
            Ok(())
        );
    }

    #[test]
    fn subscription_is_checked_before_scopes() {
        let settings = Settings {
            routes: RouteRules::parse("* /** anything").unwrap(),
            ..Settings::new(test_support::API)
        };
        assert_eq!(
            decide(&settings, "nobody", &[], Some(("GET", "/"))),
            Err(Denial::NotSubscribed)
        );
    }
}
