//! The logs sources behind the `logs` collector ([docs/alerting.md](../../docs/alerting.md#logs-queries)): the SQL a team registers,
//! checked once when it is registered, and the databases the operator assigns to teams.
//!
//! SQL text never comes from an event. A team registers a query under a name
//! (`PUT /v1/logs-queries/{name}`); an event names it and passes values, which are bound
//! as parameters, never spliced into the text. Named parameters are written `:name`
//! (letters, digits and `_`, a letter or `_` first); `::type` casts are left alone.
//!
//! What a query may read is the business of the database role the operator gives each
//! team (SELECT on that team's views only): a check of the text is a courtesy that gives
//! a clear error early, not the wall. The wall's other half is here: a query past its
//! time limit is stopped on the server (`pg_cancel_backend`, or SQLite's progress
//! handler), and a SQLite source is opened read-only with `ATTACH` denied.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Largest registered query, in bytes.
pub const MAX_SQL_BYTES: usize = 16 * 1024;
/// Most named parameters a query may take.
pub const MAX_PARAMS: usize = 32;
/// Rows a `logs` section shows; the rest are not fetched.
pub const MAX_ROWS: usize = 20;
/// How long past its limit PostgreSQL's own `statement_timeout` stops a query.
const STATEMENT_TIMEOUT_MARGIN: Duration = Duration::from_secs(10);
/// Event parameters of the `logs` collector that are not values of the query.
pub const RESERVED_PARAMS: [&str; 2] = ["query", "title"];

/// Why a query cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// The text is empty.
    #[error("sql: the query is empty")]
    Empty,
    /// The text is over [`MAX_SQL_BYTES`].
    #[error("sql: the query is {0} bytes; at most 16384 are allowed")]
    TooLong(usize),
    /// More than one statement.
    #[error("sql: exactly one statement is allowed; found more after the \";\" at byte {0}")]
    Statements(usize),
    /// Not a `SELECT` or `WITH` statement.
    #[error(
        "sql: a logs query must be a read statement (SELECT or WITH), not \"{0}\"; ATTACH, PRAGMA and writes are refused"
    )]
    NotRead(String),
    /// A quote or comment that does not end.
    #[error("sql: unterminated {0} starting at byte {1}")]
    Unterminated(&'static str, usize),
    /// A placeholder in a form other than `:name`.
    #[error(
        "sql: placeholder \"{0}\" at byte {1} is not allowed: name each parameter as :name and pass it in the event's params"
    )]
    Placeholder(String, usize),
    /// A parameter name that cannot be given in an event.
    #[error("sql: parameter \":{0}\" is reserved: the collector's params.{0} is not a value")]
    Reserved(String),
    /// Too many parameters.
    #[error("sql: {0} named parameters; at most 32 are allowed")]
    TooManyParams(usize),
}

/// A registered query, parsed: its text and the named parameters it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsSql {
    /// The statement without a trailing `;`.
    text: String,
    /// Placeholders in the text: byte range and index into `params`.
    places: Vec<(usize, usize, usize)>,
    /// Parameter names, in order of first use.
    params: Vec<String>,
}

/// The SQL dialect of a source: how a bound parameter is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?1`, `?2`, …
    Sqlite,
    /// `$1`, `$2`, …
    Postgres,
}

