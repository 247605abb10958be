//! Where a store lives: a SQLite file (a path) or a PostgreSQL database (a `postgres://` URL).
//!
//! Owns: telling the two apart, checking a URL before anything connects, finding its password
//! (in the URL, `PGPASSWORD`, or `PGPASSFILE`/`~/.pgpass` as libpq reads them) and showing
//! a location to people without its password. Does not own: connecting or any query.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::config::Host;

/// How long connecting to a PostgreSQL server may take before it is a clear error (unless the
/// URL says `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A store's location, parsed from what `--store` was given.
#[derive(Clone)]
pub enum StoreLocation {
    /// A SQLite file (created when missing).
    File(PathBuf),
    /// A PostgreSQL database.
    Postgres(PostgresUrl),
}

/// A checked `postgres://` URL. Its `Display` and `Debug` never show the password.
#[derive(Clone)]
pub struct PostgresUrl {
    config: Box<postgres::Config>,
}

/// Why a `--store` value is not a store location.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LocationError(String);

impl StoreLocation {
    /// The SQLite file, when this is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            Self::Postgres(_) => None,
        }
    }
}

impl From<&Path> for StoreLocation {
    fn from(path: &Path) -> Self {
        Self::File(path.to_path_buf())
    }
}

impl From<PathBuf> for StoreLocation {
    fn from(path: PathBuf) -> Self {
        Self::File(path)
    }
}

impl FromStr for StoreLocation {
    type Err = LocationError;

    /// A `postgres://` or `postgresql://` URL is a PostgreSQL database; anything else is a
    /// path.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return PostgresUrl::parse(text).map(Self::Postgres);
        }
        if text.is_empty() {
            return Err(LocationError(
                "the store is empty: give a file path or a postgres:// URL".to_owned(),
            ));
        }
        Ok(Self::File(PathBuf::from(text)))
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

impl PartialEq for StoreLocation {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::File(a), Self::File(b)) => a == b,
            // Same server, database and user (a password does not make another store).
            (Self::Postgres(a), Self::Postgres(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

impl PostgresUrl {
    /// Checks `url` (without connecting). The error never repeats the URL, which may hold a
    /// password.
    fn parse(url: &str) -> Result<Self, LocationError> {
        let mut config = postgres::Config::from_str(url).map_err(|err| {
            LocationError(format!("the store is not a valid PostgreSQL URL: {err}"))
        })?;
        if config.get_hosts().is_empty() {
            return Err(LocationError(
                "the PostgreSQL URL names no host (postgres://user@host:port/database, or \
                 ?host=/run/postgresql for a Unix socket)"
                    .to_owned(),
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("actiscope");
        }
        Ok(Self {
            config: Box::new(config),
        })
    }

    /// The connection settings, with the password filled in from `PGPASSWORD` or the password
    /// file when the URL has none.
    pub(crate) fn config(&self) -> postgres::Config {
        let mut config = (*self.config).clone();
        if config.get_password().is_none()
            && let Some(password) = password_from_environment(&config)
        {
            config.password(password);
        }
        config
    }
}

/// The user a connection of `config` logs in as: the URL's, else this process's login name
/// (which the client uses when the URL names none).
fn login_user(config: &postgres::Config) -> String {
    config
        .get_user()
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default()
}

impl fmt::Display for PostgresUrl {
    /// `postgres://user@host:port/database`: never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .zip(
                self.config
                    .get_ports()
                    .iter()
                    .chain(std::iter::repeat(&5432)),
            )
            .map(|(host, port)| match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("[{}]:{port}", dir.display()),
            })
            .collect();
        write!(
            f,
            "postgres://{}@{}/{}",
            login_user(&self.config),
            hosts.join(","),
            self.config.get_dbname().unwrap_or("")
        )
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

/// `PGPASSWORD`, else the matching line of `PGPASSFILE` (or `~/.pgpass`).
fn password_from_environment(config: &postgres::Config) -> Option<String> {
    if let Ok(password) = std::env::var("PGPASSWORD") {
        return Some(password);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
    let contents = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first()? {
        Host::Tcp(name) => name.clone(),
        // libpq matches a socket connection against "localhost".
        Host::Unix(_) => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = login_user(config);
    let database = config.get_dbname().unwrap_or(&user).to_owned();
    pgpass_lookup(&contents, [&host, &port.to_string(), &database, &user])
}

/// The password of the first line of a libpq password file whose `host:port:database:user`
/// matches `wanted` (`*` matches anything; `\:` and `\\` escape), as libpq reads it.
fn pgpass_lookup(contents: &str, wanted: [&str; 4]) -> Option<String> {
    contents
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass_line(line);
            let (keys, password) = fields.split_at_checked(4)?;
            let matches = keys
                .iter()
                .zip(wanted)
                .all(|(key, want)| key == "*" || key == want);
            matches.then(|| password.first().cloned()).flatten()
        })
}

/// The `:`-separated fields of one password-file line, unescaped.
fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(field)) = (chars.next(), fields.last_mut()) {
                    field.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls_are_told_apart_and_bad_urls_are_clear() {
        assert_eq!(
            "runs.db".parse::<StoreLocation>().ok(),
            Some(StoreLocation::File(PathBuf::from("runs.db")))
        );
        let url: StoreLocation = "postgres://lab:s3cret@db.example:5433/actiscope"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(url.file().is_none());
        assert_eq!(url.to_string(), "postgres://lab@db.example:5433/actiscope");
        assert!(!format!("{url:?}").contains("s3cret"));
        let socket: StoreLocation = "postgresql://lab@%2Frun%2Fpostgresql/runs"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            socket.to_string(),
            "postgres://lab@[/run/postgresql]:5432/runs"
        );
        for bad in [
            "postgres://lab:s3cret@db:notaport/x",
            "postgres://lab:s3cret@db/x?sslmode=sometimes",
        ] {
            let err = bad.parse::<StoreLocation>().err().map(|e| e.to_string());
            let err = err.unwrap_or_else(|| panic!("{bad} parsed"));
            assert!(err.contains("not a valid PostgreSQL URL"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        assert!("".parse::<StoreLocation>().is_err());
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let file = "# comment\n\
                    other:5432:*:lab:wrong\n\
                    db.example:5433:runs:lab:right\\:one\n\
                    *:*:*:lab:fallback\n";
        let find = |host: &str, port: &str| pgpass_lookup(file, [host, port, "runs", "lab"]);
        assert_eq!(find("db.example", "5433").as_deref(), Some("right:one"));
        assert_eq!(find("db.example", "5432").as_deref(), Some("fallback"));
        assert_eq!(pgpass_lookup(file, ["x", "1", "runs", "someone"]), None);
    }
}
