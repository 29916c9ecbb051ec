//! Teams: the tenants every object belongs to, and the caller acting for one.

/// Who is calling, once their token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Id of the token used.
    pub token_id: String,
    /// The team the token acts for; `None` for admin tokens.
    pub team: Option<String>,
    /// Whether the token may act for every team.
    pub admin: bool,
}

impl Caller {
    /// Whether this caller may act for `team`.
    pub fn may_act_for(&self, team: &str) -> bool {
        self.admin || self.team.as_deref() == Some(team)
    }

    /// The team filter this caller reads with: `None` (every team) for an admin, its own
    /// team otherwise. A non-admin token without a team, which the schema forbids, reads
    /// as team `""` rather than as every team, so a bad row can never widen a read.
    pub fn scope(&self) -> Option<&str> {
        if self.admin {
            None
        } else {
            Some(self.team.as_deref().unwrap_or_default())
        }
    }
}

/// Checks a team name: 1-64 characters of `a-z 0-9 - _`, starting with a letter or digit.
pub fn check_team_name(team: &str) -> Result<(), String> {
    let valid = !team.is_empty()
        && team.len() <= 64
        && team
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && team
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid team name \"{team}\": use 1-64 characters of a-z 0-9 - _, starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_names() {
        for good in ["bender", "team-1", "a", "9lives", "x_y"] {
            assert_eq!(check_team_name(good), Ok(()), "{good}");
        }
        for bad in ["", "Bender", "-x", "a b", "ö", &"a".repeat(65)] {
            assert!(check_team_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_team_caller_acts_only_for_its_team() {
        let caller = Caller {
            token_id: "t".into(),
            team: Some("bender".into()),
            admin: false,
        };
        assert!(caller.may_act_for("bender"));
        assert!(!caller.may_act_for("flexo"));
        let admin = Caller {
            token_id: "a".into(),
            team: None,
            admin: true,
        };
        assert!(admin.may_act_for("flexo"));
    }

    #[test]
    fn an_admin_reads_every_team_and_a_team_caller_its_own() {
        let team = Caller {
            token_id: "t".into(),
            team: Some("bender".into()),
            admin: false,
        };
        assert_eq!(team.scope(), Some("bender"));
        let admin = Caller {
            token_id: "a".into(),
            team: None,
            admin: true,
        };
        assert_eq!(admin.scope(), None);
        let teamless = Caller {
            token_id: "x".into(),
            team: None,
            admin: false,
        };
        assert_eq!(teamless.scope(), Some(""), "never every team");
    }
}
