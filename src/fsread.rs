//! Reading the files Prism is pointed at: regular files only, and never more than
//! `--max-file-bytes`.
//!
//! A spec, a clusters file, a plugin or a settings file may name `/dev/zero`, a FIFO
//! with no writer, or a huge file. Each is refused before or while reading, with the
//! path and the limit in the message, instead of blocking or reading until memory
//! runs out. The limit is process-wide: the CLI sets it once from its flags.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static MAX_FILE_BYTES: AtomicU64 = AtomicU64::new(64 << 20);

/// Sets the size limit for every later read (from `--max-file-bytes`).
pub fn set_max_file_bytes(max: u64) {
    MAX_FILE_BYTES.store(max, Ordering::Relaxed);
}

/// The size limit in force.
pub fn max_file_bytes() -> u64 {
    MAX_FILE_BYTES.load(Ordering::Relaxed)
}

fn too_big(what: &str, max: u64) -> String {
    format!(
        "{what} is over the limit of {max} bytes in one file (an admin can raise it with --max-file-bytes)"
    )
}

/// Reads a regular file (symlinks followed) of at most [`max_file_bytes`] bytes.
/// Errors are the bare reason; callers add the path.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let max = max_file_bytes();
    // Checked before opening: opening a FIFO with no writer blocks.
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(if meta.is_dir() {
            "is a directory".into()
        } else {
            "is not a regular file (a FIFO, socket or device); Prism reads only regular files"
                .into()
        });
    }
    if meta.len() > max {
        return Err(too_big(&format!("{} bytes", meta.len()), max));
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    read_capped(file, max)
}

/// Reads a regular file as UTF-8 text; see [`read`].
pub fn read_to_string(path: &Path) -> Result<String, String> {
    String::from_utf8(read(path)?).map_err(|_| "is not UTF-8 text".to_string())
}

/// Reads all of `input` (such as stdin), failing past [`max_file_bytes`].
pub fn read_stream(input: impl Read) -> Result<String, String> {
    let bytes = read_capped(input, max_file_bytes())?;
    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())
}

fn read_capped(input: impl Read, max: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    input
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > max {
        return Err(too_big("the input", max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_fifos_are_refused_without_blocking() {
        let err = read(Path::new("/dev/zero")).unwrap_err();
        assert!(err.starts_with("is not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = read(&fifo).unwrap_err();
        assert!(err.starts_with("is not a regular file"), "{err}");
    }

    #[test]
    fn streams_stop_at_the_limit() {
        let err = read_capped(std::io::repeat(0).take(1 << 20), 1000).unwrap_err();
        assert_eq!(
            err,
            "the input is over the limit of 1000 bytes in one file (an admin can raise it with --max-file-bytes)"
        );
        assert_eq!(read_capped(&b"abc"[..], 3).unwrap(), b"abc");
    }
}
