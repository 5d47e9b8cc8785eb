//! `outband-sidecar explain`: decode a token and show, step by step, the decision this API's
//! sidecar would make and why — the seed's "decode a sample JWT to inspect the claims", made a
//! tool. Offline: it reads the config directory and never fetches anything.

use std::io::{Read, Write};

use anyhow::{Context, anyhow};
use serde_json::{Map, Value};

use crate::cache::{short_hash, token_hash};
use crate::cli::ExplainArgs;
use crate::config::CompiledConfig;
use crate::config::source;
use crate::decision::{self, Decision, FetchedKeys};
use crate::denial::Denial;
use crate::policy::Route;
use crate::routes::normalize;
use crate::settings::Settings;
use crate::token::decode_unverified;

/// Runs `explain`, writing the report to `out`. Returns whether the request would be allowed.
pub fn explain(args: &ExplainArgs, out: &mut dyn Write) -> anyhow::Result<bool> {
    let settings = Settings::from_args(&args.decision).map_err(|err| anyhow!(err))?;
    let token = if args.token == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the token from standard input")?;
        text.trim().to_string()
    } else {
        args.token.trim().to_string()
    };
    let loaded = source::load(&args.config)
        .with_context(|| format!("cannot read a config from {}", args.config.display()))?;
    let config =
        CompiledConfig::compile(&loaded.config, loaded.manifest.sha256.clone(), &settings)?;
    let now = args.now.unwrap_or_else(decision::now);

    writeln!(
        out,
        "Config   {} (generation {:.12}…, read from {})",
        config.api,
        config.generation,
        loaded.from.display()
    )?;
    writeln!(
        out,
        "         {} subscriptions in effect; this workload accepts {} keys",
        config.subscription_count(),
        settings.key_type.as_str()
    )?;
    for km in &config.key_managers {
        let algorithms: Vec<&str> = km.algorithms.iter().map(|a| a.as_str()).collect();
        writeln!(
            out,
            "KeyMgr   {} issuer={:?} algorithms={} client-claim={} scopes-claim={}",
            km.name,
            km.issuer,
            algorithms.join(","),
            km.claims.consumer_key_claim,
            km.claims.scopes_claim
        )?;
        for key in km.keys.keys() {
            let pinned = key
                .pinned_alg
                .map_or("any of its family".to_string(), |a| a.as_str().to_string());
            match &key.kid {
                Some(kid) => writeln!(
                    out,
                    "         key kid={kid:?} {} alg={pinned}",
                    key.kind.label()
                )?,
                None if km.keys_are_pinned() => writeln!(
                    out,
                    "         key (no kid: pinned, tried whatever the token's kid) {} alg={pinned}",
                    key.kind.label()
                )?,
                None => writeln!(
                    out,
                    "         key (no kid) {} alg={pinned}",
                    key.kind.label()
                )?,
            }
        }
    }
    for warning in &config.warnings {
        writeln!(out, "Warning  {warning}")?;
    }
    writeln!(
        out,
        "Token    sha256 {}…, {} bytes",
        short_hash(&token_hash(&token)),
        token.len()
    )?;

    match decode_unverified(&token, settings.limits) {
        Ok((header, claims)) => {
            writeln!(
                out,
                "Header   {}",
                serde_json::to_string_pretty(&Value::Object(header))?.replace('\n', "\n         ")
            )?;
            writeln!(
                out,
                "Claims   {}",
                serde_json::to_string_pretty(&Value::Object(claims.clone()))?
                    .replace('\n', "\n         ")
            )?;
            describe_times(&claims, now, out)?;
        }
        Err(denial) => writeln!(out, "Decode   cannot decode the token: {denial}")?,
    }

    let path = if settings.routes.is_empty() {
        None
    } else {
        match normalize(&args.path, true) {
            Ok(path) => Some(path),
            Err(denial) => return report(&Err(denial), false, out),
        }
    };
    let route = path.as_ref().map(|path| Route {
        method: &args.method,
        path,
    });
    if let (Some(route), false) = (route, settings.routes.is_empty()) {
        let required = settings.routes.required_scopes(route.method, route.path);
        writeln!(
            out,
            "Route    {} {} (normalised {}) requires {}",
            args.method,
            args.path,
            route.path.forward,
            if required.is_empty() {
                "no scope".to_string()
            } else {
                required.join(" ")
            }
        )?;
    }
    // Offline: the keys the running sidecar would fetch for an unknown `kid` are not
    // fetched here (`NeedKeys` is reported as `unknown_kid`, with a note).
    let decided = decision::decide(
        &config,
        &FetchedKeys::default(),
        &settings,
        &token,
        route,
        now,
        None,
    );
    let would_fetch = matches!(decided, Decision::NeedKeys { .. });
    let result = decided.into_result().map(|allowed| {
        let mut headers = http::HeaderMap::new();
        allowed.identity.apply(&mut headers);
        headers
    });
    report(&result, would_fetch, out)
}

fn report(
    result: &Result<http::HeaderMap, Denial>,
    would_fetch: bool,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    match result {
        Ok(headers) => {
            writeln!(out, "Decision ALLOW: forwarded to the app with")?;
            let mut names: Vec<_> = headers.iter().collect();
            names.sort_by_key(|(name, _)| name.as_str());
            for (name, value) in names {
                writeln!(
                    out,
                    "         {name}: {}",
                    value.to_str().unwrap_or("<binary>")
                )?;
            }
            Ok(true)
        }
        Err(denial) => {
            let code = denial.code();
            writeln!(
                out,
                "Decision DENY {} {}: {denial}",
                code.status().as_u16(),
                code.as_str()
            )?;
            writeln!(
                out,
                "         reason {} (the label of outband_sidecar_decisions_total)",
                denial.reason()
            )?;
            if would_fetch {
                writeln!(
                    out,
                    "         the running sidecar would first fetch the KeyManager's JWKS once (rate-limited); explain works offline"
                )?;
            }
            Ok(false)
        }
    }
}

fn describe_times(
    claims: &Map<String, Value>,
    now: i64,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for claim in ["iat", "nbf", "exp"] {
        if let Some(at) = claims.get(claim).and_then(Value::as_f64) {
            let delta = at as i64 - now;
            let when = if delta >= 0 {
                format!("in {delta}s")
            } else {
                format!("{}s ago", -delta)
            };
            writeln!(out, "Time     {claim} {when}")?;
        }
    }
    Ok(())
}
