//! `--config FILE` for the server binaries: a TOML file whose keys are the flags, spelled
//! with `_` for `-` (`listen`, `data_dir`, `beacon_interval_ms`, ...). Its keys become
//! flags placed before the command line's, and the binaries let a later flag override an
//! earlier one, so a flag given on the command line wins over the file. An unknown key, or
//! a value that is not a string, number, boolean or list, is an error naming it.

use std::ffi::OsString;
use std::path::Path;

/// The process's arguments with `--config FILE` replaced by the file's keys as flags, in
/// front of the other arguments (argument 0 stays first).
pub fn args_with_config(cmd: &clap::Command, args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut rest = Vec::with_capacity(args.len());
    let mut file = None;
    let mut iter = args.into_iter();
    let program = iter.next();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--config" {
            file = Some(iter.next().ok_or("--config needs a FILE")?);
        } else if let Some(path) = text.strip_prefix("--config=") {
            file = Some(OsString::from(path));
        } else {
            rest.push(arg);
        }
    }
    let mut out: Vec<OsString> = program.into_iter().collect();
    if let Some(file) = file {
        out.extend(flags_from_file(cmd, Path::new(&file))?);
    }
    out.extend(rest);
    Ok(out)
}

/// The flags a config file stands for.
fn flags_from_file(cmd: &clap::Command, path: &Path) -> Result<Vec<OsString>, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{name} is not TOML: {e}"))?;
    let known: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !["config", "help", "version"].contains(l))
        .map(|l| l.replace('-', "_"))
        .collect();
    let mut flags = Vec::new();
    for (key, value) in &table {
        if !known.contains(key) {
            return Err(format!(
                "{name}: unknown key '{key}' (the keys are the flags, with _ for -: {})",
                known.join(", ")
            ));
        }
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(format!(
                    "{name}: key '{key}' has a {} value",
                    other.type_str()
                ));
            }
        };
        flags.push(OsString::from(format!("--{}", key.replace('_', "-"))));
        flags.push(OsString::from(value));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn cmd() -> Command {
        Command::new("x")
            .args_override_self(true)
            .arg(Arg::new("listen").long("listen"))
            .arg(Arg::new("data-dir").long("data-dir"))
            .arg(Arg::new("grace-ms").long("grace-ms"))
            .arg(Arg::new("meta").long("meta").value_delimiter(','))
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn keys_become_flags_and_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1\"\ngrace_ms = 5000\nmeta = [\"a:1\", \"b:2\"]\n",
        )
        .unwrap();
        let argv = args_with_config(
            &cmd(),
            args(&[
                "x",
                "--config",
                file.to_str().unwrap(),
                "--grace-ms",
                "7000",
            ]),
        )
        .unwrap();
        let m = cmd().try_get_matches_from(argv).unwrap();
        assert_eq!(m.get_one::<String>("listen").unwrap(), "127.0.0.1:1");
        assert_eq!(
            m.get_one::<String>("grace-ms").unwrap(),
            "7000",
            "the flag wins"
        );
        let meta: Vec<&String> = m.get_many::<String>("meta").unwrap().collect();
        assert_eq!(meta, ["a:1", "b:2"]);
    }

    #[test]
    fn an_unknown_key_or_a_bad_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err =
            args_with_config(&cmd(), args(&["x", "--config", file.to_str().unwrap()])).unwrap_err();
        assert!(err.contains("unknown key 'lisen'"), "{err}");
        std::fs::write(&file, "listen = \n").unwrap();
        let err =
            args_with_config(&cmd(), args(&["x", "--config", file.to_str().unwrap()])).unwrap_err();
        assert!(err.contains("is not TOML"), "{err}");
        let missing = args_with_config(&cmd(), args(&["x", "--config"])).unwrap_err();
        assert!(missing.contains("needs a FILE"));
    }
}