impl LogsSql {
    /// Checks `text`: one read statement (SELECT or WITH) of at most [`MAX_SQL_BYTES`],
    /// quotes and comments closed, parameters only as `:name`.
    pub fn parse(text: &str) -> Result<Self, SqlError> {
        if text.len() > MAX_SQL_BYTES {
            return Err(SqlError::TooLong(text.len()));
        }
        let bytes = text.as_bytes();
        let ident_start = |b: u8| b.is_ascii_alphabetic() || b == b'_';
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut places = Vec::new();
        let mut params: Vec<String> = Vec::new();
        let mut first_word: Option<String> = None;
        let mut end = bytes.len();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'\'' => {
                    // E'…' strings take backslash escapes (PostgreSQL).
                    let escapes = i > 0
                        && matches!(bytes[i - 1], b'E' | b'e')
                        && (i < 2 || !ident(bytes[i - 2]));
                    let start = i;
                    i += 1;
                    loop {
                        match bytes.get(i) {
                            None => return Err(SqlError::Unterminated("string", start)),
                            Some(b'\\') if escapes => i += 2,
                            Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                            Some(b'\'') => break,
                            Some(_) => i += 1,
                        }
                    }
                    i += 1;
                }
                b'"' | b'`' => {
                    let start = i;
                    i += 1;
                    loop {
                        match bytes.get(i) {
                            None => return Err(SqlError::Unterminated("quoted name", start)),
                            Some(&c) if c == b && bytes.get(i + 1) == Some(&b) => i += 2,
                            Some(&c) if c == b => break,
                            Some(_) => i += 1,
                        }
                    }
                    i += 1;
                }
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    // PostgreSQL nests block comments.
                    let start = i;
                    let mut depth = 0;
                    loop {
                        if bytes.get(i) == Some(&b'/') && bytes.get(i + 1) == Some(&b'*') {
                            depth += 1;
                            i += 2;
                        } else if bytes.get(i) == Some(&b'*') && bytes.get(i + 1) == Some(&b'/') {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        } else if i >= bytes.len() {
                            return Err(SqlError::Unterminated("comment", start));
                        } else {
                            i += 1;
                        }
                    }
                }
                b'$' => {
                    let start = i;
                    let mut j = i + 1;
                    if bytes.get(j).copied().is_some_and(|c| c.is_ascii_digit()) {
                        while bytes.get(j).copied().is_some_and(|c| c.is_ascii_digit()) {
                            j += 1;
                        }
                        return Err(SqlError::Placeholder(text[start..j].to_owned(), start));
                    }
                    while bytes.get(j).copied().is_some_and(ident) {
                        j += 1;
                    }
                    if bytes.get(j) != Some(&b'$') {
                        return Err(SqlError::Placeholder(text[start..j].to_owned(), start));
                    }
                    // A dollar-quoted string: $tag$ … $tag$.
                    let tag = &text[start..=j];
                    match text[j + 1..].find(tag) {
                        Some(at) => i = j + 1 + at + tag.len(),
                        None => return Err(SqlError::Unterminated("dollar-quoted string", start)),
                    }
                }
                b'?' => return Err(SqlError::Placeholder("?".into(), i)),
                b'@' if bytes.get(i + 1).copied().is_some_and(ident_start) => {
                    let mut j = i + 1;
                    while bytes.get(j).copied().is_some_and(ident) {
                        j += 1;
                    }
                    return Err(SqlError::Placeholder(text[i..j].to_owned(), i));
                }
                b':' if bytes.get(i + 1) == Some(&b':') => i += 2,
                b':' if bytes.get(i + 1).copied().is_some_and(ident_start) => {
                    let mut j = i + 1;
                    while bytes.get(j).copied().is_some_and(ident) {
                        j += 1;
                    }
                    let name = &text[i + 1..j];
                    if RESERVED_PARAMS.contains(&name) {
                        return Err(SqlError::Reserved(name.to_owned()));
                    }
                    let index = match params.iter().position(|p| p == name) {
                        Some(index) => index,
                        None => {
                            params.push(name.to_owned());
                            params.len() - 1
                        }
                    };
                    places.push((i, j, index));
                    i = j;
                }
                b';' => {
                    end = i;
                    let rest = Self::parse(&text[i + 1..])
                        .map(|_| true)
                        .unwrap_or_else(|e| e != SqlError::Empty);
                    if rest {
                        return Err(SqlError::Statements(i));
                    }
                    break;
                }
                c if ident_start(c) => {
                    let mut j = i + 1;
                    while bytes.get(j).copied().is_some_and(ident) {
                        j += 1;
                    }
                    if first_word.is_none() {
                        first_word = Some(text[i..j].to_owned());
                    }
                    i = j;
                }
                _ => i += 1,
            }
        }
        let Some(word) = first_word else {
            return Err(SqlError::Empty);
        };
        if !word.eq_ignore_ascii_case("select") && !word.eq_ignore_ascii_case("with") {
            return Err(SqlError::NotRead(word));
        }
        if params.len() > MAX_PARAMS {
            return Err(SqlError::TooManyParams(params.len()));
        }
        Ok(Self {
            text: text[..end].to_owned(),
            places,
            params,
        })
    }

    /// The parameter names, in order of first use.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    /// The statement with each `:name` replaced by the dialect's numbered placeholder;
    /// value `n` of [`LogsSql::values`] binds to placeholder `n + 1`.
    pub fn text_for(&self, dialect: Dialect) -> String {
        let mut out = String::with_capacity(self.text.len());
        let mut at = 0;
        for &(start, end, index) in &self.places {
            out.push_str(&self.text[at..start]);
            match dialect {
                Dialect::Sqlite => out.push('?'),
                Dialect::Postgres => out.push('$'),
            }
            out.push_str(&(index + 1).to_string());
            at = end;
        }
        out.push_str(&self.text[at..]);
        out
    }

    /// The values for the parameters, in order, from an event's collector params
    /// (already rendered); every parameter needs one, and every value a parameter.
    pub fn values(
        &self,
        name: &str,
        given: &HashMap<String, String>,
    ) -> Result<Vec<String>, String> {
        if let Some(extra) = given.keys().filter(|k| !self.params.contains(k)).min() {
            return Err(format!(
                "logs query \"{name}\" takes no parameter \"{extra}\" (it takes: {})",
                if self.params.is_empty() {
                    "none".to_owned()
                } else {
                    self.params.join(", ")
                }
            ));
        }
        self.params
            .iter()
            .map(|p| {
                given.get(p).cloned().ok_or_else(|| {
                    format!("logs query \"{name}\" needs a value for :{p}: add params.{p} to the event's logs collector")
                })
            })
            .collect()
    }
}

