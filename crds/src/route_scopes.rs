//! The `outband.dev/route-scopes` annotation: per-route scope requirements for one API.
//!
//! Parsed here, in the shared crate, so the injection webhook can refuse a bad annotation at
//! admission with the same parser the sidecar enforces with. The syntax is documented in
//! `docs/route-scopes.md`:
//!
//! ```text
//! GET /orders/* orders:read; POST /orders orders:write; * /admin/** admin
//! ```
//!
//! Each rule is `METHODS PATH SCOPE...`: methods (`*` or a comma-separated list), a path
//! template whose segments are literals, `*` (exactly one segment) or a final `**` (any
//! number of segments, including none), and one or more scopes, all of which are required.
//! Every rule that matches a request applies, so the requirements of overlapping rules add up.

use std::fmt;

/// Longest accepted annotation value, in bytes.
pub const MAX_ROUTE_SCOPES_BYTES: usize = 16 * 1024;
/// Most rules in one annotation.
pub const MAX_RULES: usize = 128;
/// Most scopes in one rule.
pub const MAX_SCOPES_PER_RULE: usize = 16;
/// Most segments in one path template.
pub const MAX_SEGMENTS: usize = 32;

/// All the rules of one annotation, in their written order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteScopes {
    /// The rules.
    pub rules: Vec<RouteRule>,
}

/// One rule: requests with one of `methods` whose path matches `path` need every scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRule {
    /// Which methods the rule applies to.
    pub methods: Methods,
    /// Which paths the rule applies to.
    pub path: PathTemplate,
    /// Scopes that the token must all carry.
    pub scopes: Vec<String>,
}

/// The methods of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Methods {
    /// `*`: every method.
    Any,
    /// These methods, upper-cased. A rule for `GET` also covers `HEAD`.
    Only(Vec<String>),
}

/// A path template such as `/orders/*/items/**`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    /// The segments before an optional trailing `**`.
    pub segments: Vec<Segment>,
    /// Whether the template ends in `**` (any number of further segments, including none).
    pub any_rest: bool,
}

/// One segment of a [`PathTemplate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Exactly this text (percent-decoded; compared without regard to ASCII case).
    Literal(String),
    /// `*`: exactly one segment, whatever its text.
    Any,
}

/// Why an annotation value is not a valid set of route rules. The message names the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteScopesError {
    /// The value is longer than [`MAX_ROUTE_SCOPES_BYTES`].
    #[error("is {0} bytes long; at most {MAX_ROUTE_SCOPES_BYTES} are allowed")]
    TooLong(usize),
    /// More than [`MAX_RULES`] rules.
    #[error("has {0} rules; at most {MAX_RULES} are allowed")]
    TooManyRules(usize),
    /// One rule is wrong.
    #[error("rule {index} ({rule:?}): {problem}")]
    Rule {
        /// 1-based position of the rule.
        index: usize,
        /// The rule's text.
        rule: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl RouteScopesError {
    /// A stable, machine-readable name of the error kind.
    pub fn reason(&self) -> &'static str {
        match self {
            RouteScopesError::TooLong(_) => "TooLong",
            RouteScopesError::TooManyRules(_) => "TooManyRules",
            RouteScopesError::Rule { .. } => "InvalidRule",
        }
    }
}

/// Parses the value of the `outband.dev/route-scopes` annotation.
///
/// Rules are separated by `;` or new lines; blank rules are ignored, so an empty value means
/// "no route rules".
pub fn parse_route_scopes(value: &str) -> Result<RouteScopes, RouteScopesError> {
    if value.len() > MAX_ROUTE_SCOPES_BYTES {
        return Err(RouteScopesError::TooLong(value.len()));
    }
    let texts: Vec<&str> = value
        .split([';', '\n'])
        .map(str::trim)
        .filter(|rule| !rule.is_empty())
        .collect();
    if texts.len() > MAX_RULES {
        return Err(RouteScopesError::TooManyRules(texts.len()));
    }
    let rules = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            parse_rule(text).map_err(|problem| RouteScopesError::Rule {
                index: i + 1,
                rule: (*text).to_string(),
                problem,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RouteScopes { rules })
}

fn parse_rule(text: &str) -> Result<RouteRule, String> {
    let mut words = text.split_ascii_whitespace();
    let methods = parse_methods(words.next().ok_or("is empty")?)?;
    let path = parse_path(
        words
            .next()
            .ok_or("needs a path after the method, e.g. `GET /orders/* orders:read`")?,
    )?;
    let scopes: Vec<String> = words.map(str::to_string).collect();
    if scopes.is_empty() {
        return Err("needs at least one scope after the path".into());
    }
    if scopes.len() > MAX_SCOPES_PER_RULE {
        return Err(format!(
            "has {} scopes; at most {MAX_SCOPES_PER_RULE} are allowed",
            scopes.len()
        ));
    }
    if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
        return Err(format!(
            "scope {bad:?} is not an OAuth scope token (RFC 6749 §3.3: printable ASCII without space, '\"' or '\\')"
        ));
    }
    Ok(RouteRule {
        methods,
        path,
        scopes,
    })
}

