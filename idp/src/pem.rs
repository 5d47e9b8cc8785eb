//! PEM certificates and public keys ("Certificates: PEM" in the form) converted to JWKs.
//!
//! Accepted blocks: `CERTIFICATE` (X.509), `PUBLIC KEY` (SubjectPublicKeyInfo) and
//! `RSA PUBLIC KEY` (PKCS#1). Each key gets the RFC 7638 thumbprint as its `kid`, so a key
//! keeps its id whichever way it was pasted. The same checks as for a JWKS apply
//! ([`jwk::check`]).

use outband_crds::jwk::{EcCurve, EcJwk, OkpCurve, OkpJwk, PublicJwk, RsaJwk};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::RSAPublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::jwk::{self, KeyRejection, strip_leading_zeros};
use crate::jwks::{KeySet, RejectedKey, finish};

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
pub fn parse(text: &str) -> Result<KeySet, PemError> {
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
        let crv = if curve == OID_EC_P256 {
            EcCurve::P256
        } else if curve == OID_NIST_EC_P384 {
            EcCurve::P384
        } else if curve == OID_NIST_EC_P521 {
            return Err(KeyRejection::UnsupportedCurve("P-521".into()));
        } else {
            return Err(KeyRejection::UnsupportedCurve(curve.to_id_string()));
        };
        // Uncompressed point: 0x04 || x || y.
        let size = crv.coordinate_len();
        if key.len() != 1 + 2 * size || key[0] != 0x04 {
            return Err(KeyRejection::Malformed(
                "the EC point is not an uncompressed point of the curve",
            ));
        }
        let (x, y) = key[1..].split_at(size);
        checked(PublicJwk::Ec(EcJwk {
            kid: None,
            alg: None,
            crv,
            x: x.into(),
            y: y.into(),
        }))
    } else if *algorithm == OID_SIG_ED25519 {
        if key.len() != 32 {
            return Err(KeyRejection::BadCoordinate("x"));
        }
        checked(PublicJwk::Okp(OkpJwk {
            kid: None,
            alg: None,
            crv: OkpCurve::Ed25519,
            x: key.into(),
        }))
    } else {
        Err(KeyRejection::UnsupportedKeyType(algorithm.to_id_string()))
    }
}

fn rsa_jwk(modulus: &[u8], exponent: &[u8]) -> Result<PublicJwk, KeyRejection> {
    checked(PublicJwk::Rsa(RsaJwk {
        kid: None,
        alg: None,
        n: strip_leading_zeros(modulus).into(),
        e: strip_leading_zeros(exponent).into(),
    }))
}

/// Checks the key with [`jwk::check`] and sets its `kid` to the RFC 7638 thumbprint.
fn checked(mut key: PublicJwk) -> Result<PublicJwk, KeyRejection> {
    jwk::check(&key)?;
    key.set_kid(Some(jwk::thumbprint(&key)));
    Ok(key)
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
        for (alg, kty, label) in [
            (&PKCS_ECDSA_P256_SHA256, "EC", "EC-P-256"),
            (&PKCS_ECDSA_P384_SHA384, "EC", "EC-P-384"),
            (&PKCS_ED25519, "OKP", "OKP-Ed25519"),
            (&PKCS_RSA_SHA256, "RSA", "RSA-2048"),
        ] {
            let (pem, _) = cert_pem(alg);
            let set = parse(&pem).unwrap();
            assert!(set.rejected.is_empty(), "{:?}", set.rejected);
            assert_eq!(set.keys.len(), 1);
            assert_eq!(set.keys[0].kty(), kty);
            assert_eq!(crate::jwk::KeyKind::of(&set.keys[0]).label(), label);
            assert!(set.keys[0].kid().is_some());
        }
    }

    #[test]
    fn a_public_key_block_gives_the_same_key_and_kid_as_its_certificate() {
        let (cert, key) = cert_pem(&PKCS_ECDSA_P256_SHA256);
        let from_cert = parse(&cert).unwrap();
        let from_key = parse(&key.public_key_pem()).unwrap();
        assert_eq!(from_cert.keys, from_key.keys);
    }

    #[test]
    fn reads_several_blocks() {
        let (a, _) = cert_pem(&PKCS_ECDSA_P256_SHA256);
        let (b, _) = cert_pem(&PKCS_ED25519);
        let set = parse(&format!("{a}\n{b}")).unwrap();
        assert_eq!(set.keys.len(), 2);
    }

    #[test]
    fn refuses_private_keys() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let set = parse(&key.serialize_pem()).unwrap();
        assert!(set.keys.is_empty());
        assert!(matches!(
            set.rejected[0].rejection,
            KeyRejection::PrivateMaterial(_)
        ));
    }

    #[test]
    fn text_without_pem_is_an_error() {
        assert_eq!(parse("hello"), Err(PemError::Empty));
    }
}