/// The rows a query returned: column names and up to [`MAX_ROWS`] rows as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    /// Column names (empty when there was no row).
    pub columns: Vec<String>,
    /// The rows, each cell as text.
    pub rows: Vec<Vec<String>>,
}

/// One logs database.
#[derive(Debug, Clone)]
pub enum LogsSource {
    /// A SQLite file, opened read-only with `ATTACH` denied for each query.
    Sqlite(PathBuf),
    /// A PostgreSQL database, with a second small pool that cancels overdue queries.
    Postgres {
        /// Runs the queries.
        pool: sqlx::PgPool,
        /// Sends `pg_cancel_backend`: never waits behind the queries it cancels.
        cancel: sqlx::PgPool,
    },
}

impl LogsSource {
    /// A source for `url` (`sqlite:PATH` or `postgres://…`). Nothing is opened yet: a
    /// logs database that is down shows in the sections, it does not stop Tocsin.
    pub fn open(url: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            if path.is_empty() || path == ":memory:" {
                return Err(format!(
                    "the logs database \"{url}\" names no file: use sqlite://PATH"
                ));
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options: sqlx::postgres::PgConnectOptions =
                url.parse().map_err(|e: sqlx::Error| e.to_string())?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .connect_lazy_with(options.clone());
            let cancel = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options);
            Ok(Self::Postgres { pool, cancel })
        } else {
            Err("a logs database must be a sqlite: or postgres:// URL".into())
        }
    }

    fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres { .. } => Dialect::Postgres,
        }
    }
}

/// The logs databases the operator configured: one per team, and a default for the
/// teams without one.
#[derive(Debug, Clone, Default)]
pub struct LogsSources {
    default: Option<Arc<LogsSource>>,
    teams: HashMap<String, Arc<LogsSource>>,
    running: Arc<AtomicUsize>,
}

