//! API tokens: each belongs to one team or is admin, and only its SHA-256 is stored.
//!
//! A token is `tocsin_<id>_<secret>` with a 256-bit random secret. Because the secret is
//! random and long, a plain SHA-256 is the right hash (a slow password hash buys nothing
//! against 256 bits of entropy), and the lookup by hash leaks nothing usable through
//! timing. The id is public: it names the token in `tocsin token list` and `revoke`.

use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::store::{Store, StoreError, TokenRecord};

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
}

/// Who a new token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Acts for every team.
    Admin,
    /// Acts for this team only.
    Team(String),
}

/// The SHA-256 of a token, hex-encoded, as stored.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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

/// Creates a token and stores its hash; the returned secret is shown once and never again.
pub async fn create(
    store: &dyn Store,
    grant: Grant,
    description: &str,
) -> Result<(String, TokenRecord), StoreError> {
    let mut rng = rand::rng();
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let token = format!("tocsin_{id}_{}", hex::encode(secret));
    let (team, admin) = match grant {
        Grant::Admin => (None, true),
        Grant::Team(team) => (Some(team), false),
    };
    let record = TokenRecord {
        id,
        team,
        admin,
        description: description.to_owned(),
        created_at: OffsetDateTime::now_utc(),
        revoked_at: None,
    };
    store.create_token(&record, &hash(&token)).await?;
    Ok((token, record))
}

/// The caller a bearer token stands for, or `None` when it is unknown or revoked.
pub async fn authenticate(store: &dyn Store, token: &str) -> Result<Option<Caller>, StoreError> {
    // Anything that is not shaped like our tokens cannot match: skip the database.
    if !token.starts_with("tocsin_") || token.len() > 128 {
        return Ok(None);
    }
    Ok(store
        .token_by_hash(&hash(token))
        .await?
        .map(|record| Caller {
            token_id: record.id,
            team: record.team,
            admin: record.admin,
        }))
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
}
