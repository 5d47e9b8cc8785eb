//! Per-route scope rules: the `outband.dev/route-scopes` annotation (parsed by
//! [`parse_route_scopes`], shared with the injection webhook through `outband-crds`), compiled
//! for matching against a normalised request path.
//!
//! Matching is built so that every ambiguity makes a request match *more* rules, never fewer:
//! every matching rule applies (their scopes add up), literals compare without regard to ASCII
//! case and also against the part of a segment before `;` (matrix parameters), and a `GET`
//! rule also covers `HEAD`. A path trick can therefore only add requirements.

pub mod path;

pub use outband_crds::route_scopes::{
    Methods, PathTemplate, RouteRule, RouteScopes, RouteScopesError, Segment, parse_route_scopes,
};
pub use path::{NormalizedPath, normalize};

/// Route rules ready for matching.
#[derive(Clone, Debug, Default)]
pub struct RouteRules {
    rules: Vec<CompiledRule>,
    source: RouteScopes,
}

#[derive(Clone, Debug)]
struct CompiledRule {
    /// Upper-case methods; `None` for any.
    methods: Option<Vec<String>>,
    /// Lower-case literals, `None` for `*`.
    segments: Vec<Option<String>>,
    any_rest: bool,
    scopes: Vec<String>,
}

impl RouteRules {
    /// Compiles parsed rules.
    pub fn new(parsed: RouteScopes) -> RouteRules {
        let rules = parsed
            .rules
            .iter()
            .map(|rule| CompiledRule {
                methods: match &rule.methods {
                    Methods::Any => None,
                    Methods::Only(methods) => Some(methods.clone()),
                },
                segments: rule
                    .path
                    .segments
                    .iter()
                    .map(|segment| match segment {
                        Segment::Any => None,
                        Segment::Literal(text) => Some(text.to_lowercase()),
                    })
                    .collect(),
                any_rest: rule.path.any_rest,
                scopes: rule.scopes.clone(),
            })
            .collect();
        RouteRules {
            rules,
            source: parsed,
        }
    }

    /// Parses and compiles an annotation value.
    pub fn parse(value: &str) -> Result<RouteRules, RouteScopesError> {
        parse_route_scopes(value).map(RouteRules::new)
    }

    /// Whether there are no rules (then paths are not normalised or checked).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules as written (normalised form).
    pub fn source(&self) -> &RouteScopes {
        &self.source
    }

    /// Every scope required for `method` on `path`: the union over all matching rules, in
    /// rule order, without repetition.
    pub fn required_scopes<'a>(&'a self, method: &str, path: &NormalizedPath) -> Vec<&'a str> {
        let mut required: Vec<&str> = Vec::new();
        for rule in &self.rules {
            if rule.matches_method(method) && rule.matches_path(&path.segments) {
                for scope in &rule.scopes {
                    if !required.contains(&scope.as_str()) {
                        required.push(scope);
                    }
                }
            }
        }
        required
    }
}

impl CompiledRule {
    fn matches_method(&self, method: &str) -> bool {
        let Some(methods) = &self.methods else {
            return true;
        };
        methods.iter().any(|m| {
            m.eq_ignore_ascii_case(method) || (m == "GET" && method.eq_ignore_ascii_case("HEAD"))
        })
    }

    fn matches_path(&self, segments: &[String]) -> bool {
        let fixed = self.segments.len();
        if segments.len() < fixed || (!self.any_rest && segments.len() != fixed) {
            return false;
        }
        self.segments
            .iter()
            .zip(segments)
            .all(|(template, segment)| match template {
                None => true,
                Some(literal) => literal_matches(literal, segment),
            })
    }
}

/// A literal matches a segment equal to it without regard to case, or whose part before a
/// `;` (matrix parameters, which some servers strip) is.
fn literal_matches(literal: &str, segment: &str) -> bool {
    let lower = segment.to_lowercase();
    if lower == literal {
        return true;
    }
    lower
        .split_once(';')
        .is_some_and(|(before, _)| before == literal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> RouteRules {
        RouteRules::parse(text).unwrap()
    }

    fn required(rules: &RouteRules, method: &str, raw_path: &str) -> Vec<String> {
        let path = normalize(raw_path, true).unwrap();
        rules
            .required_scopes(method, &path)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    const RULES: &str = "GET /orders/* orders:read; POST /orders orders:write; * /admin/** admin; DELETE /orders/* orders:write orders:admin";

    #[test]
    fn a_matching_rule_requires_its_scopes() {
        let rules = rules(RULES);
        assert_eq!(required(&rules, "GET", "/orders/42"), vec!["orders:read"]);
        assert_eq!(required(&rules, "POST", "/orders"), vec!["orders:write"]);
        assert_eq!(
            required(&rules, "DELETE", "/orders/42"),
            vec!["orders:write", "orders:admin"]
        );
    }

    #[test]
    fn unmatched_routes_need_no_scope() {
        let rules = rules(RULES);
        assert!(required(&rules, "GET", "/health").is_empty());
        assert!(required(&rules, "GET", "/orders").is_empty());
        assert!(required(&rules, "GET", "/orders/42/items").is_empty());
        assert!(required(&rules, "PUT", "/orders/42").is_empty());
    }

    #[test]
    fn double_star_matches_zero_or_more_segments() {
        let rules = rules(RULES);
        for path in ["/admin", "/admin/", "/admin/users", "/admin/a/b/c"] {
            assert_eq!(required(&rules, "PATCH", path), vec!["admin"], "{path}");
        }
        assert!(required(&rules, "GET", "/administrator").is_empty());
    }

    #[test]
    fn overlapping_rules_add_up() {
        let rules = rules("GET /orders/** orders:read; GET /orders/*/secret secret");
        assert_eq!(
            required(&rules, "GET", "/orders/1/secret"),
            vec!["orders:read", "secret"]
        );
    }

    #[test]
    fn a_get_rule_also_covers_head() {
        let rules = rules(RULES);
        assert_eq!(required(&rules, "HEAD", "/orders/1"), vec!["orders:read"]);
        assert_eq!(required(&rules, "get", "/orders/1"), vec!["orders:read"]);
    }

    #[test]
    fn path_tricks_do_not_escape_a_rule() {
        let rules = rules(RULES);
        for path in [
            "/admin//users",
            "//admin/users",
            "/ADMIN/users",
            "/Admin",
            "/%61dmin/users",
            "/%41DMIN",
            "/public/../admin/users",
            "/public/%2e%2e/admin",
            "/public/%2E./admin",
            "/./admin",
            "/admin;jsessionid=1/users",
            "/admin/users/..",
        ] {
            assert_eq!(required(&rules, "GET", path), vec!["admin"], "{path}");
        }
        for path in ["/orders//1", "/Orders/1", "/orders/1/", "/orders/x/../1"] {
            assert_eq!(required(&rules, "GET", path), vec!["orders:read"], "{path}");
        }
    }

    #[test]
    fn the_root_template_matches_only_the_root() {
        let rules = rules("GET / root");
        assert_eq!(required(&rules, "GET", "/"), vec!["root"]);
        assert_eq!(required(&rules, "GET", "//"), vec!["root"]);
        assert!(required(&rules, "GET", "/a").is_empty());
    }
}