impl LogsSources {
    /// Sources from a default URL and `team=URL` pairs.
    pub fn open(default: Option<&str>, teams: &[(String, String)]) -> Result<Self, String> {
        let mut sources = Self {
            default: default.map(LogsSource::open).transpose()?.map(Arc::new),
            ..Self::default()
        };
        for (team, url) in teams {
            tocsin_model::team::check_team_name(team)?;
            let source = LogsSource::open(url).map_err(|e| format!("team \"{team}\": {e}"))?;
            if sources
                .teams
                .insert(team.clone(), Arc::new(source))
                .is_some()
            {
                return Err(format!("team \"{team}\" has two logs databases"));
            }
        }
        Ok(sources)
    }

    /// The source `team`'s queries run on: its own, else the default.
    pub fn for_team(&self, team: &str) -> Option<&LogsSource> {
        self.teams
            .get(team)
            .or(self.default.as_ref())
            .map(|source| &**source)
    }

    /// Queries still running on a SQLite source (their threads have not returned).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Runs `sql` on `team`'s source with `values` bound, stopping it on the server at
    /// `deadline` (or when this future is dropped).
    pub async fn query(
        &self,
        team: &str,
        sql: &LogsSql,
        values: Vec<String>,
        deadline: Instant,
    ) -> Result<Rows, String> {
        let source = self.for_team(team).ok_or_else(|| {
            format!(
                "no logs database is configured for team \"{team}\": the operator assigns one with --team-logs-database {team}=URL or --logs-database"
            )
        })?;
        let text = sql.text_for(source.dialect());
        let limit = deadline.saturating_duration_since(Instant::now());
        match source {
            LogsSource::Sqlite(path) => {
                let path = path.clone();
                let running = Running::start(self.running.clone());
                tokio::task::spawn_blocking(move || {
                    let _running = running;
                    sqlite_query(&path, &text, &values, deadline)
                })
                .await
                .map_err(|e| e.to_string())?
            }
            LogsSource::Postgres { pool, cancel } => {
                match tokio::time::timeout(
                    limit,
                    postgres_query(pool, cancel, &text, &values, limit),
                )
                .await
                {
                    Ok(result) => result,
                    Err(_) => Err(format!(
                        "cancelled on the server at the time limit ({} ms)",
                        limit.as_millis()
                    )),
                }
            }
        }
    }
}

/// Counts a query as running until dropped.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// SQLite: a fresh read-only connection per query (cheap, and no state carries over
/// from one team's query to another's), with no database to attach and a progress
/// handler that interrupts the statement at the deadline.
fn sqlite_query(
    path: &std::path::Path,
    text: &str,
    values: &[String],
    deadline: Instant,
) -> Result<Rows, String> {
    use rusqlite::{OpenFlags, limits::Limit};
    let failed = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::OperationInterrupted) => {
            "interrupted at the time limit: the query ran too long".to_owned()
        }
        _ => e.to_string(),
    };
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open the logs database: {e}"))?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0);
    conn.busy_timeout(deadline.saturating_duration_since(Instant::now()))
        .map_err(failed)?;
    conn.progress_handler(1_000, Some(move || Instant::now() >= deadline));
    let mut statement = conn.prepare(text).map_err(failed)?;
    if !statement.readonly() {
        return Err("the query would write: a logs query only reads".into());
    }
    if statement.parameter_count() != values.len() {
        return Err(format!(
            "the query has {} parameters but {} values",
            statement.parameter_count(),
            values.len()
        ));
    }
    for (i, value) in values.iter().enumerate() {
        statement.raw_bind_parameter(i + 1, value).map_err(failed)?;
    }
    let columns: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let width = columns.len();
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while out.len() < MAX_ROWS {
        let Some(row) = rows.next().map_err(failed)? else {
            break;
        };
        let mut cells = Vec::with_capacity(width);
        for i in 0..width {
            use rusqlite::types::ValueRef;
            cells.push(match row.get_ref(i).map_err(failed)? {
                ValueRef::Null => String::new(),
                ValueRef::Integer(n) => n.to_string(),
                ValueRef::Real(x) => x.to_string(),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Blob(b) => format!("<{} bytes>", b.len()),
            });
        }
        out.push(cells);
    }
    if out.is_empty() {
        return Ok(Rows::default());
    }
    Ok(Rows { columns, rows: out })
}

