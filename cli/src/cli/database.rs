//! The `--database-url` option of the commands that open the database themselves.

/// Where the database is: shared by `serve`, `token` and `migrate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Database {
    /// sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://tocsin.db"
    )]
    pub(crate) database_url: String,
}
