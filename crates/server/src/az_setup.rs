//! `crosspool az-setup`: the lines that point an az CLI at a running crosspool — register the
//! cloud by its ARM endpoint (the CLI reads `/metadata/endpoints` from it), select it, turn off
//! instance discovery, and trust the server's CA — printed, and with `--apply` run.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

/// The commands for `endpoint` (e.g. `https://127.0.0.1:8443`) and the CA certificate at `ca`.
pub fn commands(endpoint: &str, ca: &Path) -> (Vec<Vec<String>>, String) {
    let endpoint = format!("{}/", endpoint.trim_end_matches('/'));
    let az = |args: &[&str]| args.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
    let commands = vec![
        az(&[
            "az",
            "cloud",
            "register",
            "-n",
            "crosspool",
            "--endpoint-resource-manager",
            &endpoint,
        ]),
        az(&["az", "cloud", "set", "-n", "crosspool"]),
        az(&["az", "config", "set", "core.instance_discovery=false"]),
    ];
    (commands, format!("export REQUESTS_CA_BUNDLE={}", ca.display()))
}

/// The endpoint a data directory's server announced in `demo.json`, if it has one.
pub fn endpoint_of(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("demo.json")).ok()?;
    let demo: serde_json::Value = serde_json::from_str(&text).ok()?;
    demo["endpoint"].as_str().map(str::to_owned)
}

/// The set-up for the server of `data_dir` (or at `endpoint`): the az commands and the export
/// line that trusts its CA.
pub fn plan(
    data_dir: &Path,
    endpoint: Option<String>,
) -> anyhow::Result<(Vec<Vec<String>>, String)> {
    let endpoint = endpoint
        .or_else(|| endpoint_of(data_dir))
        .unwrap_or_else(|| "https://127.0.0.1:8443".to_owned());
    let ca = data_dir.join("tls").join("ca.pem");
    let ca = std::path::absolute(&ca).unwrap_or(ca);
    if !ca.exists() {
        anyhow::bail!(
            "no CA certificate at {}: start `crosspool serve` with this --data-dir first",
            ca.display()
        );
    }
    Ok(commands(&endpoint, &ca))
}

/// How to run the az CLI: the program and its first arguments (`["az"]`, or a Python with
/// `-m azure.cli`), and environment variables for it.
#[derive(Debug, Clone)]
pub struct AzProgram {
    pub program: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Default for AzProgram {
    fn default() -> AzProgram {
        AzProgram { program: vec!["az".to_owned()], env: Vec::new() }
    }
}

/// Runs the az commands, trusting the CA of the export line (registering reads the server's
/// metadata); a cloud registered before is updated to the endpoint instead.
pub fn apply(commands: &[Vec<String>], export: &str, az: &AzProgram) -> anyhow::Result<()> {
    let ca = export.split_once('=').map_or("", |(_, path)| path).to_owned();
    let run_az = |command: &[String]| -> anyhow::Result<bool> {
        let (program, first) = az.program.split_first().context("no az program given")?;
        let output = Command::new(program)
            .args(first)
            .args(&command[1..])
            .env("REQUESTS_CA_BUNDLE", &ca)
            .envs(az.env.iter().map(|(name, value)| (name, value)))
            .output()
            .with_context(|| format!("running {program} (is the az CLI installed and on PATH?)"))?;
        Ok(output.status.success())
    };
    for command in commands {
        if run_az(command)? {
            continue;
        }
        let registering =
            command.get(1..3) == Some(&["cloud".to_owned(), "register".to_owned()][..]);
        let mut update = command.clone();
        update[2] = "update".to_owned();
        if !registering || !run_az(&update)? {
            anyhow::bail!("`{}` failed", command.join(" "));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_name_the_endpoint_with_a_slash_and_the_ca() {
        let (commands, export) = commands("https://127.0.0.1:8443", Path::new("/data/tls/ca.pem"));
        assert_eq!(commands[0].last().unwrap(), "https://127.0.0.1:8443/");
        assert_eq!(commands[2].join(" "), "az config set core.instance_discovery=false");
        assert_eq!(export, "export REQUESTS_CA_BUNDLE=/data/tls/ca.pem");
    }
}
