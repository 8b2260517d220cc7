//! Helpers of the hostile tests: a small disk.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped (the tests run as root, as
/// `./setup.sh test` does: a full disk is made, not simulated).
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    /// Mounts it (creating `dir`); fails the test when it cannot.
    pub fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mounting a tmpfs needs root (the test makes a small disk that fills)"
        );
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
