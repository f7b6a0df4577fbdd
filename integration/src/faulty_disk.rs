//! A disk whose fsyncs fail for real: an ext4 file system without a journal on a loop
//! device over an image file on a tiny tmpfs.
//!
//! The file system believes it has tens of megabytes free, so writes land in the page
//! cache and succeed; once the tmpfs behind the image is full, writeback fails and
//! `fsync`/`fdatasync` return the error (`ENOSPC` from the loop driver on this kernel),
//! while the file system stays mounted read-write (with a journal, ext4 would abort it
//! and remount read-only instead). A later `fsync` of the same file then reports
//! success although its data is gone: exactly the trap a storage node must not fall
//! into. device-mapper's `error`/`flakey` targets would do as well, but `dmsetup` does
//! not work in this kernel; loop devices and tmpfs do.
//!
//! Needs root (mount, losetup). [`FaultyDisk::create`] says why it cannot instead of
//! panicking, so a test can skip loudly. Everything is undone when the guard drops,
//! also during a panic: the file system is unmounted (lazily if a process still holds
//! it), the loop device detached, the tmpfs unmounted.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted faulty file system; see the module documentation.
pub struct FaultyDisk {
    /// Where the faulty file system is mounted: put a node's data dir under it.
    pub mount_point: PathBuf,
    backing: PathBuf,
    loop_device: Option<String>,
    mounted: bool,
    backing_mounted: bool,
    /// Last field: removed after everything above is unmounted.
    _root: tempfile::TempDir,
}

fn run(program: &str, arguments: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(arguments)
        .output()
        .map_err(|error| format!("{program} does not run: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {} failed ({}): {}",
            arguments.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn path_text(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

impl FaultyDisk {
    /// A file system of `image_bytes` whose writeback fails after about
    /// `backing_bytes` (minus what mkfs used) have reached the device. `Err` says why
    /// it cannot be made here (not root, no loop device, …).
    pub fn create(backing_bytes: u64, image_bytes: u64) -> Result<Self, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not running as root (mount and losetup need it)".into());
        }
        let root = tempfile::Builder::new()
            .prefix("shardlet-faulty-disk-")
            .tempdir()
            .map_err(|error| format!("no temporary directory: {error}"))?;
        let backing = root.path().join("backing");
        let mount_point = root.path().join("mount");
        for directory in [&backing, &mount_point] {
            std::fs::create_dir(directory)
                .map_err(|error| format!("{}: {error}", directory.display()))?;
        }
        let mut disk = Self {
            mount_point,
            backing,
            loop_device: None,
            mounted: false,
            backing_mounted: false,
            _root: root,
        };
        // Any failure below drops `disk`, which undoes what was done so far.
        let backing = path_text(&disk.backing)?.to_string();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={backing_bytes}"),
                "tmpfs",
                &backing,
            ],
        )?;
        disk.backing_mounted = true;
        let image = format!("{backing}/disk.img");
        let file = std::fs::File::create(&image).map_err(|error| format!("{image}: {error}"))?;
        file.set_len(image_bytes)
            .map_err(|error| format!("{image}: {error}"))?;
        drop(file);
        run("mkfs.ext4", &["-q", "-F", "-O", "^has_journal", &image])?;
        let device = run("losetup", &["--find", "--show", &image])?;
        disk.loop_device = Some(device.clone());
        run("mount", &[&device, path_text(&disk.mount_point)?])?;
        disk.mounted = true;
        Ok(disk)
    }
}

impl Drop for FaultyDisk {
    fn drop(&mut self) {
        let mut problems = Vec::new();
        if self.mounted {
            let mount_point = self.mount_point.display().to_string();
            // Lazily if a process (a node being killed) still has files open there.
            if run("umount", &[&mount_point]).is_err() {
                if let Err(error) = run("umount", &["--lazy", &mount_point]) {
                    problems.push(error);
                }
            }
        }
        if let Some(device) = self.loop_device.take() {
            if let Err(error) = run("losetup", &["--detach", &device]) {
                problems.push(error);
            }
        }
        if self.backing_mounted {
            let backing = self.backing.display().to_string();
            if run("umount", &[&backing]).is_err() {
                if let Err(error) = run("umount", &["--lazy", &backing]) {
                    problems.push(error);
                }
            }
        }
        if !problems.is_empty() {
            eprintln!("FaultyDisk cleanup left something behind: {problems:?}");
        }
    }
}
