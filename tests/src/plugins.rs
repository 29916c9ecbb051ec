//! The guest plugins of `plugins/`, built once per test run for wasm32-wasip2 (as
//! Wasmtime's `test-programs` are) and handed to tests as bytes.
//!
//! Each package is built by its own `cargo build -p`: a plugin enables exactly one kind
//! feature of the SDK, and building them together would unify the features.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Every buildable plugin package under `plugins/examples` and `plugins/hostile`.
fn packages(root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for group in ["examples", "hostile"] {
        let Ok(entries) = std::fs::read_dir(root.join(group)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.path().join("Cargo.toml").is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    names
}

fn build_all() -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let root = crate::workspace().join("plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut built = BTreeMap::new();
    for name in packages(&root) {
        let status = Command::new(&cargo)
            .current_dir(&root)
            .args([
                "build",
                "--quiet",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                &name,
            ])
            // Settings of the outer cargo (a test's target dir, its rustflags) are not
            // the guests'.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()?;
        anyhow::ensure!(status.success(), "building plugin {name} failed");
        let file = root
            .join("target/wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        anyhow::ensure!(file.is_file(), "plugin {name} built no {}", file.display());
        built.insert(name, file);
    }
    Ok(built)
}

/// Paths of the built components by package name (`nagios`, `debounce`, `chaos`, …).
/// Builds them on first use; panics with the build error, since no plugin test can run
/// without them.
pub fn built() -> &'static BTreeMap<String, PathBuf> {
    static BUILT: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| match build_all() {
        Ok(built) => built,
        Err(e) => {
            panic!("cannot build the plugins (is the wasm32-wasip2 target installed?): {e:#}")
        }
    })
}

/// The bytes of one built plugin.
pub fn component(name: &str) -> Vec<u8> {
    let path = built()
        .get(name)
        .unwrap_or_else(|| panic!("no plugin package \"{name}\" under plugins/"));
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// componentize-py: `$COMPONENTIZE_PY`, else the virtualenv `infra/deps.sh` makes,
/// else the one on `PATH`.
fn componentize_py() -> PathBuf {
    if let Ok(path) = std::env::var("COMPONENTIZE_PY") {
        return PathBuf::from(path);
    }
    crate::venv_bin("componentize-py")
}

/// The Python example (`plugins/python/zabbix`), built with componentize-py once per
/// test run: an 18 MB component.
pub fn python_zabbix() -> Vec<u8> {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let path = BUILT.get_or_init(|| {
        let dir = crate::workspace().join("plugins/python/zabbix");
        let out = dir.join("target/zabbix.wasm");
        std::fs::create_dir_all(dir.join("target")).expect("target dir");
        let status = Command::new("bash")
            .arg(dir.join("build.sh"))
            .arg(&out)
            .env("COMPONENTIZE_PY", componentize_py())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("bash runs");
        assert!(
            status.success(),
            "building the Python plugin failed: is componentize-py installed (bash infra/deps.sh)?"
        );
        out
    });
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