/// Cancels a PostgreSQL backend's query unless disarmed: on a timeout, or when the
/// collector's future is dropped. The connection is closed, not reused.
struct CancelGuard {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    pid: i32,
    cancel: sqlx::PgPool,
    done: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
        let (pid, cancel) = (self.pid, self.cancel.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let sent = sqlx::query("SELECT pg_cancel_backend($1)")
                    .bind(pid)
                    .execute(&cancel)
                    .await;
                match sent {
                    Ok(_) => tracing::info!(pid, "overdue logs query cancelled"),
                    Err(e) => {
                        tracing::warn!(pid, error = %e, "cannot cancel an overdue logs query")
                    }
                }
            });
        }
    }
}

/// PostgreSQL: one statement in a transaction that is always rolled back, so that what
/// a query sets (`set_config(…, false)` included) ends with it and never reaches the
/// next query on that connection.
async fn postgres_query(
    pool: &sqlx::PgPool,
    cancel: &sqlx::PgPool,
    text: &str,
    values: &[String],
    limit: Duration,
) -> Result<Rows, String> {
    use futures::TryStreamExt as _;
    use sqlx::{Column as _, Connection as _, Row as _};
    let failed = |e: sqlx::Error| match e.as_database_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    };
    let mut conn = pool.acquire().await.map_err(failed)?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .map_err(failed)?;
    let mut guard = CancelGuard {
        conn: Some(conn),
        pid,
        cancel: cancel.clone(),
        done: false,
    };
    let Some(conn) = guard.conn.as_mut() else {
        return Err("no connection".into());
    };
    let mut tx = conn.begin().await.map_err(failed)?;
    // A backstop for when the cancel cannot be sent (its connection fails): far enough
    // past the limit that the cancel, which a query cannot undo, is what stops it.
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = {}",
        (limit + STATEMENT_TIMEOUT_MARGIN).as_millis()
    ))
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    let mut query = sqlx::query(text);
    for value in values {
        query = query.bind(value.clone());
    }
    let mut rows = Vec::new();
    let mut columns = Vec::new();
    {
        let mut stream = query.fetch(&mut *tx);
        while rows.len() < MAX_ROWS {
            let Some(row) = stream.try_next().await.map_err(failed)? else {
                break;
            };
            if columns.is_empty() {
                columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
            }
            rows.push(
                (0..row.columns().len())
                    .map(|i| postgres_cell(&row, i))
                    .collect(),
            );
        }
    }
    tx.rollback().await.map_err(failed)?;
    guard.done = true;
    Ok(Rows { columns, rows })
}

