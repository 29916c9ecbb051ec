//! API tokens: each belongs to one team or is admin, and only its SHA-256 is stored.
//!
//! A token is `tocsin_<id>_<secret>` with a 256-bit random secret. Because the secret is
//! random and long, a plain SHA-256 is the right hash (a slow password hash buys nothing
//! against 256 bits of entropy), and the lookup by hash leaks nothing usable through
//! timing. The id is public: it names the token in `tocsin token list` and `revoke`.

use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tocsin_model::team::Caller;

use tocsin_store::{AdminStore, StoreError, TokenRecord};

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

/// Creates a token and stores its hash; the returned secret is shown once and never again.
pub async fn create(
    store: &dyn AdminStore,
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
pub async fn authenticate(
    store: &dyn AdminStore,
    token: &str,
) -> Result<Option<Caller>, StoreError> {
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
