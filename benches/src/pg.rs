//! A throwaway PostgreSQL cluster on loopback (port 54329), the peer of the benchmarks.
//! PostgreSQL refuses to run as root, so its programs run as the `postgres` user.
// Shared by the benchmark binaries; each uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

pub const PORT: &str = "54329";

pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
}

fn ok(c: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = c.output().with_context(|| what.to_owned())?;
    if !out.status.success() {
        bail!("{what}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Postgres {
    /// initdb in `work/pgdata` and start the server (fsync and synchronous_commit on, the defaults).
    pub fn start(work: &Path) -> anyhow::Result<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (scripts/bench installs it)")?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .context("no initdb under /usr/lib/postgresql")?;
        let data = work.join("pgdata");
        std::fs::create_dir_all(&data)?;
        Command::new("chown").args(["-R", "postgres:postgres"]).arg(work).status()?;
        let pg = Postgres { bin, data };
        ok(pg.command("initdb").args(["-D"]).arg(&pg.data).args(["-A", "trust", "-U", "postgres"]), "initdb")?;
        // The server's output goes to a log file: a server holding our pipes would never let go.
        let log = work.join("postgres.log");
        ok(
            pg.command("pg_ctl")
                .args(["-D"])
                .arg(&pg.data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &format!("-p {PORT} -k /tmp -c listen_addresses=127.0.0.1 -c max_wal_size=4GB -c max_connections=200"), "-w", "start"])
                .stdin(Stdio::null()),
            "pg_ctl start",
        )?;
        Ok(pg)
    }

    /// One of PostgreSQL's programs, run as the postgres user.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(self.bin.join(program));
        c
    }

    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        ok(self.command("psql").args(["-h", "127.0.0.1", "-p", PORT, "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]), sql)
    }

    pub fn run(&self, c: &mut Command, what: &str) -> anyhow::Result<String> {
        ok(c, what)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.command("pg_ctl").args(["-D"]).arg(&self.data).args(["-m", "fast", "stop"]).stdout(Stdio::null()).status();
    }
}