/// A PostgreSQL cell as text; a type not listed here shows as `?` (cast it to text in
/// the query).
fn postgres_cell(row: &sqlx::postgres::PgRow, i: usize) -> String {
    use sqlx::Row as _;
    fn get<'r, T>(row: &'r sqlx::postgres::PgRow, i: usize) -> Option<String>
    where
        T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + ToString,
    {
        row.try_get::<Option<T>, _>(i)
            .ok()
            .map(|v| v.map(|v| v.to_string()).unwrap_or_default())
    }
    get::<String>(row, i)
        .or_else(|| get::<i64>(row, i))
        .or_else(|| get::<i32>(row, i))
        .or_else(|| get::<i16>(row, i))
        .or_else(|| get::<f64>(row, i))
        .or_else(|| get::<f32>(row, i))
        .or_else(|| get::<bool>(row, i))
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_parameters_become_numbered_placeholders() {
        let sql = LogsSql::parse(
            "SELECT line, at::text FROM logs WHERE service = :service AND line <> ':not_me' -- :nor_me\n AND host = :host OR service = :service;",
        )
        .expect("parses");
        assert_eq!(sql.params(), ["service", "host"]);
        assert_eq!(
            sql.text_for(Dialect::Postgres),
            "SELECT line, at::text FROM logs WHERE service = $1 AND line <> ':not_me' -- :nor_me\n AND host = $2 OR service = $1"
        );
        assert_eq!(
            sql.text_for(Dialect::Sqlite),
            "SELECT line, at::text FROM logs WHERE service = ?1 AND line <> ':not_me' -- :nor_me\n AND host = ?2 OR service = ?1"
        );
    }

    #[test]
    fn only_one_read_statement_with_named_parameters_is_accepted() {
        for (text, needle) in [
            ("", "empty"),
            ("   -- nothing\n", "empty"),
            ("SELECT 1; SELECT 2", "exactly one statement"),
            ("SELECT 1; DELETE FROM logs", "exactly one statement"),
            (
                "ATTACH DATABASE '/var/lib/tocsin/tocsin.db' AS t",
                "not \"ATTACH\"",
            ),
            ("DELETE FROM logs", "not \"DELETE\""),
            ("PRAGMA table_info(logs)", "not \"PRAGMA\""),
            ("SELECT * FROM logs WHERE service = ?", "placeholder \"?\""),
            (
                "SELECT * FROM logs WHERE service = $1",
                "placeholder \"$1\"",
            ),
            (
                "SELECT * FROM logs WHERE service = @service",
                "placeholder \"@service\"",
            ),
            (
                "SELECT * FROM logs WHERE service = $service",
                "placeholder \"$service\"",
            ),
            ("SELECT 'open", "unterminated string"),
            ("SELECT 1 /* open", "unterminated comment"),
            ("SELECT :query", "reserved"),
        ] {
            let error = LogsSql::parse(text).expect_err(text).to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
        assert!(matches!(
            LogsSql::parse(&format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES))),
            Err(SqlError::TooLong(_))
        ));
        for text in [
            "SELECT 1;",
            "WITH r AS (SELECT 1) SELECT * FROM r; -- done",
            "select $$it's; :not_a_param$$ AS x",
            "SELECT E'a\\'; b' AS x",
            "/* a /* nested */ comment */ SELECT \"a;b\" FROM t",
        ] {
            LogsSql::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn every_parameter_needs_a_value_and_every_value_a_parameter() {
        let sql = LogsSql::parse("SELECT 1 WHERE :a = :b").expect("parses");
        let given = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(
            sql.values("q", &given(&[("b", "2"), ("a", "1")])),
            Ok(vec!["1".to_owned(), "2".to_owned()])
        );
        let missing = sql.values("q", &given(&[("a", "1")])).expect_err("missing");
        assert!(missing.contains("needs a value for :b"), "{missing}");
        let extra = sql
            .values("q", &given(&[("a", "1"), ("b", "2"), ("c", "3")]))
            .expect_err("extra");
        assert!(extra.contains("takes no parameter \"c\""), "{extra}");
    }

    #[tokio::test]
    async fn a_sqlite_source_refuses_attach_and_interrupts_a_query_at_its_deadline() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("logs.db");
        {
            let conn = rusqlite::Connection::open(&path).expect("create");
            conn.execute_batch("CREATE TABLE logs (line TEXT); INSERT INTO logs VALUES ('a');")
                .expect("setup");
        }
        let url = format!("sqlite://{}", path.display());
        let sources = LogsSources::open(Some(&url), &[]).expect("open");
        let soon = || Instant::now() + Duration::from_secs(2);
        // Registration refuses ATTACH; a statement that got past it still cannot attach.
        let attach = LogsSql {
            text: format!("ATTACH DATABASE '{}' AS t", path.display()),
            places: Vec::new(),
            params: Vec::new(),
        };
        let error = sources
            .query("bender", &attach, Vec::new(), soon())
            .await
            .expect_err("attach refused");
        assert!(error.contains("too many attached databases"), "{error}");
        let forever = LogsSql::parse(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        )
        .expect("parses");
        let started = Instant::now();
        let error = sources
            .query(
                "bender",
                &forever,
                Vec::new(),
                Instant::now() + Duration::from_millis(300),
            )
            .await
            .expect_err("interrupted");
        assert!(error.contains("interrupted at the time limit"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(sources.running(), 0);
    }
}
