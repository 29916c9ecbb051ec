//! The stage traits of [`crate::stages`] for a backend, written once: every method is
//! the shared SQL of its module (written once for both dialects) on the backend's read or
//! write pool. A backend writes by hand only what differs: how it appends to the journal
//! (`append_records`) and commits a batch (`commit_outcome`).

use crate::error::StoreError;

/// Compares the migrations a database has applied with the ones this build carries.
pub(crate) fn check_migrations(
    migrator: &sqlx::migrate::Migrator,
    applied: &[i64],
) -> Result<(), StoreError> {
    match migrator.iter().find(|m| !applied.contains(&m.version)) {
        Some(missing) => Err(StoreError::NotMigrated(format!(
            "migration {} ({}) is not applied",
            missing.version, missing.description
        ))),
        None => Ok(()),
    }
}

/// Implements every stage trait for `$store`, a backend whose SQL functions are in the
/// `$backend` submodules, reading on the pool `self.$read` and writing on `self.$write`.
/// The backend provides `append_records`, `commit_outcome`, `journal_rows`,
/// `journal_bodies_of`, `pipeline_lease` and a `MIGRATOR` static, and the journal's SQL
/// in `crate::journal::$backend`.
macro_rules! stages {
    ($store:ty, $backend:ident, read: $read:ident, write: $write:ident) => {
        const _: () = {
            use std::collections::HashMap;

            use time::OffsetDateTime;

            use tocsin_model::catalogue::Service;
            use tocsin_model::notice::{DeliveryState, StoredRoute};
            use tocsin_model::rows::{
                CommandOutcome, CommandRow, Incoming, NoticeRow, Outcome, Rules, Snapshot,
                TrackedRow,
            };
            use tocsin_model::views::{
                AuditEntry, ContextSection, HistoryEntry, HistoryQuery, IncidentDetail,
                IncidentQuery, IncidentSummary, SuppressionRecord,
            };

            use $crate::alerts::{AlertQuery, AlertState};
            use $crate::context::{Change, Runbook};
            use $crate::error::StoreError;
            use $crate::journal::{Appended, Record};
            use $crate::logs::LogsQuery;
            use $crate::outbox::{Delivery, DeliveryQuery, StoreHealth};
            use $crate::plugins::{DeadLetter, NewVersion, PluginRow};
            use $crate::stages::{
                AdminStore, JournalStore, OutboxStore, PipelineStore, PluginStore, ViewStore,
            };
            use $crate::tokens::TokenRecord;

            #[async_trait::async_trait]
            impl JournalStore for $store {
                async fn append(&self, records: Vec<Record>) -> Result<Appended, StoreError> {
                    self.append_records(records).await
                }

                async fn lag(&self) -> Result<u64, StoreError> {
                    let lag: i64 = sqlx::query_scalar($crate::journal::$backend::LAG)
                        .fetch_one(&self.$read)
                        .await?;
                    Ok(lag as u64)
                }

                async fn event_count(&self) -> Result<u64, StoreError> {
                    let n: i64 = sqlx::query_scalar(&format!(
                        "SELECT COUNT(*) FROM ({}) AS ids",
                        $crate::journal::$backend::EVENT_IDS
                    ))
                    .fetch_one(&self.$read)
                    .await?;
                    Ok(n as u64)
                }

                async fn event_ids(&self) -> Result<Vec<String>, StoreError> {
                    Ok(sqlx::query_scalar(&format!(
                        "{} ORDER BY id",
                        $crate::journal::$backend::EVENT_IDS
                    ))
                    .fetch_all(&self.$read)
                    .await?)
                }

                async fn ready(&self) -> Result<(), StoreError> {
                    let applied: Vec<i64> =
                        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                            .fetch_all(&self.$read)
                            .await?;
                    $crate::forward::check_migrations(&MIGRATOR, &applied)
                }
            }

            #[async_trait::async_trait]
            impl ViewStore for $store {
                async fn incidents(
                    &self,
                    query: &IncidentQuery,
                ) -> Result<Vec<IncidentSummary>, StoreError> {
                    $crate::incidents::$backend::incidents(&self.$read, query).await
                }

                async fn incident(
                    &self,
                    id: &str,
                    team: Option<&str>,
                ) -> Result<Option<IncidentDetail>, StoreError> {
                    let (mut detail, sections) = tokio::try_join!(
                        $crate::incidents::$backend::incident(&self.$read, id, team),
                        $crate::context::$backend::context(&self.$read, id)
                    )?;
                    if let Some(detail) = &mut detail {
                        detail.context = sections;
                    }
                    Ok(detail)
                }

                async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertState>, StoreError> {
                    $crate::alerts::$backend::alerts(&self.$read, query).await
                }

                async fn history(
                    &self,
                    query: &HistoryQuery,
                ) -> Result<Vec<HistoryEntry>, StoreError> {
                    $crate::incidents::$backend::history(&self.$read, query).await
                }

                async fn drops(
                    &self,
                    team: Option<&str>,
                ) -> Result<HashMap<String, i64>, StoreError> {
                    $crate::incidents::$backend::drops(&self.$read, team).await
                }

                async fn services(&self, team: Option<&str>) -> Result<Vec<Service>, StoreError> {
                    $crate::catalogue::$backend::services(&self.$read, team).await
                }

                async fn service(&self, name: &str) -> Result<Option<Service>, StoreError> {
                    $crate::catalogue::$backend::service(&self.$read, name).await
                }

                async fn suppressions(
                    &self,
                    id: Option<&str>,
                    team: Option<&str>,
                    now: i64,
                ) -> Result<Vec<SuppressionRecord>, StoreError> {
                    $crate::catalogue::$backend::suppressions(&self.$read, id, team, now).await
                }

                async fn audit_trail(&self, id: &str) -> Result<Vec<AuditEntry>, StoreError> {
                    $crate::catalogue::$backend::audit_trail(&self.$read, id).await
                }

                async fn routes(&self, team: Option<&str>) -> Result<Vec<StoredRoute>, StoreError> {
                    $crate::outbox::$backend::routes(&self.$read, team).await
                }

                async fn deliveries(
                    &self,
                    query: &DeliveryQuery,
                ) -> Result<Vec<Delivery>, StoreError> {
                    $crate::outbox::$backend::deliveries(&self.$read, query).await
                }

                async fn context(
                    &self,
                    incident_id: &str,
                ) -> Result<Vec<ContextSection>, StoreError> {
                    $crate::context::$backend::context(&self.$read, incident_id).await
                }

                async fn runbook(
                    &self,
                    team: &str,
                    id: &str,
                ) -> Result<Option<Runbook>, StoreError> {
                    $crate::context::$backend::runbook(&self.$read, team, id).await
                }

                async fn changes(
                    &self,
                    team: Option<&str>,
                    service: &str,
                    since: i64,
                    limit: i64,
                ) -> Result<Vec<Change>, StoreError> {
                    $crate::context::$backend::changes(&self.$read, team, service, since, limit)
                        .await
                }

                async fn logs_query(
                    &self,
                    team: &str,
                    name: &str,
                ) -> Result<Option<LogsQuery>, StoreError> {
                    $crate::logs::$backend::get(&self.$read, team, name).await
                }

                async fn logs_queries(
                    &self,
                    team: Option<&str>,
                ) -> Result<Vec<LogsQuery>, StoreError> {
                    $crate::logs::$backend::list(&self.$read, team).await
                }

                async fn dead_letters(
                    &self,
                    team: &str,
                    plugin: &str,
                    limit: i64,
                ) -> Result<Vec<DeadLetter>, StoreError> {
                    $crate::plugins::$backend::dead_letters(&self.$read, team, plugin, limit).await
                }

                async fn command_outcome(
                    &self,
                    id: &str,
                ) -> Result<Option<CommandOutcome>, StoreError> {
                    $crate::commands::$backend::outcome(&self.$read, id).await
                }

                async fn health(&self) -> Result<StoreHealth, StoreError> {
                    let (pending, oldest): (i64, i64) = sqlx::query_as($crate::outbox::PENDING)
                        .fetch_one(&self.$read)
                        .await?;
                    let dead: i64 = sqlx::query_scalar($crate::outbox::DEAD)
                        .fetch_one(&self.$read)
                        .await?;
                    let notices: i64 = sqlx::query_scalar($crate::outbox::NOTICES)
                        .fetch_one(&self.$read)
                        .await?;
                    let oldest_pending_age_ms = if pending > 0 {
                        (tocsin_model::clock::now_ms() - oldest).max(0)
                    } else {
                        0
                    };
                    Ok(StoreHealth {
                        pending: pending as u64,
                        oldest_pending_age_ms,
                        dead: dead as u64,
                        notices: notices as u64,
                        database_bytes: self.database_bytes().await?,
                    })
                }
            }

            #[async_trait::async_trait]
            impl PipelineStore for $store {
                async fn journal_after(
                    &self,
                    after: i64,
                    max: usize,
                ) -> Result<Vec<Incoming>, StoreError> {
                    self.journal_rows(after, max).await
                }

                async fn journal_bodies(
                    &self,
                    seqs: &[i64],
                ) -> Result<HashMap<i64, (String, String)>, StoreError> {
                    self.journal_bodies_of(seqs).await
                }

                async fn versions(&self) -> Result<(i64, i64), StoreError> {
                    $crate::pipeline::$backend::versions(&self.$read).await
                }

                async fn lease(
                    &self,
                    wait: std::time::Duration,
                ) -> Result<Option<$crate::lease::Lease>, StoreError> {
                    self.pipeline_lease(wait).await
                }

                async fn tracked_page(
                    &self,
                    after: Option<i64>,
                    limit: i64,
                ) -> Result<Vec<TrackedRow>, StoreError> {
                    $crate::pipeline::$backend::tracked_page(&self.$read, after, limit).await
                }

                async fn snapshot(&self) -> Result<Snapshot, StoreError> {
                    $crate::pipeline::$backend::snapshot(&self.$write).await
                }

                async fn rules(&self, now: i64) -> Result<Rules, StoreError> {
                    let mut rules = $crate::pipeline::$backend::rules(&self.$write, now).await?;
                    // Read after the version: at least as new as it.
                    rules.routes = std::sync::Arc::new(
                        $crate::outbox::$backend::routes(&self.$write, None).await?,
                    );
                    Ok(rules)
                }

                async fn commit(
                    &self,
                    outcome: &Outcome,
                    generation: i64,
                ) -> Result<(), StoreError> {
                    self.commit_outcome(outcome, generation).await
                }

                fn encode(&self, outcome: &Outcome) -> $crate::pipeline::Encoded {
                    self.encode_outcome(outcome)
                }

                async fn commit_encoded(
                    &self,
                    encoded: $crate::pipeline::Encoded,
                    generation: i64,
                ) -> Result<(), StoreError> {
                    self.commit_encoded_outcome(encoded, generation).await
                }

                async fn prune(&self, before: i64) -> Result<u64, StoreError> {
                    Ok(
                        $crate::pipeline::$backend::prune(&self.$write, before).await?
                            + $crate::plugins::$backend::prune_dead_letters(&self.$write, before)
                                .await?
                            + $crate::outbox::$backend::prune(&self.$write, before).await?
                            + $crate::context::$backend::prune(&self.$write, before).await?
                            + $crate::commands::$backend::prune(&self.$write, before).await?,
                    )
                }

                async fn finished_incident(
                    &self,
                    id: &str,
                    team: Option<&str>,
                    close: bool,
                    who: &str,
                    now: i64,
                ) -> Result<bool, StoreError> {
                    $crate::incidents::$backend::finished_incident(
                        &self.$write,
                        id,
                        team,
                        close,
                        who,
                        now,
                    )
                    .await
                }

                async fn pending_commands(
                    &self,
                    limit: i64,
                ) -> Result<Vec<CommandRow>, StoreError> {
                    $crate::commands::$backend::pending(&self.$read, limit).await
                }

                async fn finish_command(
                    &self,
                    id: &str,
                    outcome: CommandOutcome,
                    at: i64,
                ) -> Result<(), StoreError> {
                    $crate::commands::$backend::finish(&self.$write, id, outcome, at).await
                }
            }

            #[async_trait::async_trait]
            impl OutboxStore for $store {
                async fn notices(&self, limit: i64) -> Result<Vec<NoticeRow>, StoreError> {
                    $crate::outbox::$backend::notices(&self.$read, limit).await
                }

                async fn expand_notices(
                    &self,
                    notices: &[String],
                    deliveries: &[Delivery],
                ) -> Result<Vec<String>, StoreError> {
                    $crate::outbox::$backend::expand(&self.$write, notices, deliveries).await
                }

                async fn due_deliveries(
                    &self,
                    now: i64,
                    limit: i64,
                ) -> Result<Vec<Delivery>, StoreError> {
                    $crate::outbox::$backend::due(&self.$read, now, limit).await
                }

                async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
                    $crate::outbox::$backend::next_due(&self.$read).await
                }

                async fn claim_delivery(
                    &self,
                    id: &str,
                    lease_until: i64,
                    now: i64,
                ) -> Result<bool, StoreError> {
                    $crate::outbox::$backend::claim(&self.$write, id, lease_until, now).await
                }

                async fn release_deliveries(&self, now: i64) -> Result<u64, StoreError> {
                    $crate::outbox::$backend::release(&self.$write, now).await
                }

                async fn settle_delivery(
                    &self,
                    id: &str,
                    state: DeliveryState,
                    due_at: i64,
                    error: &str,
                    now: i64,
                ) -> Result<(), StoreError> {
                    $crate::outbox::$backend::settle(&self.$write, id, state, due_at, error, now)
                        .await
                }

                async fn delivery_ref(
                    &self,
                    incident_id: &str,
                    notifier: &str,
                ) -> Result<Option<String>, StoreError> {
                    $crate::outbox::$backend::reference(&self.$read, incident_id, notifier).await
                }

                async fn set_delivery_ref(
                    &self,
                    incident_id: &str,
                    notifier: &str,
                    reference: &str,
                ) -> Result<(), StoreError> {
                    $crate::outbox::$backend::set_reference(
                        &self.$write,
                        incident_id,
                        notifier,
                        reference,
                    )
                    .await
                }

                async fn put_context(
                    &self,
                    incident_id: &str,
                    sections: &[ContextSection],
                ) -> Result<(), StoreError> {
                    $crate::context::$backend::put_context(&self.$write, incident_id, sections)
                        .await
                }
            }

            #[async_trait::async_trait]
            impl AdminStore for $store {
                async fn put_service(&self, service: &Service, now: i64) -> Result<(), StoreError> {
                    $crate::catalogue::$backend::put_service(&self.$write, service, now).await
                }

                async fn create_suppression(
                    &self,
                    record: &SuppressionRecord,
                    now: i64,
                ) -> Result<(), StoreError> {
                    $crate::catalogue::$backend::create_suppression(&self.$write, record, now).await
                }

                async fn retime_suppression(
                    &self,
                    id: &str,
                    start: i64,
                    end: i64,
                    actor: &str,
                    action: &str,
                    detail: &str,
                    now: i64,
                ) -> Result<(), StoreError> {
                    $crate::catalogue::$backend::retime_suppression(
                        &self.$write,
                        id,
                        start,
                        end,
                        actor,
                        action,
                        detail,
                        now,
                    )
                    .await
                }

                async fn put_route(&self, route: &StoredRoute) -> Result<(), StoreError> {
                    $crate::outbox::$backend::put_route(&self.$write, route).await
                }

                async fn delete_route(
                    &self,
                    team: &str,
                    service: Option<&str>,
                ) -> Result<bool, StoreError> {
                    $crate::outbox::$backend::delete_route(&self.$write, team, service).await
                }

                async fn retry_delivery(
                    &self,
                    id: &str,
                    team: Option<&str>,
                    now: i64,
                ) -> Result<bool, StoreError> {
                    $crate::outbox::$backend::retry(&self.$write, id, team, now).await
                }

                async fn request_command(&self, row: &CommandRow) -> Result<(), StoreError> {
                    $crate::commands::$backend::request(&self.$write, row).await
                }

                async fn put_runbook(&self, runbook: &Runbook) -> Result<(), StoreError> {
                    $crate::context::$backend::put_runbook(&self.$write, runbook).await
                }

                async fn put_change(&self, change: &Change) -> Result<(), StoreError> {
                    $crate::context::$backend::put_change(&self.$write, change).await
                }

                async fn put_logs_query(&self, query: &LogsQuery) -> Result<(), StoreError> {
                    $crate::logs::$backend::put(&self.$write, query).await
                }

                async fn delete_logs_query(
                    &self,
                    team: &str,
                    name: &str,
                ) -> Result<bool, StoreError> {
                    $crate::logs::$backend::delete(&self.$write, team, name).await
                }

                async fn create_token(
                    &self,
                    token: &TokenRecord,
                    hash: &str,
                ) -> Result<(), StoreError> {
                    $crate::tokens::$backend::create(&self.$write, token, hash).await
                }

                async fn token_by_hash(
                    &self,
                    hash: &str,
                ) -> Result<Option<TokenRecord>, StoreError> {
                    $crate::tokens::$backend::by_hash(&self.$read, hash).await
                }

                async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
                    $crate::tokens::$backend::list(&self.$read).await
                }

                async fn revoke_token(
                    &self,
                    id: &str,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    $crate::tokens::$backend::revoke(&self.$write, id, at).await
                }
            }

            #[async_trait::async_trait]
            impl PluginStore for $store {
                async fn put_plugin_version(
                    &self,
                    new: &NewVersion<'_>,
                ) -> Result<i64, StoreError> {
                    $crate::plugins::$backend::put_version(&self.$write, new).await
                }

                async fn plugins(&self, team: Option<&str>) -> Result<Vec<PluginRow>, StoreError> {
                    $crate::plugins::$backend::plugins(&self.$read, team).await
                }

                async fn plugin_component(
                    &self,
                    team: &str,
                    name: &str,
                    version: i64,
                ) -> Result<Option<Vec<u8>>, StoreError> {
                    $crate::plugins::$backend::component(&self.$read, team, name, version).await
                }

                async fn plugin_artifact(
                    &self,
                    sha256: &str,
                    engine: &str,
                ) -> Result<Option<Vec<u8>>, StoreError> {
                    $crate::plugins::$backend::artifact(&self.$read, sha256, engine).await
                }

                async fn put_plugin_artifact(
                    &self,
                    sha256: &str,
                    engine: &str,
                    artifact: &[u8],
                    at: i64,
                ) -> Result<(), StoreError> {
                    $crate::plugins::$backend::put_artifact(
                        &self.$write,
                        sha256,
                        engine,
                        artifact,
                        at,
                    )
                    .await
                }

                async fn activate_plugin(
                    &self,
                    team: &str,
                    name: &str,
                    version: i64,
                    at: i64,
                ) -> Result<(), StoreError> {
                    $crate::plugins::$backend::activate(&self.$write, team, name, version, at).await
                }

                async fn delete_plugin(&self, team: &str, name: &str) -> Result<bool, StoreError> {
                    $crate::plugins::$backend::delete(&self.$write, team, name).await
                }

                async fn plugin_state(
                    &self,
                    team: &str,
                    name: &str,
                ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
                    $crate::plugins::$backend::state(&self.$read, team, name).await
                }

                async fn save_plugin_state(
                    &self,
                    team: &str,
                    name: &str,
                    puts: &[(String, Vec<u8>)],
                    deletes: &[String],
                ) -> Result<(), StoreError> {
                    $crate::plugins::$backend::save_state(&self.$write, team, name, puts, deletes)
                        .await
                }

                async fn put_dead_letter(
                    &self,
                    letter: &DeadLetter,
                    body: &[u8],
                ) -> Result<(), StoreError> {
                    $crate::plugins::$backend::put_dead_letter(&self.$write, letter, body).await
                }
            }
        };
    };
}

pub(crate) use stages;
