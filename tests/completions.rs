//! The completion scripts in `completions/` are generated from the verb registry; this
//! test regenerates them and fails when the committed files are stale. Refresh them with
//! `UPDATE_GOLDENFILES=1 cargo test completions`.

use std::path::Path;

use crate::util::shell;

#[test]
fn completion_scripts_match_the_command_tree() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    let update = std::env::var_os("UPDATE_GOLDENFILES").is_some();
    for (shell_name, file) in [
        ("bash", "shell.bash"),
        ("zsh", "_shell"),
        ("fish", "shell.fish"),
    ] {
        let generated = shell(&["--completions", shell_name], None).ok().to_string();
        assert!(
            generated.contains("set_meta_level"),
            "{shell_name} script lists the verbs"
        );
        let path = dir.join(file);
        if update {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "{} is missing: run UPDATE_GOLDENFILES=1 cargo test",
                path.display()
            )
        });
        assert!(
            committed == generated,
            "{} is stale: run UPDATE_GOLDENFILES=1 cargo test completions and commit it",
            path.display()
        );
    }
}
