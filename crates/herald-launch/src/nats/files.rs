//! Where nats-server and its config files are: the binary lookup, `deploy/nats/*.conf`, and
//! the private copy of a config whose `store_dir` points at the server's own store.

use std::path::{Path, PathBuf};

/// The workspace root (where `Cargo.toml`, `deploy/` and `.venv/` live), as built.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

/// A file under the workspace's `deploy/nats/`.
pub fn deploy_conf(name: &str) -> PathBuf {
    workspace_root().join("deploy/nats").join(name)
}

/// The `nats-server` binary: `$HERALD_NATS_SERVER`, else `./.venv/bin/nats-server`, else the
/// workspace's `.venv/bin/nats-server` (what the README's commands install), else
/// `nats-server` on `PATH`; `None` if there is none.
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HERALD_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let local = [
        PathBuf::from(".venv/bin/nats-server"),
        workspace_root().join(".venv/bin/nats-server"),
    ];
    if let Some(found) = local.into_iter().find(|p| p.is_file()) {
        return Some(found);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
    })
}

/// Copies `config` and the other `*.conf` files of its directory (its includes) into a temp
/// dir, with the main file's `store_dir:` set to `store` (nats-server refuses `-sd` next to a
/// `store_dir`). Returns the dir (deleted on drop) and the copied main file.
pub fn copy_config(config: &Path, store: &Path) -> std::io::Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("herald-nats-conf-")
        .tempdir()?;
    let src = config.parent().unwrap_or(Path::new("."));
    for entry in std::fs::read_dir(src)? {
        let path = entry?.path();
        if let (Some(name), true) = (
            path.file_name(),
            path.extension().is_some_and(|e| e == "conf"),
        ) {
            std::fs::copy(&path, dir.path().join(name))?;
        }
    }
    let text = std::fs::read_to_string(config)?;
    let store_line = format!("  store_dir: \"{}\"", store.display());
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("store_dir:") {
                store_line.clone()
            } else {
                l.to_owned()
            }
        })
        .collect();
    let main = dir
        .path()
        .join(config.file_name().unwrap_or("nats.conf".as_ref()));
    std::fs::write(&main, text.join("\n"))?;
    Ok((dir, main))
}
