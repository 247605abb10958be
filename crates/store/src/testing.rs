//! A throw-away PostgreSQL server for tests: Debian's `postgresql` binaries, `initdb` in a
//! temporary folder, listening on a free loopback port (password login) and on a Unix socket
//! in that folder, gone with the folder when the test process ends, even when it is killed.
//!
//! Owns: starting, describing and stopping such a server, and fresh databases on it. Does not
//! own: anything the product does (behind the `testing` feature, for tests only).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::StoreLocation;

/// The login every test server has.
pub const USER: &str = "actiscope";

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running PostgreSQL server. Dropping it stops it and removes its folder.
pub struct TestPostgres {
    port: u16,
    password: String,
    folder: PathBuf,
    child: Child,
    /// The keeper shell stops the server and removes its folder when this pipe closes (when
    /// this is dropped, or when the process ends in any way).
    keeper: Option<ChildStdin>,
}

/// Why a test server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start a test PostgreSQL server: {0}")]
pub struct TestPostgresError(String);

fn fail(what: impl std::fmt::Display) -> TestPostgresError {
    TestPostgresError(what.to_string())
}

/// Debian's PostgreSQL binaries (`/usr/lib/postgresql/<version>/bin`, the newest), else the
/// folder of an `initdb` on `PATH`.
pub fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).or_else(|| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).find(|dir| dir.join("initdb").exists()))
    })
}

/// Whether this process runs as root (`initdb` refuses to; the server then runs as the
/// `postgres` user Debian's package creates).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A command that runs `program` as the server's user.
fn as_server_user(program: &Path, root: bool) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl TestPostgres {
    /// One server shared by every test of this process (started on first use).
    pub fn shared() -> Result<&'static Self, TestPostgresError> {
        static SHARED: OnceLock<Result<TestPostgres, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start(false).map_err(|e| e.0))
            .as_ref()
            .map_err(|e| TestPostgresError(e.clone()))
    }

    /// Starts a server of its own. `durable`: PostgreSQL's default `fsync` and synchronous
    /// commits, for benchmarks; otherwise both off, which tests do not need and which are slow.
    pub fn start(durable: bool) -> Result<Self, TestPostgresError> {
        let bin = bin_dir().ok_or_else(|| {
            fail("no initdb (install Debian's `postgresql`; `cargo xtask test` does)")
        })?;
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let folder = std::env::temp_dir().join(format!(
            "actiscope-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).map_err(fail)?;
        let password = format!("pw-{}-{}", std::process::id(), crate::now_unix_ms());
        std::fs::write(folder.join("password"), &password).map_err(fail)?;
        let root = is_root();
        if root {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&folder)
                .status()
                .map_err(fail)?;
            if !chown.success() {
                return Err(fail("chown to the postgres user failed (does it exist?)"));
            }
        }
        let data = folder.join("data");
        let initdb = as_server_user(&bin.join("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", folder.join("password").display()))
            .output()
            .map_err(fail)?;
        if !initdb.status.success() {
            let _ = std::fs::remove_dir_all(&folder);
            return Err(fail(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&initdb.stderr)
            )));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(fail)?
            .port();
        let settings = if durable {
            String::new()
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off".to_owned()
        };
        // The keeper: starts the server, waits for its stdin to close, then stops the server
        // (fast shutdown) and removes the folder.
        let script = format!(
            "\"$1/postgres\" -D \"$2/data\" -p {port} -k \"$2\" -c listen_addresses=127.0.0.1 \
             -c max_connections=200 {settings} >\"$2/log\" 2>&1 & pid=$!; \
             cat >/dev/null; kill -INT $pid; wait $pid; rm -rf \"$2\""
        );
        let mut child = as_server_user(Path::new("sh"), root)
            .args(["-c", &script, "sh"])
            .arg(&bin)
            .arg(&folder)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(fail)?;
        let keeper = child.stdin.take();
        let server = Self {
            port,
            password,
            folder,
            child,
            keeper,
        };
        server.wait_until_ready()?;
        Ok(server)
    }

    fn wait_until_ready(&self) -> Result<(), TestPostgresError> {
        let started = Instant::now();
        let admin = self.admin_config()?;
        loop {
            match crate::postgres::off_runtime(|| admin.connect(postgres::NoTls).map(drop)) {
                Ok(_) => return Ok(()),
                Err(err) if started.elapsed() > START_TIMEOUT => {
                    let mut log = String::new();
                    let _ = std::fs::File::open(self.folder.join("log"))
                        .and_then(|mut f| f.read_to_string(&mut log));
                    return Err(fail(format!(
                        "not ready after {START_TIMEOUT:?}: {err}\n{log}"
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Settings of a connection to its `postgres` database, to create and end things.
    fn admin_config(&self) -> Result<postgres::Config, TestPostgresError> {
        match self.location("postgres") {
            StoreLocation::Postgres(url) => Ok(url.config()),
            StoreLocation::File(_) => Err(fail("not a PostgreSQL location")),
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password of [`USER`] (TCP logins need it; the socket trusts).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The folder holding its Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.folder
    }

    /// `postgres://actiscope:<password>@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// [`url`](Self::url), parsed.
    pub fn location(&self, database: &str) -> StoreLocation {
        // A URL this module writes always parses.
        self.url(database)
            .parse()
            .unwrap_or_else(|_| StoreLocation::File(PathBuf::from("unreachable")))
    }

    /// A new, empty database; returns its name.
    pub fn fresh_database(&self) -> Result<String, TestPostgresError> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = self.admin_config()?;
        crate::postgres::off_runtime(|| {
            let mut client = admin.connect(postgres::NoTls)?;
            client.batch_execute(&format!("CREATE DATABASE {name}"))
        })
        .map_err(fail)?;
        Ok(name)
    }
}

impl TestPostgres {
    /// Ends every session on `database` (as a database restart or a network cut would, seen
    /// from the clients); returns how many it ended.
    pub fn cut_connections(&self, database: &str) -> Result<usize, TestPostgresError> {
        let admin = self.admin_config()?;
        let rows = crate::postgres::off_runtime(|| {
            let mut client = admin.connect(postgres::NoTls)?;
            client.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
        })
        .map_err(fail)?;
        Ok(rows.len())
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        drop(self.keeper.take());
        let _ = self.child.wait();
    }
}
