//! PEM certificates and public keys ("Certificates: PEM" in the form) converted to JWKs.
//!
//! Accepted blocks: `CERTIFICATE` (X.509), `PUBLIC KEY` (SubjectPublicKeyInfo) and
//! `RSA PUBLIC KEY` (PKCS#1). Each key gets the RFC 7638 thumbprint as its `kid`, so a key
//! keeps its id whichever way it was pasted. The same checks as for a JWKS apply.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use outband_crds::sidecar_config::PublicJwk;
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::RSAPublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::jwks::{check_rsa, strip_leading_zeros};
use super::{KeyRejection, KeySet, RejectedKey, finish};

/// Most PEM blocks read from one source.
pub const MAX_BLOCKS: usize = 100;

/// Why a PEM source as a whole is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// Not PEM, or a block is not valid base64.
    #[error("not valid PEM: {0}")]
    Invalid(String),
    /// No block at all.
    #[error("no PEM block found")]
    Empty,
    /// Too many blocks.
    #[error("{0} PEM blocks; at most {MAX_BLOCKS} are accepted")]
    TooManyBlocks(usize),
}

/// Reads every certificate or public key in `text`.
pub fn parse_pem(text: &str) -> Result<KeySet, PemError> {
    let mut keys = Vec::new();
    let mut rejected = Vec::new();
    let mut blocks = 0;
    for block in Pem::iter_from_buffer(text.as_bytes()) {
        let block = block.map_err(|e| PemError::Invalid(e.to_string()))?;
        blocks += 1;
        if blocks > MAX_BLOCKS {
            return Err(PemError::TooManyBlocks(blocks));
        }
        match convert_block(&block) {
            Ok(jwk) => keys.push(jwk),
            Err(rejection) => rejected.push(RejectedKey {
                kid: None,
                rejection,
            }),
        }
    }
    if blocks == 0 {
        return Err(PemError::Empty);
    }
    Ok(finish(keys, rejected))
}

fn convert_block(block: &Pem) -> Result<PublicJwk, KeyRejection> {
    match block.label.as_str() {
        "CERTIFICATE" => {
            let (_, cert) = X509Certificate::from_der(&block.contents)
                .map_err(|_| KeyRejection::Malformed("the certificate is not valid X.509"))?;
            convert_spki(cert.public_key())
        }
        "PUBLIC KEY" => {
            let (_, spki) = SubjectPublicKeyInfo::from_der(&block.contents)
                .map_err(|_| KeyRejection::Malformed("the public key is not a valid SPKI"))?;
            convert_spki(&spki)
        }
        "RSA PUBLIC KEY" => {
            let (_, rsa) = RSAPublicKey::from_der(&block.contents)
                .map_err(|_| KeyRejection::Malformed("the RSA public key is not valid PKCS#1"))?;
            rsa_jwk(rsa.modulus, rsa.exponent)
        }
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
            Err(KeyRejection::PrivateMaterial("a PEM private key block"))
        }
        _ => Err(KeyRejection::Malformed(
            "unsupported PEM block (CERTIFICATE, PUBLIC KEY or RSA PUBLIC KEY expected)",
        )),
    }
}

fn convert_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<PublicJwk, KeyRejection> {
    let algorithm = &spki.algorithm.algorithm;
    let key = spki.subject_public_key.data.as_ref();
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        let (_, rsa) = RSAPublicKey::from_der(key)
            .map_err(|_| KeyRejection::Malformed("the RSA public key is not valid PKCS#1"))?;
        rsa_jwk(rsa.modulus, rsa.exponent)
    } else if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or(KeyRejection::Malformed("the EC key names no curve"))?;
        let (crv, size) = if curve == OID_EC_P256 {
            ("P-256", 32)
        } else if curve == OID_NIST_EC_P384 {
            ("P-384", 48)
        } else if curve == OID_NIST_EC_P521 {
            return Err(KeyRejection::UnsupportedCurve("P-521".into()));
        } else {
            return Err(KeyRejection::UnsupportedCurve(curve.to_id_string()));
        };
        // Uncompressed point: 0x04 || x || y.
        if key.len() != 1 + 2 * size || key[0] != 0x04 {
            return Err(KeyRejection::Malformed(
                "the EC point is not an uncompressed point of the curve",
            ));
        }
        let (x, y) = key[1..].split_at(size);
        Ok(with_thumbprint(PublicJwk {
            kty: "EC".into(),
            kid: None,
            alg: None,
            n: None,
            e: None,
            crv: Some(crv.into()),
            x: Some(URL_SAFE_NO_PAD.encode(x)),
            y: Some(URL_SAFE_NO_PAD.encode(y)),
        }))
    } else if *algorithm == OID_SIG_ED25519 {
        if key.len() != 32 {
            return Err(KeyRejection::BadCoordinate("x"));
        }
        Ok(with_thumbprint(PublicJwk {
            kty: "OKP".into(),
            kid: None,
            alg: None,
            n: None,
            e: None,
            crv: Some("Ed25519".into()),
            x: Some(URL_SAFE_NO_PAD.encode(key)),
            y: None,
        }))
    } else {
        Err(KeyRejection::UnsupportedKeyType(algorithm.to_id_string()))
    }
}

