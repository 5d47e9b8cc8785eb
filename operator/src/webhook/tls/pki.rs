//! Certificate work without I/O: issue the webhook's CA and serving certificate, and decide
//! when either must be renewed. The clock is a parameter, so rotation is testable.
//!
//! On CA renewal the bundle keeps the previous CA (until it expires), so replicas that still
//! serve a certificate from the old CA stay trusted while they catch up.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::TlsError;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How long certificates live and how early they are renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// Validity of the CA.
    pub ca: Duration,
    /// Renew the CA when less than this is left.
    pub ca_renew_before: Duration,
    /// Validity of the serving certificate.
    pub serving: Duration,
    /// Renew the serving certificate when less than this is left.
    pub serving_renew_before: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            ca: 5 * 365 * DAY,
            ca_renew_before: 365 * DAY,
            serving: 90 * DAY,
            serving_renew_before: 30 * DAY,
        }
    }
}

/// Everything the webhook's TLS needs, as PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    /// The CA certificate.
    pub ca_cert: String,
    /// The CA key.
    pub ca_key: String,
    /// The serving certificate.
    pub tls_cert: String,
    /// The serving key.
    pub tls_key: String,
    /// What the API server must trust: the CA, plus the previous CA during a rotation.
    pub ca_bundle: String,
    /// The serving certificate's subject alternative names.
    pub sans: Vec<String>,
}

/// What to do with the current material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing: everything is valid for long enough.
    Keep,
    /// Issue a new serving certificate from the same CA (also when the names changed).
    RenewServing,
    /// Issue a new CA and serving certificate, keeping the old CA in the bundle.
    RenewCa,
    /// Start from scratch (no material, or unreadable material).
    Create,
}

/// Decides what to do with `current` at `now`.
pub fn plan(
    current: Option<&Material>,
    sans: &[String],
    now: SystemTime,
    life: &Lifetimes,
) -> Plan {
    let Some(current) = current else {
        return Plan::Create;
    };
    let (Ok(ca_end), Ok(tls_end)) = (not_after(&current.ca_cert), not_after(&current.tls_cert))
    else {
        return Plan::Create;
    };
    if ca_end <= now + life.ca_renew_before {
        Plan::RenewCa
    } else if tls_end <= now + life.serving_renew_before || current.sans != sans {
        Plan::RenewServing
    } else {
        Plan::Keep
    }
}

/// Carries out `plan`; `None` for [`Plan::Keep`].
pub fn execute(
    plan: Plan,
    current: Option<&Material>,
    sans: &[String],
    now: SystemTime,
    life: &Lifetimes,
) -> Result<Option<Material>, TlsError> {
    let material = match (plan, current) {
        (Plan::Keep, _) => return Ok(None),
        (Plan::RenewServing, Some(current)) => {
            let (tls_cert, tls_key) =
                issue_serving(&current.ca_cert, &current.ca_key, sans, now, life)?;
            Material {
                tls_cert,
                tls_key,
                sans: sans.to_vec(),
                ..current.clone()
            }
        }
        (Plan::RenewCa, Some(current)) => {
            let mut material = create(sans, now, life)?;
            if not_after(&current.ca_cert).is_ok_and(|end| end > now) {
                material.ca_bundle = format!("{}{}", material.ca_cert, current.ca_cert);
            }
            material
        }
        _ => create(sans, now, life)?,
    };
    Ok(Some(material))
}

/// A new CA and a serving certificate signed by it.
pub fn create(sans: &[String], now: SystemTime, life: &Lifetimes) -> Result<Material, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "outband-webhook-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - DAY).into();
    params.not_after = (now + life.ca).into();
    let ca_cert = params.self_signed(&ca_key)?.pem();
    let ca_key = ca_key.serialize_pem();
    let (tls_cert, tls_key) = issue_serving(&ca_cert, &ca_key, sans, now, life)?;
    Ok(Material {
        ca_bundle: ca_cert.clone(),
        ca_cert,
        ca_key,
        tls_cert,
        tls_key,
        sans: sans.to_vec(),
    })
}

