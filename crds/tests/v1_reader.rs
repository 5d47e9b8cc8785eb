//! A frozen reader of `outband.dev/sidecar-config/v1`: the document types as the first
//! sidecar that follows the evolution rules read them, kept here unchanged. Every document
//! the current writer produces must stay readable by it — a sidecar of that version may
//! still run while a newer operator writes — so a change that breaks this test needs a new
//! `format` (see `docs/sidecar-config.md`, "How the format evolves"). Never edit the frozen
//! types to make this test pass.

use outband_crds::jwk::{EcCurve, EcJwk, OkpCurve, OkpJwk, PublicJwk, RsaJwk};
use outband_crds::sidecar_config::{
    ApiRef, CONFIG_FORMAT, JwksRefresh, KeyManagerConfig, SidecarConfig, SubscriptionConfig,
};
use outband_crds::{JwsAlgorithm, KeyType, SubscriptionState};

mod frozen {
    //! The v1 document as the reader of the first tolerant release knew it. Reading a
    //! member is the test: not every field is looked at afterwards.
    #![allow(dead_code)]
    use serde::Deserialize;
    use serde::de::{DeserializeOwned, Deserializer};

    pub const SUPPORTED_CRITICAL: &[&str] = &[];

    fn readable<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
        let entries = Vec::<serde_json::Value>::deserialize(d)?;
        Ok(entries
            .into_iter()
            .filter_map(|e| serde_json::from_value(e).ok())
            .collect())
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    pub struct Config {
        pub format: String,
        #[serde(default)]
        pub critical: Vec<String>,
        pub api: Api,
        #[serde(deserialize_with = "readable")]
        pub key_managers: Vec<KeyManager>,
        #[serde(deserialize_with = "readable")]
        pub subscriptions: Vec<Subscription>,
    }

    #[derive(Deserialize, Debug)]
    pub struct Api {
        pub namespace: String,
        pub name: String,
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    pub struct KeyManager {
        pub name: String,
        pub issuer: String,
        pub consumer_key_claim: String,
        pub scopes_claim: String,
        #[serde(deserialize_with = "readable")]
        pub algorithms: Vec<Algorithm>,
        pub clock_skew_seconds: u32,
        #[serde(default)]
        pub audiences: Vec<String>,
        #[serde(default)]
        pub required_type: Option<String>,
        #[serde(deserialize_with = "readable")]
        pub keys: Vec<Key>,
        #[serde(default)]
        pub jwks_refresh: Option<JwksRefresh>,
    }

    #[derive(Deserialize, Debug, PartialEq, Eq)]
    #[allow(clippy::upper_case_acronyms)]
    pub enum Algorithm {
        RS256,
        RS384,
        RS512,
        PS256,
        PS384,
        PS512,
        ES256,
        ES384,
        EdDSA,
    }

    #[derive(Deserialize, Debug)]
    #[serde(tag = "kty")]
    pub enum Key {
        #[serde(rename = "RSA")]
        Rsa {
            kid: Option<String>,
            alg: Option<Algorithm>,
            n: String,
            e: String,
        },
        #[serde(rename = "EC")]
        Ec {
            kid: Option<String>,
            alg: Option<Algorithm>,
            crv: Curve,
            x: String,
            y: String,
        },
        #[serde(rename = "OKP")]
        Okp {
            kid: Option<String>,
            alg: Option<Algorithm>,
            crv: OkpCurve,
            x: String,
        },
    }

    #[derive(Deserialize, Debug)]
    pub enum Curve {
        #[serde(rename = "P-256")]
        P256,
        #[serde(rename = "P-384")]
        P384,
    }

    #[derive(Deserialize, Debug)]
    pub enum OkpCurve {
        Ed25519,
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    pub struct JwksRefresh {
        pub url: String,
        #[serde(default)]
        pub ca_bundle: Option<String>,
        #[serde(default)]
        pub allow_loopback: bool,
        pub timeout_seconds: u32,
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    pub struct Subscription {
        pub key_manager: String,
        pub consumer_key: String,
        pub key_type: KeyType,
        pub application: String,
        pub binding: String,
        #[serde(default)]
        pub tier: Option<String>,
        pub state: State,
    }

    #[derive(Deserialize, Debug, PartialEq, Eq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum KeyType {
        Production,
        Sandbox,
    }

