//! Status conditions (metav1.Condition): building them and telling what changed, with the
//! condition status typed ([`Status`]) rather than compared as text.
//!
//! `lastTransitionTime` only moves when a condition's status changes, so recomputing a
//! status that did not change gives an equal value and no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition as a controller wants it, before times and generation are filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// `type`, e.g. `Ready`.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: Status,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl Status {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    /// The status of a condition as written (anything but `True` or `False` is `Unknown`).
    pub fn of(condition: &Condition) -> Status {
        match condition.status.as_str() {
            "True" => Status::True,
            "False" => Status::False,
            _ => Status::Unknown,
        }
    }
}

/// What is remembered of a condition already written: enough to keep its
/// `lastTransitionTime` and to tell transitions, without its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `type`.
    pub type_: String,
    /// `status`.
    pub status: Status,
    /// `reason`.
    pub reason: String,
    /// `lastTransitionTime`.
    pub last_transition_time: Time,
}

impl Observed {
    /// The conditions of a status as written.
    pub fn all(conditions: &[Condition]) -> Vec<Observed> {
        conditions
            .iter()
            .map(|c| Observed {
                type_: c.type_.clone(),
                status: Status::of(c),
                reason: c.reason.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
            .collect()
    }
}

impl Desired {
    /// A condition with `status`, `reason` and `message`.
    pub fn new(
        type_: &'static str,
        status: Status,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Desired {
        Desired {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Longest condition message the apiserver accepts.
const MAX_MESSAGE: usize = 32 * 1024;

/// Builds the conditions from `desired`, keeping each previous `lastTransitionTime` whose
/// status did not change. Conditions not in `desired` are dropped.
pub fn merge(
    previous: &[Observed],
    desired: Vec<Desired>,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .into_iter()
        .map(|d| {
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == d.type_ && p.status == d.status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            let mut message = d.message;
            if message.len() > MAX_MESSAGE {
                let mut cut = MAX_MESSAGE - 3;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
                message.push_str("...");
            }
            Condition {
                type_: d.type_.to_string(),
                status: d.status.as_str().to_string(),
                reason: d.reason,
                message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The conditions of `new` whose status or reason differs from `previous` (or that are new).
pub fn transitions<'a>(previous: &[Observed], new: &'a [Condition]) -> Vec<&'a Condition> {
    new.iter()
        .filter(|n| {
            !previous
                .iter()
                .any(|p| p.type_ == n.type_ && p.status == Status::of(n) && p.reason == n.reason)
        })
        .collect()
}

/// The condition of `type_` in `conditions`.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn keeps_the_transition_time_while_the_status_holds() {
        let first = merge(
            &[],
            vec![Desired::new("Ready", Status::True, "Ready", "ok")],
            Some(1),
            at(100),
        );
        let second = merge(
            &Observed::all(&first),
            vec![Desired::new("Ready", Status::True, "Ready", "still ok")],
            Some(2),
            at(200),
        );
        assert_eq!(second[0].last_transition_time, Time(at(100)));
        assert_eq!(second[0].observed_generation, Some(2));
        let third = merge(
            &Observed::all(&second),
            vec![Desired::new("Ready", Status::False, "Broken", "no")],
            Some(2),
            at(300),
        );
        assert_eq!(third[0].last_transition_time, Time(at(300)));
    }

    #[test]
    fn recomputing_an_unchanged_status_gives_an_equal_value() {
        let desired = || vec![Desired::new("Ready", Status::True, "Ready", "ok")];
        let first = merge(&[], desired(), Some(1), at(100));
        assert_eq!(
            merge(&Observed::all(&first), desired(), Some(1), at(500)),
            first
        );
    }

    #[test]
    fn transitions_lists_status_and_reason_changes() {
        let old = merge(
            &[],
            vec![
                Desired::new("Ready", Status::True, "Ready", "ok"),
                Desired::new("KeysLoaded", Status::True, "KeysFetched", "2 keys"),
            ],
            None,
            at(1),
        );
        let new = merge(
            &Observed::all(&old),
            vec![
                Desired::new("Ready", Status::True, "Ready", "ok, new message"),
                Desired::new("KeysLoaded", Status::False, "RefreshFailed", "down"),
            ],
            None,
            at(2),
        );
        let changed: Vec<_> = transitions(&Observed::all(&old), &new)
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(changed, ["KeysLoaded"]);
    }

    #[test]
    fn a_status_is_read_as_typed_and_anything_else_is_unknown() {
        let condition = |status: &str| Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: "R".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(at(1)),
        };
        assert_eq!(Status::of(&condition("True")), Status::True);
        assert_eq!(Status::of(&condition("False")), Status::False);
        assert_eq!(Status::of(&condition("Unknown")), Status::Unknown);
        assert_eq!(Status::of(&condition("true")), Status::Unknown);
    }

    #[test]
    fn long_messages_are_cut() {
        let merged = merge(
            &[],
            vec![Desired::new(
                "Ready",
                Status::False,
                "X",
                "é".repeat(40_000),
            )],
            None,
            at(1),
        );
        assert!(merged[0].message.len() <= MAX_MESSAGE);
        assert!(merged[0].message.ends_with("..."));
    }
}