fn issue_serving(
    ca_cert: &str,
    ca_key: &str,
    sans: &[String],
    now: SystemTime,
    life: &Lifetimes,
) -> Result<(String, String), TlsError> {
    let ca_key = KeyPair::from_pem(ca_key)?;
    let ca_end = not_after(ca_cert)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(sans.to_vec())?;
    params.distinguished_name.push(
        DnType::CommonName,
        sans.first().map_or("outband-webhook", String::as_str),
    );
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = (now - DAY).into();
    params.not_after = (now + life.serving).min(ca_end).into();
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The end of validity of the first certificate in `pem`.
pub fn not_after(pem: &str) -> Result<SystemTime, TlsError> {
    let parse = |detail: String| TlsError::Parse {
        what: "a certificate",
        detail,
    };
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| parse(e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| parse(e.to_string()))?;
    let seconds = cert.validity().not_after.timestamp();
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sans() -> Vec<String> {
        vec!["outband-webhook.outband.svc".into(), "127.0.0.1".into()]
    }

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + 1_900_000_000 * Duration::from_secs(1)
    }

    #[test]
    fn nothing_yet_means_create() {
        assert_eq!(
            plan(None, &sans(), t0(), &Lifetimes::default()),
            Plan::Create
        );
    }

    #[test]
    fn fresh_material_is_kept() {
        let life = Lifetimes::default();
        let material = create(&sans(), t0(), &life).unwrap();
        assert_eq!(
            plan(Some(&material), &sans(), t0() + 59 * DAY, &life),
            Plan::Keep
        );
    }

    #[test]
    fn the_serving_certificate_is_renewed_before_it_expires() {
        let life = Lifetimes::default();
        let material = create(&sans(), t0(), &life).unwrap();
        let later = t0() + 61 * DAY;
        assert_eq!(
            plan(Some(&material), &sans(), later, &life),
            Plan::RenewServing
        );
        let renewed = execute(Plan::RenewServing, Some(&material), &sans(), later, &life)
            .unwrap()
            .unwrap();
        assert_eq!(renewed.ca_cert, material.ca_cert);
        assert_ne!(renewed.tls_cert, material.tls_cert);
        assert_eq!(plan(Some(&renewed), &sans(), later, &life), Plan::Keep);
    }

    #[test]
    fn changed_names_renew_the_serving_certificate() {
        let life = Lifetimes::default();
        let material = create(&sans(), t0(), &life).unwrap();
        let other = vec!["other.outband.svc".to_string()];
        assert_eq!(
            plan(Some(&material), &other, t0(), &life),
            Plan::RenewServing
        );
    }

    #[test]
    fn the_ca_is_renewed_before_it_expires_and_the_old_one_stays_trusted() {
        let life = Lifetimes::default();
        let material = create(&sans(), t0(), &life).unwrap();
        let later = t0() + 4 * 365 * DAY + DAY;
        assert_eq!(plan(Some(&material), &sans(), later, &life), Plan::RenewCa);
        let renewed = execute(Plan::RenewCa, Some(&material), &sans(), later, &life)
            .unwrap()
            .unwrap();
        assert_ne!(renewed.ca_cert, material.ca_cert);
        assert!(renewed.ca_bundle.starts_with(&renewed.ca_cert));
        assert!(renewed.ca_bundle.ends_with(&material.ca_cert));
    }

    #[test]
    fn unreadable_material_is_recreated() {
        let life = Lifetimes::default();
        let mut material = create(&sans(), t0(), &life).unwrap();
        material.tls_cert = "garbage".into();
        assert_eq!(plan(Some(&material), &sans(), t0(), &life), Plan::Create);
    }

    #[test]
    fn the_serving_certificate_never_outlives_its_ca() {
        let life = Lifetimes {
            ca: 10 * DAY,
            ca_renew_before: DAY,
            ..Lifetimes::default()
        };
        let material = create(&sans(), t0(), &life).unwrap();
        assert!(not_after(&material.tls_cert).unwrap() <= not_after(&material.ca_cert).unwrap());
    }
}
