//! Syntax check of `outband.dev/route-scopes` at admission, so a typo refuses the pod instead
//! of starting a sidecar that cannot load its rules.
//!
//! Grammar (the sidecar owns the semantics): rules separated by `;`, each
//! `METHOD PATH SCOPE [SCOPE…]`, where METHOD is an HTTP method or `*`, PATH an absolute path
//! template (`*` matches one segment, a trailing `/**` the rest) and SCOPE an RFC 6749
//! scope-token. Paths that could smuggle around a rule (`//`, `.`/`..` segments, `%`, `?`,
//! `#`) are refused.

const METHODS: &[&str] = &[
    "*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];
/// Longest accepted annotation value.
pub const MAX_LEN: usize = 16 * 1024;

/// Checks `value`; returns it normalised (single spaces, rules joined by `; `).
pub fn check(value: &str) -> Result<String, String> {
    if value.len() > MAX_LEN {
        return Err(format!("is {} bytes long; at most {MAX_LEN} are accepted", value.len()));
    }
    let mut rules = Vec::new();
    for (index, rule) in value.split(';').enumerate() {
        let words: Vec<&str> = rule.split_whitespace().collect();
        if words.is_empty() {
            if rule.trim().is_empty() && index > 0 && value.trim_end().ends_with(';') {
                continue; // a trailing `;`
            }
            return Err(format!("rule {} is empty; expected `METHOD /path scope…`", index + 1));
        }
        let context = |problem: String| format!("rule {} ({:?}): {problem}", index + 1, rule.trim());
        let [method, path, scopes @ ..] = words.as_slice() else {
            return Err(context("expected `METHOD /path scope…`".into()));
        };
        if !METHODS.contains(method) {
            return Err(context(format!(
                "{method:?} is not an HTTP method; use one of {}",
                METHODS.join(", ")
            )));
        }
        check_path(path).map_err(context)?;
        if scopes.is_empty() {
            return Err(context("names no scope; expected at least one after the path".into()));
        }
        if let Some(scope) = scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(context(format!("{scope:?} is not a valid scope (RFC 6749 scope-token)")));
        }
        rules.push(words.join(" "));
    }
    if rules.is_empty() {
        return Err("has no rule; expected `METHOD /path scope…[; …]`".into());
    }
    Ok(rules.join("; "))
}

fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} must start with /"));
    }
    if let Some(c) = path.chars().find(|c| !is_path_char(*c)) {
        return Err(format!(
            "path {path:?} contains {c:?}; percent-encoding, queries and fragments are not \
             allowed in rules"
        ));
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "" if last => {} // `/` itself, or a trailing slash
            "" => return Err(format!("path {path:?} contains an empty segment (//)")),
            "." | ".." => return Err(format!("path {path:?} contains a {segment:?} segment")),
            "*" => {}
            "**" if last => {}
            "**" => return Err(format!("path {path:?}: ** is only allowed at the end")),
            s if s.contains('*') => return Err(format!("path {path:?}: * must be a whole segment")),
            _ => {}
        }
    }
    Ok(())
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/-._~*!$&'()+,=:@{}".contains(c)
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_the_documented_example() {
        assert_eq!(
            check("GET /orders/* orders:read; POST /orders orders:write").unwrap(),
            "GET /orders/* orders:read; POST /orders orders:write"
        );
    }

    #[test]
    fn accepts_several_scopes_wildcards_and_a_trailing_separator() {
        assert_eq!(
            check("  *   /admin/**  admin  ops ;\nDELETE /orders/{id} orders:delete;").unwrap(),
            "* /admin/** admin ops; DELETE /orders/{id} orders:delete"
        );
        assert!(check("GET / root").is_ok());
        assert!(check("GET /orders/ orders:read").is_ok());
    }

    #[test]
    fn refuses_malformed_rules() {
        for bad in [
            "",
            ";",
            "GET /orders",
            "get /orders read",
            "FETCH /orders read",
            "GET orders read",
            "GET /orders read;; POST /x y",
            "GET /orders \"read\"",
            "GET /orders read\\write",
        ] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn refuses_paths_that_could_bypass_a_rule() {
        for path in [
            "//orders", "/orders//x", "/orders/../admin", "/./orders", "/orders%2Fx", "/orders?x=1",
            "/orders#x", "/orders/**/x", "/ord*rs", "/orders\\x",
        ] {
            assert!(check(&format!("GET {path} read")).is_err(), "{path:?} accepted");
        }
    }

    #[test]
    fn refuses_oversized_values() {
        assert!(check(&"GET /a b; ".repeat(2000)).is_err());
    }
}