    #[derive(Deserialize, Debug, PartialEq, Eq)]
    pub enum State {
        Active,
        Blocked,
        ProductionOnlyBlocked,
    }
}

/// A config using every member the current writer can write.
fn everything() -> SidecarConfig {
    let key_manager = KeyManagerConfig {
        name: "idp".into(),
        issuer: "https://idp.example/".into(),
        consumer_key_claim: "client_id".into(),
        scopes_claim: "scope".into(),
        algorithms: JwsAlgorithm::ALL.to_vec(),
        clock_skew_seconds: 30,
        audiences: vec!["orders-api".into()],
        required_type: Some("at+jwt".into()),
        keys: vec![
            PublicJwk::Rsa(RsaJwk {
                kid: Some("rsa".into()),
                alg: Some(JwsAlgorithm::RS256),
                n: vec![0xc5; 256].into(),
                e: vec![1, 0, 1].into(),
            }),
            PublicJwk::Ec(EcJwk {
                kid: Some("ec".into()),
                alg: None,
                crv: EcCurve::P384,
                x: vec![1; 48].into(),
                y: vec![2; 48].into(),
            }),
            PublicJwk::Okp(OkpJwk {
                kid: None,
                alg: Some(JwsAlgorithm::EdDSA),
                crv: OkpCurve::Ed25519,
                x: vec![3; 32].into(),
            }),
        ],
        jwks_refresh: Some(JwksRefresh {
            url: "https://idp.example/jwks".into(),
            ca_bundle: Some("-----BEGIN CERTIFICATE-----".into()),
            allow_loopback: true,
            timeout_seconds: 5,
        }),
    };
    let subscription = |client: &str, key_type, state| SubscriptionConfig {
        key_manager: "idp".into(),
        consumer_key: client.into(),
        key_type,
        application: "app".into(),
        binding: "team/app".into(),
        tier: Some("Gold".into()),
        state,
    };
    SidecarConfig {
        format: CONFIG_FORMAT.into(),
        critical: Vec::new(),
        api: ApiRef {
            namespace: "shop".into(),
            name: "orders".into(),
        },
        key_managers: vec![key_manager],
        subscriptions: vec![
            subscription("a", KeyType::Production, SubscriptionState::Active),
            subscription("b", KeyType::Sandbox, SubscriptionState::Blocked),
            subscription(
                "c",
                KeyType::Production,
                SubscriptionState::ProductionOnlyBlocked,
            ),
        ],
    }
}

#[test]
fn the_v1_reader_reads_everything_the_current_writer_writes() {
    let written = serde_json::to_vec(&everything()).unwrap();
    let read: frozen::Config = serde_json::from_slice(&written).unwrap();
    assert_eq!(read.format, CONFIG_FORMAT);
    assert!(
        read.critical
            .iter()
            .all(|name| frozen::SUPPORTED_CRITICAL.contains(&name.as_str())),
        "the writer marks members critical that the v1 reader does not know: {:?}",
        read.critical
    );
    assert_eq!(
        (read.api.namespace.as_str(), read.api.name.as_str()),
        ("shop", "orders")
    );
    let km = &read.key_managers[0];
    assert_eq!(km.algorithms.len(), JwsAlgorithm::ALL.len(), "{km:?}");
    assert_eq!(km.keys.len(), 3, "every key is readable: {km:?}");
    assert!(km.jwks_refresh.is_some());
    assert_eq!(read.subscriptions.len(), 3, "{:?}", read.subscriptions);
    assert_eq!(
        read.subscriptions[2].state,
        frozen::State::ProductionOnlyBlocked
    );
    assert_eq!(read.subscriptions[1].key_type, frozen::KeyType::Sandbox);
}
