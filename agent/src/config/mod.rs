//! The agent's configuration, `/etc/pisek/agent.toml`.
//!
//! Loading has two stages, so that an operator sees every mistake at once:
//! 1. [`Config::parse`] turns TOML into the typed schema ([`schema`]). Unknown
//!    fields are rejected there, with the line and column of the offending key.
//! 2. [`Config::validate`] checks the whole config for consistency (addresses
//!    inside their networks, unique names and ids, keys that look like keys) and
//!    returns one [`Problem`] per mistake ([`validate`]).
//!
//! Every field is documented in `docs/config.md`. [`fixture`] builds
//! configs for tests and labs.

pub mod fixture;
mod schema;
mod validate;

pub use schema::{
    ApiConfig, BgpConfig, BgpNeighbor, Config, DataplaneConfig, LogConfig, LogFormat,
    MAX_TENANT_ID, MAX_TUN_QUEUE_LEN, MAX_WORKERS, MetricsConfig, NodeConfig, Role, StateConfig,
    TENANT_RULE_PRIORITY_BASE, TENANT_TABLE_BASE, TenantConfig, TunnelConfig, UnderlayConfig,
    WireguardConfig, WireguardPeer,
};
pub use validate::Problem;

use std::path::Path;
use thiserror::Error;

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or does not fit the schema (unknown field, wrong type).
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file (or `<string>`).
        path: String,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, as the TOML decoder says it.
        message: String,
    },
    /// The config parsed but is inconsistent; one problem per entry.
    #[error("{} problem(s) in {path}:\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file.
        path: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// One line per problem, each prefixed with the file name, for printing
    /// to stderr before exiting.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { path, problems } => {
                problems.iter().map(|p| format!("{path}: {p}")).collect()
            }
            other => vec![other.to_string()],
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: name.clone(),
            source,
        })?;
        let config = Config::parse(&text, &name)?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: name,
                problems,
            })
        }
    }

    /// Parses TOML text without validating it. `origin` names the source in
    /// error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Syntax {
                path: origin.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })
    }

    /// Checks the whole config; an empty list means it is usable.
    pub fn validate(&self) -> Vec<Problem> {
        validate::validate(self)
    }

    /// The tenant with this name, if configured.
    pub fn tenant(&self, name: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// The tenant a Kubernetes namespace maps to, if any.
    pub fn tenant_for_namespace(&self, namespace: &str) -> Option<&TenantConfig> {
        self.tenants
            .iter()
            .find(|t| t.namespaces.iter().any(|n| n == namespace))
    }
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