fn parse_methods(word: &str) -> Result<Methods, String> {
    if word == "*" {
        return Ok(Methods::Any);
    }
    let mut methods = Vec::new();
    for method in word.split(',') {
        if method.is_empty() || !method.bytes().all(is_tchar) {
            return Err(format!(
                "method {method:?} is not an HTTP method; use e.g. GET, POST, GET,HEAD or *"
            ));
        }
        if method == "*" {
            return Err("`*` cannot be combined with other methods".into());
        }
        let upper = method.to_ascii_uppercase();
        if !methods.contains(&upper) {
            methods.push(upper);
        }
    }
    Ok(Methods::Only(methods))
}

fn parse_path(word: &str) -> Result<PathTemplate, String> {
    let Some(rest) = word.strip_prefix('/') else {
        return Err(format!("path {word:?} must start with '/'"));
    };
    if word.contains(['?', '#']) {
        return Err(format!(
            "path {word:?} must not contain '?' or '#': rules match the path only"
        ));
    }
    let mut segments = Vec::new();
    let mut any_rest = false;
    if rest.is_empty() {
        return Ok(PathTemplate { segments, any_rest });
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() > MAX_SEGMENTS {
        return Err(format!(
            "path {word:?} has {} segments; at most {MAX_SEGMENTS} are allowed",
            parts.len()
        ));
    }
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *part {
            "" if last => {} // a trailing '/' is the same as none
            "" => return Err(format!("path {word:?} has an empty segment ('//')")),
            "**" if last => any_rest = true,
            "**" => {
                return Err(format!(
                    "path {word:?}: '**' is allowed only as the last segment"
                ));
            }
            "*" => segments.push(Segment::Any),
            "." | ".." => {
                return Err(format!(
                    "path {word:?} has a '.' or '..' segment; write the path it stands for"
                ));
            }
            literal => {
                if literal.contains('*') {
                    return Err(format!(
                        "path {word:?}: '*' must be a whole segment ('/a/*/b'), not part of one"
                    ));
                }
                let decoded = percent_decode_segment(literal)
                    .ok_or_else(|| format!("path {word:?} has an invalid segment {literal:?}"))?;
                if decoded == "." || decoded == ".." {
                    return Err(format!("path {word:?} has an encoded '.' or '..' segment"));
                }
                segments.push(Segment::Literal(decoded));
            }
        }
    }
    Ok(PathTemplate { segments, any_rest })
}

/// Decodes a template segment: valid percent-escapes of anything but '/' and '\', and
/// printable ASCII or UTF-8 text otherwise.
fn percent_decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                if value == b'/' || value == b'\\' || value < 0x20 || value == 0x7f {
                    return None;
                }
                out.push(value);
                i += 3;
            }
            b'\\' => return None,
            byte if byte < 0x20 || byte == 0x7f => return None,
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 9110 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 6749 `scope-token`: `%x21 / %x23-5B / %x5D-7E`.
pub fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

impl fmt::Display for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Methods::Any => f.write_str("*"),
            Methods::Only(methods) => f.write_str(&methods.join(",")),
        }
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() && !self.any_rest {
            return f.write_str("/");
        }
        for segment in &self.segments {
            match segment {
                Segment::Any => f.write_str("/*")?,
                Segment::Literal(text) => write!(f, "/{}", encode_segment(text))?,
            }
        }
        if self.any_rest {
            f.write_str("/**")?;
        }
        Ok(())
    }
}

fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()+,;=:@".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl fmt::Display for RouteRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.methods,
            self.path,
            self.scopes.join(" ")
        )
    }
}

