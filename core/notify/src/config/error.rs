//! What is wrong with a notifiers file.

/// What is wrong with a notifiers file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML, or a field is wrong.
    #[error("invalid notifiers file: {0}")]
    Invalid(String),
    /// `${env:NAME}` names an unset variable.
    #[error("notifiers file: environment variable {0} is not set")]
    MissingEnv(String),
}
