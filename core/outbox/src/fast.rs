//! The fast path: new incidents' notices handed over in memory by whatever runs the
//! pipeline in the same process.

use tocsin_model::rows::Handed;

/// New incidents' notices a runner hands over in memory as the pipeline commits them
/// (the local server's handoff): the outbox's fast path to a page.
#[async_trait::async_trait]
pub trait FastPath: Send + Sync {
    /// An outbox takes handed-over notices from now on (until then none are handed).
    fn attach(&self);
    /// The notices handed over since the last call.
    fn take(&self) -> Vec<Handed>;
    /// Whether a handed-over notice of `incident` is still being delivered: the
    /// incident's notices in the database wait for it.
    fn is_reserved(&self, incident: &str) -> bool;
    /// The handed-over notice of `incident` is delivered (or left to the database).
    fn release(&self, incident: &str);
    /// Resolves once the pipeline has committed notices.
    async fn noticed(&self);
}
