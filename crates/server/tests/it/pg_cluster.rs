//! A PostgreSQL cluster of the test's own — `initdb` and `pg_ctl` from the machine's PostgreSQL
//! binaries, on a free loopback port, in a temporary directory — to stop, start, replicate and
//! promote. The shared server on 5432 is never touched. Run as root (as CI does), the cluster
//! runs as the `postgres` user, since PostgreSQL refuses to run as root.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The user a cluster's processes run as.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// What a cluster needs of the machine: PostgreSQL's binaries, and who runs them.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
    run_as: Option<RunAs>,
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn id(args: &[&str]) -> Option<u32> {
    let output = Command::new("id").args(args).output().ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

impl Binaries {
    /// The machine's PostgreSQL binaries (`pg_config --bindir`, else the newest
    /// `/usr/lib/postgresql/*/bin`), or `None` with a message — a failure under
    /// `CROSSPOOL_REQUIRE_POSTGRES=1`.
    pub fn find() -> Option<Binaries> {
        let from_pg_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
        let mut candidates: Vec<PathBuf> = from_pg_config.into_iter().collect();
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin"))
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev());
        let dir = candidates
            .into_iter()
            .find(|dir| ["initdb", "pg_ctl", "pg_basebackup"].iter().all(|b| dir.join(b).exists()));
        let run_as = match id(&["-u"]) {
            Some(0) => match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
                (Some(uid), Some(gid)) => Some(RunAs { uid, gid }),
                _ => return skip("running as root, and there is no postgres user to run it as"),
            },
            _ => None,
        };
        match dir {
            Some(dir) => Some(Binaries { dir, run_as }),
            None => skip("initdb, pg_ctl and pg_basebackup were not found"),
        }
    }

    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(self.dir.join(binary));
        if let Some(run_as) = self.run_as {
            command.uid(run_as.uid).gid(run_as.gid);
        }
        // Not the shared server's settings.
        command.env_remove("PGDATA").env_remove("PGPORT").env_remove("PGHOST");
        command
    }

    /// Runs a binary to its end; panics with its output if it fails.
    fn run(&self, binary: &str, args: &[&str]) -> String {
        let output = self.command(binary).args(args).output().unwrap();
        assert!(output.status.success(), "{binary} {args:?} failed: {}", text(&output));
        text(&output)
    }

    /// A directory the cluster's user may write in.
    fn own(&self, path: &Path) {
        if let Some(run_as) = self.run_as {
            std::os::unix::fs::chown(path, Some(run_as.uid), Some(run_as.gid)).unwrap();
        }
    }
}

fn skip(reason: &str) -> Option<Binaries> {
    if std::env::var("CROSSPOOL_REQUIRE_POSTGRES").is_ok_and(|value| value == "1") {
        panic!("CROSSPOOL_REQUIRE_POSTGRES=1 but no PostgreSQL cluster can be run here: {reason}");
    }
    eprintln!("skipping: no PostgreSQL cluster can be run here: {reason}");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One PostgreSQL server (a primary or a standby) in a directory of its own.
pub struct Cluster {
    binaries: Binaries,
    data: PathBuf,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop_immediately_quietly();
    }
}

impl Cluster {
    fn with_dir(binaries: &Binaries) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        binaries.own(dir.path());
        let data = dir.path().join("data");
        (dir, data)
    }

    /// A new primary, started, that keeps commits until one synchronous standby has them when
    /// `synchronous` (so that a promoted standby has every acknowledged commit).
    pub fn primary(binaries: &Binaries, synchronous: bool) -> Cluster {
        let (dir, data) = Cluster::with_dir(binaries);
        let data_text = data.to_str().unwrap();
        binaries.run(
            "initdb",
            &["-D", data_text, "-U", "crosspool", "--auth=trust", "-E", "UTF8", "--no-sync"],
        );
        let port = free_port();
        let mut settings = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 100\nwal_level = replica\nmax_wal_senders = 4\nfsync = on\n"
        );
        if synchronous {
            settings.push_str("synchronous_standby_names = '*'\nsynchronous_commit = on\n");
        }
        append(&data.join("postgresql.conf"), &settings);
        let cluster = Cluster { binaries: binaries.clone(), data, port, _dir: dir };
        cluster.start();
        cluster
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started.
    pub fn standby_of(primary: &Cluster) -> Cluster {
        let binaries = &primary.binaries;
        let (dir, data) = Cluster::with_dir(binaries);
        let port = primary.port.to_string();
        binaries.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "crosspool",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        // Once promoted it has no standby of its own to wait for: it commits alone, as a
        // primary whose standby is gone must (or an operator's tool sets a new one up).
        let port = free_port();
        append(
            &data.join("postgresql.conf"),
            &format!("\nport = {port}\nsynchronous_standby_names = ''\n"),
        );
        let cluster = Cluster { binaries: binaries.clone(), data, port, _dir: dir };
        cluster.start();
        cluster
    }

    fn pg_ctl(&self, args: &[&str]) -> String {
        let log = self.data.with_file_name("server.log");
        let mut all = vec!["-D", self.data.to_str().unwrap(), "-l", log.to_str().unwrap()];
        all.extend_from_slice(args);
        self.binaries.run("pg_ctl", &all)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        self.pg_ctl(&["-w", "-t", "60", "start"]);
    }

    /// Stops the server as a crash would: `pg_ctl stop -m immediate`.
    pub fn stop_immediately(&self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
    }

    fn stop_immediately_quietly(&self) -> std::io::Result<Output> {
        self.binaries
            .command("pg_ctl")
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output()
    }

    /// Promotes a standby to a primary and waits until it is one.
    pub fn promote(&self) {
        self.pg_ctl(&["-w", "-t", "60", "promote"]);
    }

    /// A URL for this server alone.
    pub fn url(&self) -> String {
        format!("postgres://crosspool@127.0.0.1:{}/postgres", self.port)
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}