impl fmt::Display for RouteScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules: Vec<String> = self.rules.iter().map(ToString::to_string).collect();
        f.write_str(&rules.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.into())
    }

    #[test]
    fn parses_the_documented_example() {
        let parsed =
            parse_route_scopes("GET /orders/* orders:read; POST /orders orders:write").unwrap();
        assert_eq!(
            parsed.rules,
            vec![
                RouteRule {
                    methods: Methods::Only(vec!["GET".into()]),
                    path: PathTemplate {
                        segments: vec![lit("orders"), Segment::Any],
                        any_rest: false
                    },
                    scopes: vec!["orders:read".into()],
                },
                RouteRule {
                    methods: Methods::Only(vec!["POST".into()]),
                    path: PathTemplate {
                        segments: vec![lit("orders")],
                        any_rest: false
                    },
                    scopes: vec!["orders:write".into()],
                },
            ]
        );
    }

    #[test]
    fn empty_values_and_blank_rules_mean_no_rules() {
        assert!(parse_route_scopes("").unwrap().rules.is_empty());
        assert!(parse_route_scopes(" ; \n ;").unwrap().rules.is_empty());
    }

    #[test]
    fn new_lines_separate_rules_like_semicolons() {
        let parsed = parse_route_scopes("GET /a s1\nPOST /b s2;").unwrap();
        assert_eq!(parsed.rules.len(), 2);
    }

    #[test]
    fn methods_are_upper_cased_deduplicated_and_may_be_any() {
        let parsed = parse_route_scopes("get,Post,GET /a s; * /b t").unwrap();
        assert_eq!(
            parsed.rules[0].methods,
            Methods::Only(vec!["GET".into(), "POST".into()])
        );
        assert_eq!(parsed.rules[1].methods, Methods::Any);
    }

    #[test]
    fn several_scopes_are_all_kept() {
        let parsed = parse_route_scopes("DELETE /orders/* orders:write orders:admin").unwrap();
        assert_eq!(parsed.rules[0].scopes, vec!["orders:write", "orders:admin"]);
    }

    #[test]
    fn double_star_is_accepted_only_at_the_end() {
        let parsed = parse_route_scopes("* /admin/** admin").unwrap();
        assert!(parsed.rules[0].path.any_rest);
        assert_eq!(parsed.rules[0].path.segments, vec![lit("admin")]);
        assert!(parse_route_scopes("* /a/**/b s").is_err());
    }

    #[test]
    fn root_and_catch_all_templates_parse() {
        let root = parse_route_scopes("GET / s").unwrap();
        assert!(root.rules[0].path.segments.is_empty() && !root.rules[0].path.any_rest);
        let all = parse_route_scopes("* /** s").unwrap();
        assert!(all.rules[0].path.segments.is_empty() && all.rules[0].path.any_rest);
    }

    #[test]
    fn literal_segments_are_percent_decoded() {
        let parsed = parse_route_scopes("GET /caf%C3%A9/%7Euser s").unwrap();
        assert_eq!(
            parsed.rules[0].path.segments,
            vec![lit("café"), lit("~user")]
        );
    }

    #[test]
    fn a_trailing_slash_is_ignored() {
        let parsed = parse_route_scopes("GET /orders/ s").unwrap();
        assert_eq!(parsed.rules[0].path.segments, vec![lit("orders")]);
    }

    #[test]
    fn invalid_rules_are_refused_with_the_rule_named() {
        let cases = [
            ("GET", "needs a path"),
            ("GET /orders", "at least one scope"),
            ("GET orders s", "must start with '/'"),
            ("GET /a//b s", "empty segment"),
            ("GET /a/../b s", "'..'"),
            ("GET /a/%2e%2E/b s", "encoded '.' or '..'"),
            ("GET /a%2Fb s", "invalid segment"),
            ("GET /a%5Cb s", "invalid segment"),
            ("GET /a%zz s", "invalid segment"),
            ("GET /a?x=1 s", "'?' or '#'"),
            ("GET /a#x s", "'?' or '#'"),
            ("GET /a*b s", "whole segment"),
            ("GE(T /a s", "not an HTTP method"),
            ("GET,* /a s", "cannot be combined"),
            ("GET /a sc\"ope", "not an OAuth scope token"),
        ];
        for (value, expected) in cases {
            let err = parse_route_scopes(&format!("GET /ok s; {value}")).unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with("rule 2 "), "{value}: {message}");
            assert!(message.contains(expected), "{value}: {message}");
            assert_eq!(err.reason(), "InvalidRule");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let long = "GET /a s;".repeat(MAX_ROUTE_SCOPES_BYTES / 8);
        assert_eq!(parse_route_scopes(&long).unwrap_err().reason(), "TooLong");
        let many = "GET /a s;".repeat(MAX_RULES + 1);
        assert_eq!(
            parse_route_scopes(&many).unwrap_err().reason(),
            "TooManyRules"
        );
        let scopes = vec!["s"; MAX_SCOPES_PER_RULE + 1].join(" ");
        assert!(parse_route_scopes(&format!("GET /a {scopes}")).is_err());
        let deep = "/a".repeat(MAX_SEGMENTS + 1);
        assert!(parse_route_scopes(&format!("GET {deep} s")).is_err());
    }

    #[test]
    fn display_round_trips() {
        let text = "GET,HEAD /orders/*/items orders:read; * /caf%C3%A9/** a b; POST / w";
        let parsed = parse_route_scopes(text).unwrap();
        assert_eq!(parsed.to_string(), text);
        assert_eq!(parse_route_scopes(&parsed.to_string()).unwrap(), parsed);
    }
}