fn rsa_jwk(modulus: &[u8], exponent: &[u8]) -> Result<PublicJwk, KeyRejection> {
    check_rsa(modulus, exponent)?;
    Ok(with_thumbprint(PublicJwk {
        kty: "RSA".into(),
        kid: None,
        alg: None,
        n: Some(URL_SAFE_NO_PAD.encode(strip_leading_zeros(modulus))),
        e: Some(URL_SAFE_NO_PAD.encode(strip_leading_zeros(exponent))),
        crv: None,
        x: None,
        y: None,
    }))
}

/// Sets `kid` to the RFC 7638 JWK thumbprint (SHA-256, base64url).
fn with_thumbprint(mut jwk: PublicJwk) -> PublicJwk {
    jwk.kid = Some(thumbprint(&jwk));
    jwk
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
pub fn thumbprint(jwk: &PublicJwk) -> String {
    let field = |v: &Option<String>| v.clone().unwrap_or_default();
    let canonical = match jwk.kty.as_str() {
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            field(&jwk.e),
            field(&jwk.n)
        ),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            field(&jwk.crv),
            field(&jwk.x),
            field(&jwk.y)
        ),
        _ => format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
            field(&jwk.crv),
            jwk.kty,
            field(&jwk.x)
        ),
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
        PKCS_RSA_SHA256,
    };

    fn cert_pem(alg: &'static rcgen::SignatureAlgorithm) -> (String, KeyPair) {
        let key = KeyPair::generate_for(alg).unwrap();
        let cert = CertificateParams::new(vec!["idp.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key)
    }

    #[test]
    fn converts_certificates_of_every_supported_key_type() {
        for (alg, kty, crv) in [
            (&PKCS_ECDSA_P256_SHA256, "EC", Some("P-256")),
            (&PKCS_ECDSA_P384_SHA384, "EC", Some("P-384")),
            (&PKCS_ED25519, "OKP", Some("Ed25519")),
            (&PKCS_RSA_SHA256, "RSA", None),
        ] {
            let (pem, _) = cert_pem(alg);
            let set = parse_pem(&pem).unwrap();
            assert!(set.rejected.is_empty(), "{:?}", set.rejected);
            assert_eq!(set.keys.len(), 1);
            assert_eq!(set.keys[0].kty, kty);
            assert_eq!(set.keys[0].crv.as_deref(), crv);
            assert!(set.keys[0].kid.is_some());
        }
    }

    #[test]
    fn a_public_key_block_gives_the_same_key_and_kid_as_its_certificate() {
        let (cert, key) = cert_pem(&PKCS_ECDSA_P256_SHA256);
        let from_cert = parse_pem(&cert).unwrap();
        let from_key = parse_pem(&key.public_key_pem()).unwrap();
        assert_eq!(from_cert.keys, from_key.keys);
    }

    #[test]
    fn reads_several_blocks() {
        let (a, _) = cert_pem(&PKCS_ECDSA_P256_SHA256);
        let (b, _) = cert_pem(&PKCS_ED25519);
        let set = parse_pem(&format!("{a}\n{b}")).unwrap();
        assert_eq!(set.keys.len(), 2);
    }

    #[test]
    fn refuses_private_keys() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let set = parse_pem(&key.serialize_pem()).unwrap();
        assert!(set.keys.is_empty());
        assert!(matches!(
            set.rejected[0].rejection,
            KeyRejection::PrivateMaterial(_)
        ));
    }

    #[test]
    fn text_without_pem_is_an_error() {
        assert_eq!(parse_pem("hello"), Err(PemError::Empty));
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let jwk = PublicJwk {
            kty: "RSA".into(),
            kid: None,
            alg: None,
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            crv: None,
            x: None,
            y: None,
        };
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
